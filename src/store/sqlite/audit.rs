//! The audit trail's SQL: append, list, and the start-up record of work a
//! killed daemon left unfinished.

use rusqlite::{params, Connection};

use super::tx::apply_each;
use crate::records::{timestamp, AuditEvent, AuditQuery, NewAuditEvent};
use crate::store::Writes;

/// Writes one event through `conn` at its own time; returns its id. The
/// store threads call it, and so does the command line, which changes
/// accounts without a running daemon but must leave the same trail.
pub fn insert_audit(conn: &Connection, e: &NewAuditEvent) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO audit_events (at, actor, action, server, command, exit_status, bytes, detail, user, remote_addr, instance)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            timestamp(e.at),
            e.actor,
            e.action,
            e.server,
            e.command,
            e.exit_status,
            e.bytes,
            e.detail.as_ref().map(|d| d.to_string()),
            e.user,
            e.remote_addr,
            crate::records::INSTANCE
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Appends `rows` in one transaction (see `super::apply_each`).
pub(super) fn append(conn: &mut Connection, rows: &[NewAuditEvent]) -> Writes {
    apply_each(conn, rows, |tx, row| insert_audit(tx, row).map(Some))
}

/// The pairs of actions that open and close a piece of work a connection
/// does (at most one of each kind at a time per connection, so a start is
/// closed by the next end of its kind from the same actor), and the action
/// that records it was cut off by the daemon's end. Every way such work
/// ends while the daemon runs writes its end row, a client that leaves
/// included (`audit_cut_off` in `ws::stub` and `ws::bmx5::script`). Lock
/// sessions are not here: a lock released by a disconnect or taken away by
/// an admin has no `session.end`, and a restart always starts with the lock
/// free.
const WORK_PAIRS: [(&str, &str, &str); 3] = [
    ("ssh.command.start", "ssh.command.end", "ssh.command.interrupted"),
    ("transfer.start", "transfer.end", "transfer.interrupted"),
    ("script.start", "script.end", "script.interrupted"),
];

/// Finds the commands, transfers and scripts `instance`'s previous daemon
/// started and never ended (it was killed), and records each as
/// `<kind>.interrupted`, stamped now (the time of discovery), under the
/// same actor, user and server as its start, with the start's time and row
/// in `detail`; then writes this daemon's `daemon.start`. One transaction,
/// once, at start-up, before the daemon serves: only rows since the
/// previous `daemon.start` are read (older starts were dealt with at the
/// previous start-up, and an `.interrupted` row closes its start, so even a
/// start-up that failed half-way never marks one twice). The rows are
/// streamed once through the `action` index, keeping only the work still
/// open. Returns the `.interrupted` actions written.
pub(super) fn interrupt_left_work_and_start(
    conn: &mut Connection,
    instance: &str,
) -> rusqlite::Result<Vec<String>> {
    let tx = conn.transaction()?;
    let written = interrupt_left_work(&tx, instance)?;
    insert_audit(&tx, &NewAuditEvent::new("system", "daemon.start"))?;
    tx.commit()?;
    Ok(written)
}

fn interrupt_left_work(conn: &Connection, instance: &str) -> rusqlite::Result<Vec<String>> {
    let since: i64 = conn.query_row(
        "SELECT coalesce(max(id), 0) FROM audit_events WHERE action = 'daemon.start' AND instance = ?1",
        [instance],
        |r| r.get(0),
    )?;
    let actions: Vec<&str> = WORK_PAIRS.iter().flat_map(|(s, e, i)| [*s, *e, *i]).collect();
    let placeholders = vec!["?"; actions.len()].join(", ");
    let mut stmt = conn.prepare(&format!(
        "SELECT id, at, actor, action, server, command, user, remote_addr, detail FROM audit_events
         WHERE id > ? AND instance = ? AND action IN ({placeholders}) ORDER BY id"
    ))?;
    let mut bind: Vec<&dyn rusqlite::ToSql> = vec![&since, &instance];
    bind.extend(actions.iter().map(|a| a as &dyn rusqlite::ToSql));
    // (actor, pair index) -> the open start
    let mut open: std::collections::HashMap<(String, usize), NewAuditEvent> = Default::default();
    let mut rows = stmt.query(bind.as_slice())?;
    while let Some(row) = rows.next()? {
        let action: String = row.get(3)?;
        let actor: String = row.get(2)?;
        if let Some(pair) = WORK_PAIRS.iter().position(|(start, _, _)| *start == action) {
            let start_id: i64 = row.get(0)?;
            let started_at: String = row.get(1)?;
            let event = NewAuditEvent {
                at: crate::records::now(),
                actor: actor.clone(),
                action: WORK_PAIRS[pair].2.to_owned(),
                server: row.get(4)?,
                command: row.get(5)?,
                exit_status: None,
                bytes: None,
                detail: Some(serde_json::json!({
                    "started_at": started_at,
                    "start_id": start_id,
                    "reason": "no end was recorded before the daemon stopped",
                })),
                user: row.get(6)?,
                remote_addr: row.get(7)?,
            };
            open.insert((actor, pair), event);
        } else if let Some(pair) = WORK_PAIRS.iter().position(|(_, end, _)| *end == action) {
            open.remove(&(actor, pair));
        } else if let Some(pair) = WORK_PAIRS.iter().position(|(_, _, cut)| *cut == action) {
            // already marked (by a start-up that did not finish): closed,
            // if it names the start still open
            let detail: Option<String> = row.get(8)?;
            let start_id = detail
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                .and_then(|d| d["start_id"].as_i64());
            let key = (actor, pair);
            let names_it = open
                .get(&key)
                .and_then(|e| e.detail.as_ref())
                .is_some_and(|d| d["start_id"].as_i64() == start_id);
            if names_it {
                open.remove(&key);
            }
        }
    }
    drop(rows);
    let mut left: Vec<NewAuditEvent> = open.into_values().collect();
    left.sort_by_key(|e| e.detail.as_ref().and_then(|d| d["start_id"].as_i64()));
    let mut written = Vec::with_capacity(left.len());
    for mut event in left {
        event.at = crate::records::now();
        insert_audit(conn, &event)?;
        written.push(event.action);
    }
    Ok(written)
}

/// Events newest first (see [`AuditQuery`]).
pub(super) fn list(conn: &Connection, q: &AuditQuery) -> rusqlite::Result<Vec<AuditEvent>> {
    {
        let mut stmt = conn.prepare_cached(
            "SELECT id, at, actor, action, server, command, exit_status, bytes, detail, user, remote_addr
                 FROM audit_events
                 WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR action = ?2) AND (?4 IS NULL OR user = ?4)
                 ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![q.before_id, q.action, q.limit, q.user], |r| {
            let detail: Option<String> = r.get(8)?;
            let at: String = r.get(1)?;
            Ok(AuditEvent {
                id: r.get(0)?,
                event: NewAuditEvent {
                    at: chrono::DateTime::parse_from_rfc3339(&at)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .map_err(|e| {
                            rusqlite::Error::FromSqlConversionFailure(
                                1,
                                rusqlite::types::Type::Text,
                                Box::new(e),
                            )
                        })?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    server: r.get(4)?,
                    command: r.get(5)?,
                    exit_status: r.get(6)?,
                    bytes: r.get(7)?,
                    detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                    user: r.get(9)?,
                    remote_addr: r.get(10)?,
                },
            })
        })?;
        rows.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(conn: &Connection, actor: &str, action: &str) {
        let mut event = NewAuditEvent::new(actor, action);
        event.server = Some("alpha".into());
        event.user = Some("ops".into());
        insert_audit(conn, &event).unwrap();
    }

    fn actions(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT actor, action FROM audit_events WHERE action LIKE '%.interrupted' ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn only_work_started_since_the_last_daemon_start_and_never_ended_is_interrupted() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        // an older daemon's life: its open start was dealt with back then
        row(&conn, "a", "ssh.command.start");
        row(&conn, "system", "daemon.start");
        // the last daemon's life
        row(&conn, "a", "ssh.command.start");
        row(&conn, "a", "ssh.command.end");
        row(&conn, "a", "ssh.command.start"); // cut off
        row(&conn, "b", "transfer.start");
        row(&conn, "b", "transfer.end");
        row(&conn, "c", "script.start"); // cut off
        row(&conn, "d", "script.end"); // another actor's end closes nothing of c's
        row(&conn, "e", "session.start"); // sessions are not work

        assert_eq!(
            interrupt_left_work_and_start(&mut conn, "local").unwrap(),
            ["ssh.command.interrupted", "script.interrupted"]
        );
        assert_eq!(
            actions(&conn),
            [
                ("a".to_owned(), "ssh.command.interrupted".to_owned()),
                ("c".to_owned(), "script.interrupted".to_owned())
            ]
        );
        let (user, server, detail): (String, String, String) = conn
            .query_row(
                "SELECT user, server, detail FROM audit_events WHERE action = 'script.interrupted'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((user.as_str(), server.as_str()), ("ops", "alpha"));
        assert!(detail.contains("started_at"), "{detail}");

        // the next start-up (after this daemon's own start row, written in
        // the same step) finds nothing
        assert!(interrupt_left_work_and_start(&mut conn, "local")
            .unwrap()
            .is_empty());
        let starts: i64 = conn
            .query_row(
                "SELECT count(*) FROM audit_events WHERE action = 'daemon.start'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(starts, 3);
        // an .interrupted row closes its start even where no daemon.start
        // follows it (a start-up that marked, then failed)
        row(&conn, "f", "transfer.start");
        let open = interrupt_left_work(&conn, "local").unwrap();
        assert_eq!(open, ["transfer.interrupted"]);
        assert!(
            interrupt_left_work(&conn, "local").unwrap().is_empty(),
            "not marked twice"
        );
    }
}
