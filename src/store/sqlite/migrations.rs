//! Applies the schema's steps ([`crate::store::migrations`]) on SQLite.
//!
//! `PRAGMA user_version` holds how many steps have been applied. Each runs
//! once, in its own transaction, in order.

use rusqlite::Connection;

pub use crate::store::migrations::MIGRATIONS;

/// Applies every migration the database has not seen yet.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: usize = conn.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0))? as usize;
    for (index, step) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(step.sqlite)?;
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
    fn workflow_runs_from_before_get_the_servers_of_their_steps() {
        let mut conn = Connection::open_in_memory().unwrap();
        for step in &MIGRATIONS[..7] {
            conn.execute_batch(step.sqlite).unwrap();
        }
        conn.pragma_update(None, "user_version", 7).unwrap();
        conn.execute_batch(
            r#"INSERT INTO workflow_runs (run_id, workflow, actor, params, status, started_at)
                   VALUES ('r1', 'w', 'rest', '{}', 'succeeded', '2026-01-01T00:00:00.000Z'),
                          ('r2', 'w', 'rest', '{}', 'succeeded', '2026-01-01T00:00:00.000Z');
               INSERT INTO workflow_steps (run_id, idx, name, kind, plan, status) VALUES
                   ('r1', 0, 'a', 'command', '{"kind":"command","server":"web-1"}', 'succeeded'),
                   ('r1', 1, 'b', 'transfer', '{"kind":"transfer","source_server":"web-1","destination_server":"db-1"}', 'succeeded'),
                   ('r1', 2, 'c', 'batch', '{"kind":"batch","servers":["app-1","db-1"]}', 'succeeded'),
                   ('r2', 0, 'p', 'pause', '{"kind":"pause","message":"x"}', 'succeeded');"#,
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let servers = |run: &str| -> String {
            conn.query_row(
                "SELECT servers FROM workflow_runs WHERE run_id = ?1",
                [run],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(servers("r1"), r#"["app-1","db-1","web-1"]"#);
        assert_eq!(servers("r2"), "[]");
    }

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
