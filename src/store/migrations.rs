//! Versioned schema migrations.
//!
//! `PRAGMA user_version` holds how many entries of [`MIGRATIONS`] have been
//! applied. Each entry runs once, in its own transaction, in order. Never
//! edit an entry that has shipped: add a new one.

use rusqlite::Connection;

/// The schema, one step at a time.
pub const MIGRATIONS: &[&str] = &[
    // 1: the audit trail
    "CREATE TABLE audit_events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          TEXT    NOT NULL,           -- RFC 3339, UTC
        actor       TEXT    NOT NULL,           -- connection id, 'rest', 'admin', 'system'
        action      TEXT    NOT NULL,           -- e.g. 'session.start', 'ssh.command.end'
        server      TEXT,
        command     TEXT,
        exit_status INTEGER,
        bytes       INTEGER,
        detail      TEXT                        -- JSON object, never a secret
    );
    CREATE INDEX audit_events_at ON audit_events(at);
    CREATE INDEX audit_events_action ON audit_events(action);",
    // 2: health transitions (one row each time a server's is_healthy flips)
    "CREATE TABLE health_events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          TEXT    NOT NULL,           -- when the deciding check finished, RFC 3339 UTC
        server      TEXT    NOT NULL,
        host        TEXT    NOT NULL,
        healthy     INTEGER NOT NULL,           -- 0 / 1
        previous    INTEGER,                    -- 0 / 1, NULL for a server's first result
        error       TEXT,                       -- why the last check failed
        latency_ms  REAL                        -- of the last good check
    );
    CREATE INDEX health_events_server ON health_events(server, id);",
];

/// Applies every migration the database has not seen yet.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: usize = conn.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))? as usize;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
        log::info!(version = index + 1; "database migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
    }
}
