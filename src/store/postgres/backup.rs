//! A consistent copy of a PostgreSQL store while instances serve:
//! `pg_dump` in its custom format (one snapshot of the whole database;
//! restore with `pg_restore`, docs/operations.md "PostgreSQL"). Used by the
//! store's [`BackupStore`] and by `pinkpage backup FILE`.
//!
//! The connection's password never reaches `pg_dump`'s arguments: host,
//! port, user, password and database go to it through its environment
//! (`PGHOST`, ..., `PGPASSWORD`), which other users cannot read.

use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use pinkpage_actors::{AppError, ErrorCode};
use tokio_postgres::config::Host;

use super::PgStore;
use crate::store::{unavailable, BackupStore, StoreFuture};

/// `pg_dump`'s environment for the database of `config`.
fn connection_env(config: &tokio_postgres::Config) -> Vec<(&'static str, Vec<u8>)> {
    let mut env = Vec::new();
    match config.get_hosts().first() {
        Some(Host::Tcp(host)) => env.push(("PGHOST", host.clone().into_bytes())),
        Some(Host::Unix(dir)) => env.push(("PGHOST", dir.as_os_str().as_encoded_bytes().to_vec())),
        None => {}
    }
    if let Some(port) = config.get_ports().first() {
        env.push(("PGPORT", port.to_string().into_bytes()));
    }
    if let Some(user) = config.get_user() {
        env.push(("PGUSER", user.as_bytes().to_vec()));
    }
    if let Some(password) = config.get_password() {
        env.push(("PGPASSWORD", password.to_vec()));
    }
    if let Some(db) = config.get_dbname() {
        env.push(("PGDATABASE", db.as_bytes().to_vec()));
    }
    env
}

/// Dumps the database of `config` into the new file `into` (0600, made
/// before a byte is written; refused if it exists). The dump goes to a
/// private `.part` file beside it first and is linked into place only
/// when `pg_dump` succeeded, so a failed or killed dump leaves no file
/// that looks like a backup. Returns the copy's size in bytes.
pub async fn dump_into(config: &tokio_postgres::Config, into: &Path) -> Result<u64, AppError> {
    let failed = |what: String| AppError::with_detail(ErrorCode::Database, what);
    if into.exists() {
        return Err(failed(format!("cannot create {}: it exists", into.display())));
    }
    let mut part = into.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&part)
        .map_err(|e| failed(format!("cannot create {}: {e}", part.display())))?;
    let dumped = async {
        let mut cmd = tokio::process::Command::new("pg_dump");
        cmd.arg("--format=custom")
            .arg("--no-owner")
            .arg("--file")
            .arg(&part)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in connection_env(config) {
            cmd.env(name, std::ffi::OsStr::from_bytes(&value));
        }
        let out = cmd.output().await.map_err(|e| {
            failed(format!(
                "cannot run pg_dump (is the postgresql client installed?): {e}"
            ))
        })?;
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            return Err(failed(format!("pg_dump failed ({}): {}", out.status, why.trim())));
        }
        // no overwrite: a file made at `into` meanwhile stays as it is
        std::fs::hard_link(&part, into)
            .map_err(|e| failed(format!("cannot create {}: {e}", into.display())))?;
        std::fs::metadata(into)
            .map(|m| m.len())
            .map_err(|e| failed(format!("cannot read {}: {e}", into.display())))
    }
    .await;
    let _ = std::fs::remove_file(&part);
    dumped
}

impl BackupStore for PgStore {
    fn extension(&self) -> &'static str {
        "dump"
    }

    fn backup(&self, into: PathBuf) -> StoreFuture<u64> {
        let config = self.config.clone();
        let task = self
            .threads
            .handle()
            .spawn(async move { dump_into(&config, &into).await });
        Box::pin(async move {
            task.await
                .map_err(|e| unavailable(format!("the backup task failed: {e}")))?
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::testing::TestDatabase;
    use super::*;

    #[actix::test]
    async fn a_dump_is_private_restorable_and_never_overwrites() {
        let db = TestDatabase::new();
        let store = db.open();
        let dir = tempfile::tempdir().unwrap();
        let into = dir.path().join("pinkpage.dump");
        let bytes = store.backup(into.clone()).await.unwrap();
        assert!(bytes > 0);
        assert_eq!(
            std::fs::metadata(&into).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // pg_restore reads it and finds the schema's tables
        let listed = std::process::Command::new("pg_restore")
            .arg("--list")
            .arg(&into)
            .output()
            .unwrap();
        assert!(listed.status.success());
        let listing = String::from_utf8_lossy(&listed.stdout);
        assert!(listing.contains("TABLE public audit_events"), "{listing}");
        // an existing file is never written over
        assert!(store.backup(into.clone()).await.is_err());
        assert_eq!(std::fs::metadata(&into).unwrap().len(), bytes);
        // no part file is left either way
        assert!(!dir.path().join("pinkpage.dump.part").exists());
    }

    #[actix::test]
    async fn a_failed_dump_leaves_no_file_and_says_why() {
        let db = TestDatabase::new();
        let dir = tempfile::tempdir().unwrap();
        let into = dir.path().join("x.dump");
        let config: tokio_postgres::Config = "postgres://postgres:pw@127.0.0.1:1/none".parse().unwrap();
        let e = dump_into(&config, &into).await.unwrap_err();
        let why = e.detail.unwrap();
        assert!(why.contains("pg_dump failed"), "{why}");
        assert!(!why.contains("pw@"), "{why}");
        assert!(!into.exists());
        assert!(!dir.path().join("x.dump.part").exists());
        drop(db);
    }
}
