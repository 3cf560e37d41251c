//! A consistent copy of the database while the daemon serves: SQLite's
//! `VACUUM INTO` on a connection of its own (a reader in WAL mode: writers
//! go on meanwhile, and the copy is one transaction's snapshot). Used by
//! the store's [`BackupStore`](crate::store::BackupStore) and by
//! `pinkpage backup FILE`.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use pinkpage_actors::{AppError, ErrorCode};
use rusqlite::{Connection, OpenFlags};

/// Copies the database at `db` into the new file `into` (made owner-only,
/// 0600, before a byte is written; refused if it exists). On any failure
/// the partial copy is removed. Returns the copy's size in bytes.
/// Blocking: call it off the event loop.
pub fn backup_into(db: &Path, into: &Path) -> Result<u64, AppError> {
    let failed = |what: String| AppError::with_detail(ErrorCode::Database, what);
    // made here, empty and private: VACUUM INTO takes an empty file and
    // keeps its mode
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(into)
        .map_err(|e| failed(format!("cannot create {}: {e}", into.display())))?;
    let copied = (|| {
        let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| failed(format!("cannot open {}: {e}", db.display())))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| failed(e.to_string()))?;
        let target = into
            .to_str()
            .ok_or_else(|| failed(format!("{} is not a UTF-8 path", into.display())))?;
        conn.execute("VACUUM INTO ?1", [target])
            .map_err(|e| failed(format!("backup into {} failed: {e}", into.display())))?;
        std::fs::metadata(into)
            .map(|m| m.len())
            .map_err(|e| failed(format!("cannot read {}: {e}", into.display())))
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(into);
    }
    copied
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_copy_is_private_whole_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        let into = dir.path().join("copy.db");
        let bytes = backup_into(&db, &into).unwrap();
        assert!(bytes > 0);
        assert_eq!(
            std::fs::metadata(&into).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let copy = Connection::open(&into).unwrap();
        let n: i64 = copy
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        // an existing file is never written over
        assert!(backup_into(&db, &into).is_err());
        assert_eq!(std::fs::metadata(&into).unwrap().len(), bytes);
    }

    #[test]
    fn a_failed_copy_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let into = dir.path().join("copy.db");
        assert!(backup_into(&dir.path().join("missing.db"), &into).is_err());
        assert!(!into.exists());
    }
}
