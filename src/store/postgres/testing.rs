//! A fresh PostgreSQL database per test, on the tests' own cluster
//! (`scripts/test-env.sh` starts it): created with a random name, dropped
//! when the test's [`TestDatabase`] goes.

use std::sync::Arc;

use super::PgStore;
use crate::store::chain::KeyFile;

/// Where the tests' cluster is: `PINKPAGE_TEST_POSTGRES`, or the one
/// `scripts/test-env.sh` starts.
pub fn admin_url() -> String {
    std::env::var("PINKPAGE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:55432/postgres".to_owned())
}

/// A database of one test's own; dropped with it.
pub struct TestDatabase {
    name: String,
    /// The database's URL.
    pub url: String,
    /// Where its audit key is.
    pub key_file: KeyFile,
    _dir: tempfile::TempDir,
}

fn admin(sql: String) {
    let url = admin_url();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| {
                    panic!("the tests' PostgreSQL at {url} cannot be reached ({e}): run scripts/test-env.sh as root")
                });
            tokio::spawn(conn);
            client.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
    })
    .join()
    .unwrap()
}

impl TestDatabase {
    /// Creates an empty database.
    pub fn new() -> TestDatabase {
        let name = format!("pp_unit_{}", uuid::Uuid::new_v4().simple());
        admin(format!("CREATE DATABASE {name}"));
        let base = admin_url();
        let url = match base.rfind('/') {
            Some(i) => format!("{}/{name}", &base[..i]),
            None => panic!("PINKPAGE_TEST_POSTGRES has no database: {base}"),
        };
        let dir = tempfile::tempdir().unwrap();
        TestDatabase {
            name,
            url,
            key_file: KeyFile::new(dir.path().join("audit.key")),
            _dir: dir,
        }
    }

    /// The store on it.
    pub fn open(&self) -> Arc<PgStore> {
        PgStore::open(&self.url, &self.key_file).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        admin(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// A store on a database of its own, and the database (keep it alive).
pub fn store() -> (Arc<PgStore>, TestDatabase) {
    let db = TestDatabase::new();
    (db.open(), db)
}
