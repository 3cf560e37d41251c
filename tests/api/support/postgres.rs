//! The PostgreSQL pass (issue 30): with `PINKPAGE_TEST_STORE=postgres`,
//! every daemon a test starts keeps its records in a PostgreSQL database of
//! its own on the tests' cluster (`scripts/test-env.sh` starts it on
//! 127.0.0.1:55432; `PINKPAGE_TEST_POSTGRES` names another), created here
//! and dropped when the test's daemon goes. The command line the harness
//! runs for that daemon gets the same database ([`url_for`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Whether this run keeps the daemons' records in PostgreSQL.
pub fn enabled() -> bool {
    std::env::var("PINKPAGE_TEST_STORE").is_ok_and(|s| s == "postgres")
}

/// The tests' cluster, as a superuser (it creates and drops databases).
pub fn admin_url() -> String {
    std::env::var("PINKPAGE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:55432/postgres".to_owned())
}

/// The database of each running test daemon, by its directory: what
/// [`super::daemon::cli`] passes to the command line it runs there.
static BY_DIR: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);

/// The database URL of the daemon whose directory is `dir`, in this pass.
pub fn url_for(dir: &Path) -> Option<String> {
    BY_DIR.lock().unwrap().as_ref()?.get(dir).cloned()
}

/// Runs `sql` as the tests' cluster's superuser.
pub fn admin(sql: &str) {
    admin_on(&admin_url(), sql)
}

/// Runs `sql` as the superuser of the cluster at `url`.
pub fn admin_on(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    // a thread of its own: callers may be inside a runtime
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| {
                    panic!("the tests' PostgreSQL at {url} cannot be reached ({e}): run scripts/test-env.sh as root")
                });
            let driver = tokio::spawn(conn);
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            drop(client);
            let _ = driver.await;
        })
    })
    .join()
    .unwrap()
}

/// One test's database; dropped (with any connection still open) when
/// this goes.
pub struct PgDatabase {
    /// The database's name, when this guard made it (and drops it).
    name: Option<String>,
    /// The superuser's URL of its cluster.
    admin: String,
    dir: PathBuf,
    /// Its URL, for `PINKPAGE_DATABASE_URL`.
    pub url: String,
}

impl PgDatabase {
    /// Creates an empty database for the daemon whose directory is `dir`.
    pub fn create(dir: &Path) -> PgDatabase {
        PgDatabase::create_on(&admin_url(), dir)
    }

    /// [`PgDatabase::create`] on the cluster whose superuser's URL is
    /// `base` (a [`PrivateCluster`]).
    pub fn create_on(base: &str, dir: &Path) -> PgDatabase {
        let name = format!("pp_it_{}", uuid::Uuid::new_v4().simple());
        admin_on(base, &format!("CREATE DATABASE {name}"));
        let slash = base.rfind('/').expect("PINKPAGE_TEST_POSTGRES names a database");
        let url = format!("{}/{name}", &base[..slash]);
        BY_DIR
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert(dir.to_owned(), url.clone());
        PgDatabase {
            name: Some(name),
            admin: base.to_owned(),
            dir: dir.to_owned(),
            url,
        }
    }

    /// Another instance's use of the database at `url`, which the first
    /// instance's guard drops.
    pub fn join(dir: &Path, url: &str) -> PgDatabase {
        BY_DIR
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert(dir.to_owned(), url.to_owned());
        PgDatabase {
            name: None,
            admin: String::new(),
            dir: dir.to_owned(),
            url: url.to_owned(),
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Some(map) = BY_DIR.lock().unwrap().as_mut() {
            map.remove(&self.dir);
        }
        if let Some(name) = &self.name {
            admin_on(
                &self.admin,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
}

/// A PostgreSQL cluster of one test's own, which the test may stop and
/// start (the store-fault tests): made with `initdb` under
/// `/var/lib/pinkpage-test/clusters/`, run as the `postgres` user (it
/// refuses root), on a free loopback port; stopped and removed on drop.
pub struct PrivateCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PrivateCluster {
    /// Makes and starts one.
    pub fn start() -> PrivateCluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (scripts/test-env.sh)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .expect("initdb");
        let dir = PathBuf::from(format!(
            "/var/lib/pinkpage-test/clusters/{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        run("chown", &["postgres:postgres", dir.to_str().unwrap()]);
        let port = super::sshd::free_port();
        let data = dir.join("data");
        let cluster = PrivateCluster { bin, dir, port };
        cluster.as_postgres(
            "initdb",
            &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres"],
        );
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nfsync = off\nmax_connections = 50\n",
            cluster.dir.display()
        );
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap()
            .write_all(conf.as_bytes())
            .unwrap();
        cluster.start_again();
        cluster
    }

    /// The superuser's URL.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops it (`fast`: open connections are cut, as a restart does).
    pub fn stop(&self) {
        let data = self.dir.join("data");
        self.as_postgres(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts it (again), waiting until it accepts connections.
    pub fn start_again(&self) {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) {
        let tool = self.bin.join(tool);
        let mut all = vec!["-u", "postgres", "--", tool.to_str().unwrap()];
        all.extend_from_slice(args);
        run("runuser", &all);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &str, args: &[&str]) {
    let out = std::process::Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
