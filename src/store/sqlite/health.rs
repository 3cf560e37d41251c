//! Health transitions in SQL (migration 2): one row each time a server's
//! `is_healthy` flips, at the time of the check that decided it.

use pinkpage_actors::health::HealthTransition;
use rusqlite::{params, Connection};

use super::tx::apply_each;
use crate::records::HealthEvent;
use crate::store::Writes;

/// Records `transitions` in order, in one transaction.
pub(super) fn record(conn: &mut Connection, transitions: &[HealthTransition]) -> Writes {
    apply_each(conn, transitions, |tx, t| insert(tx, t).map(Some))
}

fn insert(conn: &Connection, t: &HealthTransition) -> rusqlite::Result<i64> {
    let s = &t.status;
    // A transition always follows a check, so last_checked is set; the
    // fallback only guards against a future caller that forgets it.
    let at = s
        .last_checked
        .clone()
        .unwrap_or_else(|| crate::records::timestamp(crate::records::now()));
    conn.execute(
        "INSERT INTO health_events (at, server, host, healthy, previous, error, latency_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            at,
            s.server_name,
            s.host,
            s.is_healthy.unwrap_or(false),
            t.previous,
            s.last_error,
            s.latency_ms
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

pub(super) fn list(conn: &Connection, server: &str, limit: u32) -> rusqlite::Result<Vec<HealthEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, server, host, healthy, previous, error, latency_ms
         FROM health_events WHERE server = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![server, limit], |r| {
        Ok(HealthEvent {
            id: r.get(0)?,
            at: r.get(1)?,
            server_name: r.get(2)?,
            host: r.get(3)?,
            is_healthy: r.get(4)?,
            previous: r.get(5)?,
            error: r.get(6)?,
            latency_ms: r.get(7)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pinkpage_actors::health::ServerHealthStatus;

    fn transition(server: &str, healthy: bool, previous: Option<bool>, at: &str) -> HealthTransition {
        let mut status = ServerHealthStatus::unchecked(server, "10.0.0.5");
        status.is_healthy = Some(healthy);
        status.last_checked = Some(at.to_owned());
        status.last_error = (!healthy).then(|| "connection refused".to_owned());
        HealthTransition { status, previous }
    }

    #[test]
    fn transitions_are_listed_per_server_newest_first() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        insert(&conn, &transition("web1", true, None, "2025-01-01T12:00:00Z")).unwrap();
        insert(&conn, &transition("web2", false, None, "2025-01-01T12:00:00Z")).unwrap();
        insert(
            &conn,
            &transition("web1", false, Some(true), "2025-01-01T12:01:00Z"),
        )
        .unwrap();

        let events = list(&conn, "web1", 10).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(
            (events[0].is_healthy, events[0].previous, events[0].at.as_str()),
            (false, Some(true), "2025-01-01T12:01:00Z")
        );
        assert_eq!(events[0].error.as_deref(), Some("connection refused"));
        assert_eq!((events[1].is_healthy, events[1].previous), (true, None));
        assert_eq!(list(&conn, "web1", 1).unwrap().len(), 1);
        assert!(list(&conn, "nope", 10).unwrap().is_empty());
    }
}
