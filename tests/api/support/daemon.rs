//! Spawning the real `pinkpage` binary for a test.
//!
//! Each [`TestApp`] is its own daemon process on a free port (`PINKPAGE_BIND`
//! port 0), with its own temporary directory holding the database, the
//! servers file and the known_hosts file. Its JSON log lines are captured so
//! tests can assert on them (and on what they must never contain). Dropping
//! the `TestApp` kills the process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;

use super::poll::eventually;

/// How long a daemon may take to print its `listening` line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One `[[servers]]` entry of the servers file the daemon is given.
#[derive(Clone, Debug)]
pub struct ServerEntry {
    /// Server name.
    pub name: String,
    /// Host address.
    pub host: String,
    /// SSH port.
    pub port: u16,
    /// Login user.
    pub username: String,
    /// Password (passed to the daemon through an environment variable).
    pub password: Option<String>,
    /// Private key file, instead of a password.
    pub key_file: Option<PathBuf>,
    /// Extra TOML lines for this server (encoding, fingerprint, tags).
    pub extra: String,
}

impl ServerEntry {
    /// A real sshd, logged in to as the test user with its password (no
    /// known_hosts line: add one with [`TestAppBuilder::known_hosts`], or
    /// use [`TestAppBuilder::sshd`] which does both).
    pub fn for_sshd(name: &str, sshd: &super::sshd::SshdServer) -> ServerEntry {
        let user = super::sshd::TestUser::get();
        ServerEntry {
            name: name.to_owned(),
            host: "127.0.0.1".to_owned(),
            port: sshd.port(),
            username: user.name.clone(),
            password: Some(user.password.expose().to_owned()),
            key_file: None,
            extra: String::new(),
        }
    }

    /// A server that nobody listens on: for tests that need a configured
    /// server but no SSH.
    pub fn unreachable(name: &str) -> ServerEntry {
        ServerEntry {
            name: name.to_owned(),
            host: "127.0.0.1".to_owned(),
            port: 1,
            username: "nobody".to_owned(),
            password: Some("unused-password".to_owned()),
            key_file: None,
            extra: String::new(),
        }
    }
}

/// Builds a [`TestApp`].
#[derive(Default)]
pub struct TestAppBuilder {
    servers: Vec<ServerEntry>,
    transfers_toml: String,
    known_hosts: String,
    env: Vec<(String, String)>,
    /// Start with no account at all (the first-start tests).
    no_accounts: bool,
    /// Where the database goes instead of the daemon's temp dir (a file
    /// system a test made, to fill it up).
    database_dir: Option<PathBuf>,
    /// The daemon's umask instead of the test process's.
    umask: Option<u32>,
    /// The daemon's descriptor limit (soft, hard), set before it starts.
    nofile: Option<(u64, u64)>,
    /// Runs first, before the test admin is made: see
    /// [`TestAppBuilder::seed`].
    seed: Option<Seed>,
    /// Keep the records in a new PostgreSQL database on the cluster of
    /// this superuser URL, even outside the PostgreSQL pass (a test of
    /// several instances, of PostgreSQL's faults).
    postgres: Option<String>,
    /// Another instance of a running daemon: its database, audit key and
    /// test admin ([`TestAppBuilder::instance_of`]).
    instance_of: Option<Joined>,
}

/// What an instance shares with the first one on its database.
struct Joined {
    url: String,
    key_file: PathBuf,
    admin_token: Option<String>,
}

/// What [`TestAppBuilder::seed`] runs: given the database's path and the
/// audit key file's.
type Seed = Box<dyn FnOnce(&Path, &Path) + Send>;

impl TestAppBuilder {
    /// Adds a server to the servers file.
    pub fn server(mut self, entry: ServerEntry) -> Self {
        self.servers.push(entry);
        self
    }

    /// Adds a real sshd as server `name`: password auth as the test user,
    /// its host key in the daemon's known_hosts.
    pub fn sshd(self, name: &str, sshd: &super::sshd::SshdServer) -> Self {
        self.sshd_with(name, sshd, "")
    }

    /// Like [`TestAppBuilder::sshd`], with extra TOML for the server
    /// (`encoding = "euc-kr"`).
    pub fn sshd_with(self, name: &str, sshd: &super::sshd::SshdServer, extra: &str) -> Self {
        let entry = ServerEntry {
            extra: extra.to_owned(),
            ..ServerEntry::for_sshd(name, sshd)
        };
        self.server(entry).known_hosts(&sshd.known_hosts_line())
    }

    /// Appends raw `[[transfers]]` TOML.
    pub fn transfers_toml(mut self, toml: &str) -> Self {
        self.transfers_toml.push_str(toml);
        self
    }

    /// Appends lines to the daemon's known_hosts file.
    pub fn known_hosts(mut self, lines: &str) -> Self {
        self.known_hosts.push_str(lines);
        if !self.known_hosts.ends_with('\n') {
            self.known_hosts.push('\n');
        }
        self
    }

    /// Sets an environment variable for the daemon.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Keeps the database (`pinkpage.db`, its WAL and shared memory) in
    /// `dir` instead of the daemon's temp dir.
    pub fn database_in(mut self, dir: &Path) -> Self {
        self.database_dir = Some(dir.to_path_buf());
        self
    }

    /// Runs the daemon under umask `mask` (through `sh -c 'umask ..; exec'`,
    /// so the daemon keeps the process id the shell had).
    pub fn umask(mut self, mask: u32) -> Self {
        self.umask = Some(mask);
        self
    }

    /// Starts the daemon with a descriptor limit (`ulimit -n`) of `soft`,
    /// which it may raise up to `hard`.
    pub fn nofile(mut self, soft: u64, hard: u64) -> Self {
        self.nofile = Some((soft, hard));
        self
    }

    /// Calls `seed` with the database's path and the audit key file's
    /// before anything else touches either (before the test admin is
    /// made): for rows that must come first, such as audit rows older than
    /// any the daemon writes.
    pub fn seed(mut self, seed: impl FnOnce(&Path, &Path) + Send + 'static) -> Self {
        self.seed = Some(Box::new(seed));
        self
    }

    /// Keeps the records in a PostgreSQL database of this daemon's own,
    /// whatever the pass (the first of several instances).
    pub fn postgres(mut self) -> Self {
        self.postgres = Some(super::postgres::admin_url());
        self
    }

    /// [`TestAppBuilder::postgres`] on the cluster whose superuser's URL
    /// is `admin` (a test's private cluster).
    pub fn postgres_on(mut self, admin: &str) -> Self {
        self.postgres = Some(admin.to_owned());
        self
    }

    /// Starts another instance of `first` (which keeps its records in
    /// PostgreSQL): the same database, audit key and test admin, an
    /// instance id of its own (the default: its host and port).
    pub fn instance_of(mut self, first: &TestApp) -> Self {
        self.instance_of = Some(Joined {
            url: first
                .postgres_url()
                .expect("the first instance keeps its records in PostgreSQL")
                .to_owned(),
            key_file: first.audit_key_file().to_owned(),
            admin_token: first.admin_token.clone(),
        });
        self
    }

    /// Starts with an empty account table (no test admin, no token).
    pub fn without_accounts(mut self) -> Self {
        self.no_accounts = true;
        self
    }

    /// Starts the daemon and waits until it listens.
    pub async fn spawn(self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut toml = String::new();
        let mut env = Vec::new();
        for (i, s) in self.servers.iter().enumerate() {
            toml.push_str(&format!(
                "[[servers]]\nname = {:?}\nhost = {:?}\nport = {}\nusername = {:?}\n",
                s.name, s.host, s.port, s.username
            ));
            if let Some(pw) = &s.password {
                let var = format!("PINKPAGE_TEST_SERVER_PW_{i}");
                toml.push_str(&format!("password_env = {var:?}\n"));
                env.push((var, pw.clone()));
            }
            if let Some(key) = &s.key_file {
                toml.push_str(&format!("key_file = {:?}\n", key.display().to_string()));
            }
            toml.push_str(&s.extra);
            toml.push('\n');
        }
        toml.push_str(&self.transfers_toml);
        let servers_file = dir.path().join("servers.toml");
        std::fs::write(&servers_file, toml).expect("write servers file");
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(&known_hosts, &self.known_hosts).expect("write known_hosts");

        let db = self
            .database_dir
            .as_deref()
            .unwrap_or(dir.path())
            .join("pinkpage.db");
        // the PostgreSQL pass: a database of this daemon's own, made
        // before the command line makes the test admin in it
        let pg = match &self.instance_of {
            Some(first) => Some(super::postgres::PgDatabase::join(dir.path(), &first.url)),
            None => match &self.postgres {
                Some(admin) => Some(super::postgres::PgDatabase::create_on(admin, dir.path())),
                None => super::postgres::enabled().then(|| super::postgres::PgDatabase::create(dir.path())),
            },
        };
        if let Some(seed) = self.seed {
            // where the command line and the daemon find the key
            seed(&db, &dir.path().join("data/audit.key"));
        }
        let admin_token = if let Some(first) = &self.instance_of {
            first.admin_token.clone()
        } else if self.no_accounts {
            None
        } else {
            Some(bootstrap_admin(dir.path(), &db))
        };

        let home = dir.path().to_path_buf();
        let home_key = home.join("data/audit.key");
        let mut extra = self.env;
        if let Some(pg) = &pg {
            extra.push(("PINKPAGE_DATABASE_URL".to_owned(), pg.url.clone()));
            // one id per test daemon, the same across its restarts (its
            // port changes: it binds port 0)
            if !extra.iter().any(|(k, _)| k == "PINKPAGE_INSTANCE_ID") {
                extra.push((
                    "PINKPAGE_INSTANCE_ID".to_owned(),
                    format!("it-{}", &uuid_like()[..8]),
                ));
            }
        }
        if let Some(first) = &self.instance_of {
            extra.push((
                "PINKPAGE_AUDIT_KEY_FILE".to_owned(),
                first.key_file.display().to_string(),
            ));
        }
        let umask = self.umask;
        let nofile = self.nofile;
        // Every start (and restart) runs the same command.
        let command = move || {
            let bin = env!("CARGO_BIN_EXE_pinkpage");
            let mut cmd = match umask {
                None => Command::new(bin),
                Some(mask) => {
                    let mut sh = Command::new("/bin/sh");
                    sh.arg("-c")
                        .arg(format!("umask {mask:03o} && exec \"$0\""))
                        .arg(bin);
                    sh
                }
            };
            // The working directory is the temp dir, so no stray .env is
            // loaded and relative paths land in the temp dir.
            cmd.current_dir(&home)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("PINKPAGE_BIND", "127.0.0.1:0")
                .env("PINKPAGE_DB", &db)
                .env("PINKPAGE_DATA_DIR", home.join("data"))
                // where the command line that made the test admin put the
                // audit key (its default, under `data`): said outright, so
                // a test that moves the data directory keeps the key
                .env("PINKPAGE_AUDIT_KEY_FILE", home.join("data/audit.key"))
                .env("PINKPAGE_SERVERS_FILE", &servers_file)
                .env("PINKPAGE_KNOWN_HOSTS", &known_hosts)
                .env("PINKPAGE_LOG_FORMAT", "json")
                .env("RUST_LOG", "debug")
                .envs(env.iter().cloned())
                .envs(extra.iter().cloned())
                .envs(bench_daemon_env())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some((soft, hard)) = nofile {
                use std::os::unix::process::CommandExt;
                let limit = libc::rlimit {
                    rlim_cur: soft as libc::rlim_t,
                    rlim_max: hard as libc::rlim_t,
                };
                // SAFETY: between fork and exec the closure only calls
                // setrlimit, which is async-signal-safe, on a struct it owns.
                unsafe {
                    cmd.pre_exec(move || {
                        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                            Ok(())
                        } else {
                            Err(std::io::Error::last_os_error())
                        }
                    });
                }
            }
            cmd
        };
        let database = self
            .database_dir
            .as_deref()
            .unwrap_or(dir.path())
            .join("pinkpage.db");
        let audit_key = match &self.instance_of {
            Some(first) => first.key_file.clone(),
            None => home_key,
        };
        let mut app = TestApp::start(Box::new(command), dir, database, admin_token).await;
        app.postgres = pg;
        app.audit_key = audit_key;
        app
    }
}

/// The test admin's name (made by [`bootstrap_admin`]).
pub const TEST_ADMIN: &str = "pp-admin";

/// Runs `pinkpage` with `args` against the database `db`, feeding `stdin`;
/// returns (exit code, stdout, stderr).
pub fn cli(dir: &Path, db: &Path, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinkpage"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PINKPAGE_DB", db)
        .envs(super::postgres::url_for(dir).map(|url| ("PINKPAGE_DATABASE_URL", url)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pinkpage");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("pinkpage output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Creates the test admin with the command line, as an operator would,
/// and an API token for it; returns the token.
fn bootstrap_admin(dir: &Path, db: &Path) -> String {
    let password = format!("{}-{}", TEST_ADMIN, uuid_like());
    let (code, _, err) = cli(
        dir,
        db,
        &["user", "add", TEST_ADMIN, "--role", "admin", "--password-stdin"],
        &format!("{password}\n"),
    );
    assert_eq!(code, Some(0), "user add: {err}");
    let (code, out, err) = cli(dir, db, &["token", "create", TEST_ADMIN, "--expires", "1d"], "");
    assert_eq!(code, Some(0), "token create: {err}");
    out.lines()
        .map(str::trim)
        .find(|l| l.starts_with("ppt_"))
        .unwrap_or_else(|| panic!("no token printed: {out}"))
        .to_owned()
}

/// Sixteen random hex characters (no extra dependency for a password).
fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("{:016x}", h.finish())
}

/// A signed-in identity for a test: an account and an API token for it.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Account name.
    pub name: String,
    /// Its password.
    pub password: String,
    /// An API token acting as it.
    pub token: String,
}

/// A running daemon.
pub struct TestApp {
    child: Child,
    /// Makes the daemon's command (for a restart).
    command: Box<dyn Fn() -> Command + Send + Sync>,
    /// The bound port.
    pub port: u16,
    /// Every log line so far (stdout and stderr).
    logs: Arc<Mutex<Vec<String>>>,
    /// Database, servers file, known_hosts; removed on drop.
    dir: TempDir,
    /// The database file (in `dir` unless the test put it elsewhere).
    database: PathBuf,
    /// An HTTP client for the tests, sending the test admin's token.
    pub http: reqwest::Client,
    /// An HTTP client with no credentials.
    pub anon: reqwest::Client,
    /// The test admin's API token (`None` when started without accounts).
    pub admin_token: Option<String>,
    /// The PostgreSQL pass: this daemon's database, dropped after the
    /// daemon (fields drop in order: `child` is killed first by `Drop`).
    postgres: Option<super::postgres::PgDatabase>,
    /// The audit key file it was started with.
    audit_key: PathBuf,
}

impl TestApp {
    /// A builder with no servers.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// A daemon whose only server is unreachable: enough for REST tests.
    pub async fn spawn_without_ssh() -> TestApp {
        TestApp::builder()
            .server(ServerEntry::unreachable("mdwap1p"))
            .spawn()
            .await
    }

    async fn start(
        command: Box<dyn Fn() -> Command + Send + Sync>,
        dir: TempDir,
        database: PathBuf,
        admin_token: Option<String>,
    ) -> TestApp {
        let (child, port, logs) = Self::launch(&command).await;
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &admin_token {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
            );
        }
        TestApp {
            child,
            command,
            port,
            logs,
            dir,
            database,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .default_headers(headers)
                .build()
                .unwrap(),
            anon: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            admin_token,
            postgres: None,
            audit_key: PathBuf::new(),
        }
    }

    /// Kills the daemon (SIGKILL: nothing of its own cleanup runs) and
    /// waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the daemon with SIGKILL (no shutdown of any kind, as a crash)
    /// and starts it again on the same database and files. The port
    /// changes; the log starts afresh.
    pub async fn kill_and_restart(&mut self) {
        self.kill();
        let (child, port, logs) = Self::launch(&self.command).await;
        self.child = child;
        self.port = port;
        self.logs = logs;
    }

    /// Sends `signal` (`TERM`, `INT`) to the daemon and waits at most
    /// `within` for it to exit; its exit status, or `None` if it still runs.
    pub async fn signal_and_wait(
        &mut self,
        signal: &str,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let sent = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -s {signal} failed");
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for pinkpage") {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `signal` (`HUP`) to the daemon, which goes on running.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -s {signal} failed");
    }

    /// Starts the daemon's process and waits until it listens.
    async fn launch(command: &(dyn Fn() -> Command + Send + Sync)) -> (Child, u16, Arc<Mutex<Vec<String>>>) {
        let mut child = command().spawn().expect("spawn pinkpage");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = tokio::sync::oneshot::channel::<u16>();
        let port_tx = Arc::new(Mutex::new(Some(port_tx)));
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let logs = logs.clone();
            let port_tx = port_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(port) = listening_port(&line) {
                        if let Some(tx) = port_tx.lock().unwrap().take() {
                            let _ = tx.send(port);
                        }
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        drop(port_tx);
        let port = match tokio::time::timeout(START_TIMEOUT, port_rx).await {
            Ok(Ok(port)) => port,
            _ => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "pinkpage did not start (exit: {status:?}); log:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        (child, port, logs)
    }

    /// Creates an account with `role` (limited to `tags` when given) and an
    /// API token for it, over REST as the test admin: effective at once.
    pub async fn identity(&self, name: &str, role: &str, tags: Option<&[&str]>) -> Identity {
        let password = format!("{name}-password-{}", uuid_like());
        let res = self
            .post_json(
                "/api/v1/users",
                &serde_json::json!({"name": name, "role": role, "servers": tags, "password": password}),
            )
            .await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap_or_default());
        let res = self
            .post_json(
                "/api/v1/tokens",
                &serde_json::json!({"user": name, "label": "test"}),
            )
            .await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap_or_default());
        let body: serde_json::Value = res.json().await.unwrap();
        Identity {
            name: name.to_owned(),
            password,
            token: body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Signs `who` in with its password; returns the `name=value` cookie
    /// and the whole `Set-Cookie` header.
    pub async fn sign_in(&self, who: &Identity) -> (String, String) {
        let res = self
            .anon
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({"name": who.name, "password": who.password}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["user"], who.name.as_str());
        assert_eq!(body["credential"], "session");
        (set_cookie.split(';').next().unwrap().to_owned(), set_cookie)
    }

    /// Runs `pinkpage` with `args` against this daemon's database.
    pub fn cli(&self, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
        cli(self.dir.path(), &self.database, args, stdin)
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `ws://127.0.0.1:PORT{path}`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// One unlabelled sample of `GET /metrics` (`name`, or a histogram's
    /// `name_count` / `name_sum`), as the test admin; `None` when absent.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        metric_in(&self.get("/metrics").await.text().await.unwrap(), sample)
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    /// POST `path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    /// Audit events (newest first) once at least `count` of them match
    /// `query` (e.g. `action=batch.run`). Events are written without
    /// holding up replies, so this waits for them (bounded).
    pub async fn audit_events(&self, query: &str, count: usize) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/audit?limit=1000&{query}");
        super::poll::eventually(&format!("{count} audit events for {query}"), async || {
            let body: serde_json::Value = self.get(&path).await.json().await.expect("audit JSON");
            let events = body.as_array().cloned().unwrap_or_default();
            if events.len() >= count {
                Ok(events)
            } else {
                Err(body)
            }
        })
        .await
    }

    /// Starts the peak of [`TestApp::peak_rss_kib`] afresh from the
    /// resident memory now (`5` to `/proc/<pid>/clear_refs` resets
    /// `VmHWM`), and returns that memory in KiB: a test measures what its
    /// own work added, not the Argon2 hashing of the sign-ins that set it
    /// up (64 MiB each).
    pub fn reset_peak_rss(&self) -> u64 {
        reset_peak_rss(self.pid());
        self.peak_rss_kib()
    }

    /// The daemon's peak resident memory so far (`VmHWM` of
    /// `/proc/<pid>/status`), in KiB: it covers every moment of the
    /// process's life, so it is read once after the work.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// The daemon's resident memory now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// A KiB figure of the daemon's `/proc/<pid>/status`.
    fn status_kib(&self, field: &str) -> u64 {
        status_kib(self.pid(), field)
    }

    /// Every log line the test's reader thread has read so far, joined:
    /// lines the daemon wrote a moment ago may still be in the pipe. To
    /// see everything logged before now, use [`TestApp::logs_settled`].
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Every log line the daemon wrote before this call: a request to a
    /// path nobody else uses is logged after them, through the same
    /// ordered writer and pipe, so once its line has been read all
    /// earlier lines have been too.
    pub async fn logs_settled(&self) -> String {
        let marker = format!("/logs-settled-{}", uuid_like());
        let _ = self.anon.get(self.url(&marker)).send().await;
        eventually(&format!("the request to {marker} in the log"), async || {
            let logs = self.logs();
            logs.contains(&marker).then_some(logs)
        })
        .await
    }

    /// The daemon's process id (for /proc/<pid>/status measurements).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's database file.
    pub fn database(&self) -> &Path {
        &self.database
    }

    /// The audit key file the daemon reads (an instance of another shares
    /// the first one's).
    pub fn audit_key_file(&self) -> &Path {
        &self.audit_key
    }

    /// The PostgreSQL database's URL, when the records are kept there.
    pub fn postgres_url(&self) -> Option<&str> {
        self.postgres.as_ref().map(|pg| pg.url.as_str())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // A failing test shows what the daemon said.
        if std::thread::panicking() {
            eprintln!(
                "--- pinkpage log ---\n{}\n--- end of pinkpage log ---",
                self.logs()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A KiB figure (`field` with its colon: `VmRSS:`, `VmHWM:`) of process
/// `pid`'s `/proc/<pid>/status`: the daemon's, or a peer's the benchmarks
/// measure beside it.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

/// Starts process `pid`'s `VmHWM` afresh from its resident memory now
/// (`5` to `/proc/<pid>/clear_refs`).
pub fn reset_peak_rss(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
}

/// One unlabelled sample (`name value`) of a Prometheus text exposition.
pub fn metric_in(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// `PINKPAGE_BENCH_DAEMON_ENV` (`NAME=value` pairs, space-separated),
/// given to every daemon on top of its own: how a benchmark is run again
/// against another configuration of the same binary (the allocator's
/// `MALLOC_ARENA_MAX`, `LD_PRELOAD`, `PINKPAGE_HEAP_TRIM_S`; see
/// docs/benchmarks.md). Unset in the suite.
fn bench_daemon_env() -> Vec<(String, String)> {
    std::env::var("PINKPAGE_BENCH_DAEMON_ENV")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The port of the daemon's `listening` JSON log line, if this is it.
fn listening_port(line: &str) -> Option<u16> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v["message"] != "listening" {
        return None;
    }
    v["fields"]["addr"].as_str()?.rsplit(':').next()?.parse().ok()
}

/// Runs the binary with `env` (and nothing else) and returns its exit code
/// and stderr: for startup failures.
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pinkpage"))
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run pinkpage");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}
