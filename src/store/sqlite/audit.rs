//! The audit trail's SQL: append (linked into the chain, see
//! `audit_chain`), list, page for export, and the start-up record of work
//! a killed daemon left unfinished.

use rusqlite::{params, Connection, TransactionBehavior};

#[cfg(test)]
use super::audit_chain::CHAIN_COLUMNS;
use super::audit_chain::{append_after, tail};
use super::tx::db_error;
use crate::records::audit::{work_actions, LeftWork, WorkRow};
use crate::records::{audit::Outcome, timestamp, AuditEvent, AuditQuery, NewAuditEvent};
use crate::store::chain::Chain;
use crate::store::{Applied, Writes};

/// Writes one event through `conn`, linked into the chain; returns its id.
/// The caller must hold the write lock (a `BEGIN IMMEDIATE` transaction):
/// the command line calls it inside the transaction of its account change,
/// so there is never a change without its row.
pub fn insert_audit(conn: &Connection, chain: &Chain, e: &NewAuditEvent) -> rusqlite::Result<i64> {
    let end = tail(conn, chain)?;
    let (ids, _) = append_after(conn, chain, end, crate::records::instance(), [e])?;
    Ok(ids[0])
}

/// Appends `rows` in one write transaction, linked into the chain. Any
/// failure leaves the whole batch to be tried again: no row is refused on
/// its own merits, and a chain cannot skip one. (The store threads' append;
/// public for the audit benchmark.)
pub fn append(conn: &mut Connection, chain: &Chain, rows: &[NewAuditEvent]) -> Writes {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let end = tail(&tx, chain).map_err(db_error)?;
    let (ids, _) = append_after(&tx, chain, end, crate::records::instance(), rows).map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    Ok(ids.into_iter().map(|id| Applied::Written(Some(id))).collect())
}

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
    chain: &Chain,
    instance: &str,
) -> rusqlite::Result<Vec<String>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let written = interrupt_left_work(&tx, chain, instance)?;
    insert_audit(&tx, chain, &NewAuditEvent::new("system", "daemon.start"))?;
    tx.commit()?;
    Ok(written)
}

fn interrupt_left_work(conn: &Connection, chain: &Chain, instance: &str) -> rusqlite::Result<Vec<String>> {
    let since: i64 = conn.query_row(
        "SELECT coalesce(max(id), 0) FROM audit_events WHERE action = 'daemon.start' AND instance = ?1",
        [instance],
        |r| r.get(0),
    )?;
    let actions = work_actions();
    let placeholders = vec!["?"; actions.len()].join(", ");
    let mut stmt = conn.prepare(&format!(
        "SELECT id, at, actor, action, server, command, user, remote_addr, detail, domain, target FROM audit_events
         WHERE id > ? AND instance = ? AND action IN ({placeholders}) ORDER BY id"
    ))?;
    let mut bind: Vec<&dyn rusqlite::ToSql> = vec![&since, &instance];
    bind.extend(actions.iter().map(|a| a as &dyn rusqlite::ToSql));
    let mut left = LeftWork::default();
    let mut rows = stmt.query(bind.as_slice())?;
    while let Some(row) = rows.next()? {
        left.follow(WorkRow {
            id: row.get(0)?,
            at: row.get(1)?,
            actor: row.get(2)?,
            action: row.get(3)?,
            server: row.get(4)?,
            command: row.get(5)?,
            user: row.get(6)?,
            remote_addr: row.get(7)?,
            detail: row.get(8)?,
            domain: row.get(9)?,
            target: row.get(10)?,
        });
    }
    drop(rows);
    let left = left.interrupted();
    let mut written = Vec::with_capacity(left.len());
    for mut event in left {
        event.at = crate::records::now();
        insert_audit(conn, chain, &event)?;
        written.push(event.action);
    }
    Ok(written)
}

/// The columns a stored event is read with ([`event_of`]): the chain's,
/// then the MAC (a unit test holds them together).
const EVENT_COLUMNS: &str =
    "id, instance, at, actor, user, remote_addr, domain, action, server, target, outcome, code, command, exit_status, bytes, detail, mac";

/// A stored event read with [`EVENT_COLUMNS`].
fn event_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEvent> {
    let conversion = |i: usize, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e)
    };
    let at: String = r.get(2)?;
    let action: String = r.get(7)?;
    let domain: Option<String> = r.get(6)?;
    let outcome: Option<String> = r.get(10)?;
    let outcome = match outcome {
        None => None,
        Some(o) => Some(Outcome::parse(&o).ok_or_else(|| {
            conversion(
                10,
                format!("audit row has an unknown outcome '{o}' (run pinkpage audit verify)").into(),
            )
        })?),
    };
    let detail: Option<String> = r.get(15)?;
    let code: Option<i64> = r.get(11)?;
    Ok(AuditEvent {
        id: r.get(0)?,
        instance: r.get(1)?,
        event: NewAuditEvent {
            at: chrono::DateTime::parse_from_rfc3339(&at)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| conversion(2, Box::new(e)))?,
            actor: r.get(3)?,
            user: r.get(4)?,
            remote_addr: r.get(5)?,
            domain: domain.unwrap_or_else(|| crate::records::audit::domain_of(&action).to_owned()),
            action,
            server: r.get(8)?,
            target: r.get(9)?,
            outcome,
            code: code.and_then(|c| u32::try_from(c).ok()),
            command: r.get(12)?,
            exit_status: r.get(13)?,
            bytes: r.get(14)?,
            detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
        },
        mac: r.get(16)?,
    })
}

/// Events newest first (see [`AuditQuery`]): every filter in the query, so
/// a page is full whatever it filters.
pub(super) fn list(conn: &Connection, q: &AuditQuery) -> rusqlite::Result<Vec<AuditEvent>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events
         WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR action = ?2) AND (?3 IS NULL OR user = ?3)
           AND (?4 IS NULL OR server = ?4) AND (?5 IS NULL OR domain = ?5)
           AND (?6 IS NULL OR at >= ?6) AND (?7 IS NULL OR at < ?7)
           AND (?8 IS NULL OR instr(lower(coalesce(command, '')), ?8) > 0
                OR instr(lower(coalesce(target, '')), ?8) > 0
                OR instr(lower(coalesce(detail, '')), ?8) > 0)
         ORDER BY id DESC LIMIT ?9"
    ))?;
    let rows = stmt.query_map(
        params![
            q.before_id,
            q.action,
            q.user,
            q.server,
            q.domain,
            q.since.map(timestamp),
            q.until.map(timestamp),
            q.text.as_ref().map(|t| t.to_ascii_lowercase()),
            q.limit
        ],
        event_of,
    )?;
    rows.collect()
}

/// At most `limit` events with ids above `after_id`, oldest first: a page
/// of the export (`GET /api/v1/audit/export`).
pub(super) fn page_after(conn: &Connection, after_id: i64, limit: u32) -> rusqlite::Result<Vec<AuditEvent>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM audit_events WHERE id > ?1 ORDER BY id LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after_id, limit], event_of)?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chain::{AuditKey, Head, Mac};

    fn chain() -> Chain {
        let key = AuditKey::from_bytes([1; 32]);
        let (genesis, _) = key.genesis().finish();
        Chain::new(key, Head { id: 0, mac: genesis })
    }

    fn row(conn: &Connection, actor: &str, action: &str) {
        let mut event = NewAuditEvent::new(actor, action);
        event.server = Some("alpha".into());
        event.user = Some("ops".into());
        insert_audit(conn, &chain(), &event).unwrap();
    }

    #[test]
    fn events_are_read_with_the_chains_columns_and_the_mac() {
        assert_eq!(EVENT_COLUMNS, format!("{CHAIN_COLUMNS}, mac"));
        assert_eq!(CHAIN_COLUMNS, crate::store::chain::COLUMNS.join(", "));
        let _ = Mac([0; 32]);
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
            interrupt_left_work_and_start(&mut conn, &chain(), "local").unwrap(),
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
        assert!(interrupt_left_work_and_start(&mut conn, &chain(), "local")
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
        let open = interrupt_left_work(&conn, &chain(), "local").unwrap();
        assert_eq!(open, ["transfer.interrupted"]);
        assert!(
            interrupt_left_work(&conn, &chain(), "local").unwrap().is_empty(),
            "not marked twice"
        );
    }
}
