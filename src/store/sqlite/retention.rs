//! Retention's deletes in SQL (issue 28; indexes of migration 12): the
//! oldest finished runs with their children, and old health transitions,
//! a bounded number of rows per transaction so the write lock is never
//! held for long (`crate::retention` calls these in a loop, pausing
//! between calls). The audit trail's cut is `audit_chain::cut`.
//!
//! Every statement names rows by their keys (a run's id, a child's
//! primary key, an event's id), never by SQLite's rowid, so the same
//! statements carry over to another database.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use crate::records::timestamp;
use crate::store::migrations::RunTables;
use crate::store::Expired;

/// Deletes at most `limit` rows of runs that finished before `before`,
/// oldest finished first, in one transaction: each run's children, then
/// the run once none are left. A run whose children outnumber what is
/// left of `limit` keeps the rest, and itself, for the next call.
pub(super) fn expire_runs(
    conn: &mut Connection,
    tables: &RunTables,
    before: DateTime<Utc>,
    limit: u32,
) -> rusqlite::Result<Expired> {
    let RunTables {
        runs,
        children,
        child_key,
        live,
    } = tables;
    let tx = conn.transaction()?;
    // a running run has no finished_at: it is never in this range
    let candidates: Vec<String> = {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT run_id FROM {runs} WHERE finished_at < ?1 AND status NOT IN ({live})
             ORDER BY finished_at, seq LIMIT ?2"
        ))?;
        let ids = stmt.query_map(params![timestamp(before), limit], |r| r.get(0))?;
        ids.collect::<rusqlite::Result<_>>()?
    };
    let mut budget = u64::from(limit);
    let mut expired = Expired::default();
    for run_id in candidates {
        if budget == 0 {
            break;
        }
        let gone = tx.execute(
            &format!(
                "DELETE FROM {children} WHERE run_id = ?1 AND ({child_key}) IN
                    (SELECT {child_key} FROM {children} WHERE run_id = ?1 LIMIT ?2)"
            ),
            params![run_id, budget as i64],
        )? as u64;
        expired.children += gone;
        budget -= gone;
        if budget == 0 {
            // perhaps some are left: the run waits for the next call
            break;
        }
        // fewer than asked: none are left
        expired.runs += tx.execute(&format!("DELETE FROM {runs} WHERE run_id = ?1"), [&run_id])? as u64;
        budget -= 1;
    }
    tx.commit()?;
    Ok(expired)
}

/// Deletes at most `limit` health transitions checked before `before`,
/// oldest first, keeping each server's newest; how many.
pub(super) fn expire_health(
    conn: &mut Connection,
    before: DateTime<Utc>,
    limit: u32,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction()?;
    let gone = tx.execute(
        "DELETE FROM health_events WHERE id IN (
            SELECT h.id FROM health_events h
            WHERE h.at < ?1
              AND EXISTS (SELECT 1 FROM health_events n WHERE n.server = h.server AND n.id > h.id)
            ORDER BY h.at, h.id LIMIT ?2)",
        params![timestamp(before), limit],
    )? as u64;
    tx.commit()?;
    Ok(gone)
}

#[cfg(test)]
mod tests;
