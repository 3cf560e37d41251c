//! Retention's deletes in SQL (issue 28; indexes of migration 12), the
//! PostgreSQL twin of `sqlite::retention`: the oldest finished runs with
//! their children, and old health transitions, a bounded number of rows
//! per transaction (`crate::retention` calls these in a loop, pausing
//! between calls). The audit trail's cut is `audit_chain`'s.
//!
//! The statements are SQLite's, rows named by their keys. Several
//! instances may sweep at once: the runs a call picks are locked
//! (`FOR UPDATE`) until it commits, so another sweep waits for them and
//! then no longer finds them, and each call's counts are what it deleted.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use pinkpage_actors::AppError;

use super::tx::col;
use super::tx::{db_error, pool_error};
use crate::records::timestamp;
use crate::store::migrations::RunTables;
use crate::store::Expired;

/// Deletes at most `limit` rows of runs that finished before `before`,
/// oldest finished first, in one transaction: each run's children, then
/// the run once none are left. A run whose children outnumber what is
/// left of `limit` keeps the rest, and itself, for the next call.
pub(super) async fn expire_runs(
    pool: Pool,
    tables: &RunTables,
    before: DateTime<Utc>,
    limit: u32,
) -> Result<Expired, AppError> {
    let RunTables {
        runs,
        children,
        child_key,
        live,
    } = tables;
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(db_error)?;
    // a running run has no finished_at: it is never in this range
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT run_id FROM {runs} WHERE finished_at < $1 AND status NOT IN ({live})
             ORDER BY finished_at, seq LIMIT $2 FOR UPDATE"
        ))
        .await
        .map_err(db_error)?;
    let candidates: Vec<String> = tx
        .query(&stmt, &[&timestamp(before), &i64::from(limit)])
        .await
        .map_err(db_error)?
        .iter()
        .map(|r| col(r, 0))
        .collect::<Result<_, _>>()?;
    let delete_children = tx
        .prepare_cached(&format!(
            "DELETE FROM {children} WHERE run_id = $1 AND ({child_key}) IN
                (SELECT {child_key} FROM {children} WHERE run_id = $1 LIMIT $2)"
        ))
        .await
        .map_err(db_error)?;
    let delete_run = tx
        .prepare_cached(&format!("DELETE FROM {runs} WHERE run_id = $1"))
        .await
        .map_err(db_error)?;
    let mut budget = u64::from(limit);
    let mut expired = Expired::default();
    for run_id in candidates {
        if budget == 0 {
            break;
        }
        let gone = tx
            .execute(&delete_children, &[&run_id, &(budget as i64)])
            .await
            .map_err(db_error)?;
        expired.children += gone;
        budget -= gone;
        if budget == 0 {
            // perhaps some are left: the run waits for the next call
            break;
        }
        // fewer than asked: none are left
        expired.runs += tx.execute(&delete_run, &[&run_id]).await.map_err(db_error)?;
        budget -= 1;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(expired)
}

/// Deletes at most `limit` health transitions checked before `before`,
/// oldest first, keeping each server's newest; how many.
pub(super) async fn expire_health(pool: Pool, before: DateTime<Utc>, limit: u32) -> Result<u64, AppError> {
    let client = pool.get().await.map_err(pool_error)?;
    // one statement: its own transaction
    client
        .execute(
            "DELETE FROM health_events WHERE id IN (
                SELECT h.id FROM health_events h
                WHERE h.at < $1
                  AND EXISTS (SELECT 1 FROM health_events n WHERE n.server = h.server AND n.id > h.id)
                ORDER BY h.at, h.id LIMIT $2)",
            &[&timestamp(before), &i64::from(limit)],
        )
        .await
        .map_err(db_error)
}
