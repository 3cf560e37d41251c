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

/// Runs `sql` as the cluster's superuser.
pub fn admin(sql: &str) {
    let (url, sql) = (admin_url(), sql.to_owned());
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
    dir: PathBuf,
    /// Its URL, for `PINKPAGE_DATABASE_URL`.
    pub url: String,
}

impl PgDatabase {
    /// Creates an empty database for the daemon whose directory is `dir`.
    pub fn create(dir: &Path) -> PgDatabase {
        let name = format!("pp_it_{}", uuid::Uuid::new_v4().simple());
        admin(&format!("CREATE DATABASE {name}"));
        let base = admin_url();
        let slash = base.rfind('/').expect("PINKPAGE_TEST_POSTGRES names a database");
        let url = format!("{}/{name}", &base[..slash]);
        BY_DIR
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert(dir.to_owned(), url.clone());
        PgDatabase {
            name: Some(name),
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
            admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}
