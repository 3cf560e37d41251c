//! [`SshdServer`]: a private OpenSSH `sshd` on 127.0.0.1 for one test, and
//! [`TestUser`], the account it serves.
//!
//! Needs root and `scripts/test-env.sh` (the test user, its password and
//! the client key). Each server has its own temp dir (`pinkpage-sshd-*`,
//! which `scripts/test-env.sh stop` recognises), host key and free port, so
//! tests run in parallel. Dropping it kills the listener and every process
//! below it: per-connection sshd children call `setsid`, so process groups
//! would miss them; we walk the parent links in `/proc` instead.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use pinkpage_actors::server::{Auth, ServerSpec};
use pinkpage_actors::Secret;

const SSHD: &str = "/usr/sbin/sshd";
const TEST_USER: &str = "pinkpage-test";
/// A second account, whose login shell is tcsh (`scripts/test-env.sh`):
/// shell mode must refuse it. Same password as [`TEST_USER`].
pub const TCSH_USER: &str = "pinkpage-tcsh";
const DEFAULT_PASSWORD: &str = "pinkpage-test-pw";
/// How long sshd may take to print "Server listening on".
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at a free port before giving up (another process may grab the
/// port between our probe and sshd's bind).
const START_ATTEMPTS: usize = 5;

/// How a test's sshd is configured.
#[derive(Debug, Clone)]
pub struct SshdOptions {
    /// `PasswordAuthentication`.
    pub password_authentication: bool,
    /// `KbdInteractiveAuthentication` (through PAM).
    pub kbd_interactive_authentication: bool,
    /// `LogLevel`; `DEBUG1` shows each `userauth-request`.
    pub log_level: &'static str,
    /// Confine every session to SFTP inside this directory
    /// (`ChrootDirectory` + `ForceCommand internal-sftp`): for clients that
    /// write wherever they like (schemathesis), so they cannot touch the
    /// test user's home. See [`SftpJail`].
    pub sftp_jail: Option<PathBuf>,
}

impl Default for SshdOptions {
    fn default() -> Self {
        SshdOptions {
            password_authentication: true,
            kbd_interactive_authentication: true,
            log_level: "VERBOSE",
            sftp_jail: None,
        }
    }
}

/// The test account `scripts/test-env.sh` creates.
#[derive(Clone)]
pub struct TestUser {
    /// Login name.
    pub name: String,
    /// Its password (`PINKPAGE_TEST_PASSWORD` or the default).
    pub password: Secret,
    /// The client private key authorized for it.
    pub key_path: PathBuf,
}

impl TestUser {
    /// The test user; panics with a hint when the environment is not set up.
    pub fn get() -> TestUser {
        let hint = "run `sudo scripts/test-env.sh` (as root) to create the test user and key";
        let exists = Command::new("id")
            .arg("-u")
            .arg(TEST_USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(exists, "user {TEST_USER} does not exist: {hint}");
        let key_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".test-env/id_ed25519");
        assert!(
            key_path.exists(),
            "client key {} is missing: {hint}",
            key_path.display()
        );
        assert!(Path::new(SSHD).exists(), "{SSHD} is missing: {hint}");
        TestUser {
            name: TEST_USER.to_owned(),
            password: Secret::new(
                std::env::var("PINKPAGE_TEST_PASSWORD").unwrap_or_else(|_| DEFAULT_PASSWORD.into()),
            ),
            key_path,
        }
    }

    /// Password credentials.
    pub fn password_auth(&self) -> Auth {
        Auth::Password(self.password.clone())
    }

    /// A spec for this user on `127.0.0.1:port`, with no pinned key.
    pub fn server_spec(&self, name: &str, port: u16, auth: Auth) -> ServerSpec {
        ServerSpec {
            name: name.to_owned(),
            host: "127.0.0.1".to_owned(),
            port,
            username: self.name.clone(),
            auth,
            host_key_fingerprint: None,
            encoding: encoding_rs::UTF_8,
            tags: Vec::new(),
            command_mode: Default::default(),
            record: true,
        }
    }

    /// Key credentials (the key has no passphrase).
    pub fn key_auth(&self) -> Auth {
        Auth::KeyFile {
            path: self.key_path.clone(),
            passphrase: None,
        }
    }
}

/// Everything sshd printed, shared with the threads that read it.
#[derive(Default)]
struct Log {
    text: Mutex<String>,
    grew: Condvar,
}

/// A running `sshd -D -e` on 127.0.0.1 (see the module documentation).
pub struct SshdServer {
    /// Holds config, host key and pid file; removed on drop.
    dir: tempfile::TempDir,
    port: u16,
    options: SshdOptions,
    /// The listener; `None` while stopped.
    child: Option<Child>,
    log: Arc<Log>,
}

impl SshdServer {
    /// Starts a server on a free port; panics if it cannot.
    pub fn start(options: SshdOptions) -> SshdServer {
        TestUser::get();
        let dir = tempfile::Builder::new()
            .prefix("pinkpage-sshd-")
            .tempdir()
            .expect("temp dir");
        let mut server = SshdServer {
            dir,
            port: 0,
            options,
            child: None,
            log: Arc::default(),
        };
        server.generate_host_key();
        for attempt in 1..=START_ATTEMPTS {
            server.port = free_port();
            server.write_config();
            match server.spawn() {
                Ok(()) => return server,
                Err(e) if attempt < START_ATTEMPTS => {
                    eprintln!("sshd on port {} failed to start ({e}); retrying", server.port)
                }
                Err(e) => panic!(
                    "sshd failed to start {START_ATTEMPTS} times: {e}\n{}",
                    server.log()
                ),
            }
        }
        unreachable!()
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Everything sshd (listener and per-connection children) has logged.
    pub fn log(&self) -> String {
        self.log.text.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`; false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let text = self.log.text.lock().unwrap();
        let (text, _) = self
            .log
            .grew
            .wait_timeout_while(text, timeout, |t| !t.contains(needle))
            .unwrap();
        text.contains(needle)
    }

    /// The host key's fingerprint as `ssh-keygen -lf` prints it.
    pub fn host_key_fingerprint(&self) -> String {
        let out = run_ok(
            Command::new("ssh-keygen")
                .arg("-lf")
                .arg(self.host_key_path().with_extension("pub")),
        );
        out.split_whitespace()
            .nth(1)
            .expect("ssh-keygen -lf prints the fingerprint second")
            .to_owned()
    }

    /// The known_hosts line for this server: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> String {
        let public = std::fs::read_to_string(self.host_key_path().with_extension("pub")).unwrap();
        let mut fields = public.split_whitespace();
        let (alg, key) = (fields.next().unwrap(), fields.next().unwrap());
        format!("[127.0.0.1]:{} {alg} {key}", self.port)
    }

    /// A server spec for the test user on this server, with no pinned key.
    pub fn server_spec(&self, name: &str, auth: Auth) -> ServerSpec {
        TestUser::get().server_spec(name, self.port, auth)
    }

    /// Kills the listener and every session below it. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_tree(child.id());
            let _ = child.wait();
        }
    }

    /// Starts again on the same port with the same host key; panics if the
    /// port has been taken meanwhile.
    pub fn start_again(&mut self) {
        self.stop();
        if let Err(e) = self.spawn() {
            panic!(
                "sshd failed to restart on port {}: {e}\n{}",
                self.port,
                self.log()
            );
        }
    }

    /// Restarts on the same port with a newly generated host key, as a
    /// reinstalled (or impersonated) server would look.
    pub fn restart_with_new_host_key(&mut self) {
        self.stop();
        self.generate_host_key();
        self.start_again();
    }

    fn host_key_path(&self) -> PathBuf {
        self.dir.path().join("ssh_host_ed25519_key")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("sshd_config")
    }

    fn generate_host_key(&self) {
        let key = self.host_key_path();
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&key),
        );
    }

    fn write_config(&self) {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        let config = format!(
            "Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {host_key}\n\
             PidFile {pid}\n\
             UsePAM yes\n\
             PrintMotd no\n\
             PasswordAuthentication {password}\n\
             KbdInteractiveAuthentication {kbd}\n\
             PubkeyAuthentication yes\n\
             AuthorizedKeysFile .ssh/authorized_keys\n\
             AllowUsers {user} {tcsh_user}\n\
             PermitRootLogin no\n\
             StrictModes yes\n\
             Subsystem sftp internal-sftp\n\
             LogLevel {log_level}\n",
            port = self.port,
            host_key = self.host_key_path().display(),
            pid = self.dir.path().join("sshd.pid").display(),
            password = yes_no(self.options.password_authentication),
            kbd = yes_no(self.options.kbd_interactive_authentication),
            user = TEST_USER,
            tcsh_user = TCSH_USER,
            log_level = self.options.log_level,
        );
        let config = match &self.options.sftp_jail {
            Some(jail) => format!(
                "{config}Match User {TEST_USER}\n    ChrootDirectory {}\n    ForceCommand internal-sftp -d /{}\n",
                jail.display(),
                SftpJail::FILES
            ),
            None => config,
        };
        std::fs::write(self.config_path(), config).unwrap();
        run_ok(Command::new(SSHD).arg("-t").arg("-f").arg(self.config_path()));
    }

    /// Spawns the listener and waits for "Server listening on"; a thread
    /// keeps copying its stderr into the log until every sshd process that
    /// shares the pipe is gone.
    fn spawn(&mut self) -> Result<(), String> {
        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {SSHD}: {e}"))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let (ready_tx, ready_rx) = mpsc::channel::<bool>();
        let log = Arc::clone(&self.log);
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("Server listening on") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(true);
                    }
                }
                let mut text = log.text.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
                log.grew.notify_all();
            }
            if let Some(tx) = ready.take() {
                let _ = tx.send(false);
            }
        });
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(true) => {
                self.child = Some(child);
                Ok(())
            }
            outcome => {
                kill_tree(child.id());
                let _ = child.wait();
                Err(match outcome {
                    Ok(_) => "sshd exited before listening".to_owned(),
                    Err(_) => format!("sshd did not listen within {START_TIMEOUT:?}"),
                })
            }
        }
    }
}

impl Drop for SshdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port that refuses connections for as long as this lives: the
/// socket is bound but never listens, so no parallel test can take the
/// port between our choosing it and connecting to it.
pub struct ClosedPort(tokio::net::TcpSocket);

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("address"))
            .expect("bind 127.0.0.1:0");
        ClosedPort(socket)
    }

    pub fn port(&self) -> u16 {
        self.0.local_addr().expect("local address").port()
    }
}

/// A port that was free a moment ago (for starting a server, with retries;
/// a test that needs a port nobody answers on uses [`ClosedPort`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every process below `root` (not `root` itself), from /proc parent links.
fn descendants(root: u32) -> HashSet<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // the command name may hold spaces and parentheses: parse after the last ')'
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = HashSet::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parent_of {
            if ppid == parent && found.insert(pid) {
                frontier.push(pid);
            }
        }
    }
    found
}

fn signal(sig: &str, pids: impl IntoIterator<Item = u32>) {
    let pids: Vec<String> = pids.into_iter().map(|p| p.to_string()).collect();
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .args(&pids)
        .stderr(Stdio::null())
        .status();
}

/// SIGKILLs `root` and all its descendants. Everything is stopped first and
/// the tree re-read until it stops growing, so nothing forks away between
/// reading the tree and killing it (a killed parent's orphans would be
/// re-parented to init and lost to the walk).
fn kill_tree(root: u32) {
    signal("STOP", [root]);
    let mut all = HashSet::new();
    loop {
        let found = descendants(root);
        let new: Vec<u32> = found.difference(&all).copied().collect();
        if new.is_empty() {
            break;
        }
        signal("STOP", new.iter().copied());
        all.extend(new);
    }
    all.insert(root);
    signal("KILL", all);
}

/// A directory sshd can chroot the test user into: root-owned and not
/// writable by others all the way up (sshd's rule, which `/tmp` breaks, so
/// it lives under `/run`), with one directory, [`SftpJail::FILES`], the
/// test user may write. Removed on drop.
pub struct SftpJail {
    /// The chroot directory.
    pub root: PathBuf,
}

impl SftpJail {
    /// The writable directory inside the jail, where sessions start.
    pub const FILES: &'static str = "files";

    /// Makes a fresh jail.
    pub fn new() -> SftpJail {
        use std::os::unix::fs::PermissionsExt;
        let root = PathBuf::from(format!("/run/pinkpage-jail-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&root).expect("create the jail");
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let files = root.join(Self::FILES);
        std::fs::create_dir(&files).unwrap();
        std::fs::set_permissions(&files, std::fs::Permissions::from_mode(0o755)).unwrap();
        super::remote::chown_to_test_user(&files);
        SftpJail { root }
    }
}

impl Drop for SftpJail {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
