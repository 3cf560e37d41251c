//! The recordings index's SQL (migration 11), the PostgreSQL twin of
//! `sqlite::recordings`: starts, ends and removals through the journal;
//! the listing, one recording, start-up marking of recordings a killed
//! daemon left open, and the retention sweep's candidates.

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use futures_util::future::BoxFuture;
use pinkpage_actors::{AppError, ErrorCode};
use tokio_postgres::Row;

use super::tx::{apply_each, col};
use super::tx::{db_error, pool_error};
use super::PgStore;
use crate::records::recording::{Recording, RecordingState, RecordingWrite, RecordingsQuery};
use crate::records::{instance, timestamp};
use crate::store::{RecordingStore, StoreFuture, Writes};

const COLUMNS: &str =
    "id, kind, \"user\", server, command, terminal_id, run_id, step, started_at, ended_at, \
                       state, reason, exit_status, error, bytes, width, height, file";

/// Applies `writes` in order in one transaction. An end only ends a
/// recording still `recording` (an end after a start-up marked it
/// interrupted changes nothing); a start of a known id is rejected.
pub(super) async fn apply(pool: Pool, writes: Vec<RecordingWrite>) -> Writes {
    apply_each(pool, &writes, |tx, w| {
        Box::pin(async move { write(tx, w).await.map(|()| None) })
    })
    .await
}

async fn write(tx: &Transaction<'_>, w: &RecordingWrite) -> Result<(), tokio_postgres::Error> {
    match w {
        RecordingWrite::Start(r) => {
            let stmt = tx
                .prepare_cached(&format!(
                    "INSERT INTO recordings ({COLUMNS}, instance) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
                ))
                .await?;
            tx.execute(
                &stmt,
                &[
                    &r.id,
                    &r.kind,
                    &r.user,
                    &r.server,
                    &r.command,
                    &r.terminal_id,
                    &r.run_id,
                    &r.step,
                    &timestamp(r.started_at),
                    &r.ended_at.map(timestamp),
                    &r.state.as_str(),
                    &r.reason,
                    &r.exit_status,
                    &r.error,
                    &r.bytes,
                    &r.width,
                    &r.height,
                    &r.file,
                    &instance(),
                ],
            )
            .await?;
        }
        RecordingWrite::End {
            id,
            at,
            state,
            reason,
            exit_status,
            error,
            bytes,
        } => {
            tx.execute(
                "UPDATE recordings SET ended_at = $2, state = $3, reason = $4, exit_status = $5, \
                 error = $6, bytes = $7 WHERE id = $1 AND state = 'recording'",
                &[
                    id,
                    &timestamp(*at),
                    &state.as_str(),
                    reason,
                    exit_status,
                    error,
                    bytes,
                ],
            )
            .await?;
        }
        RecordingWrite::Remove(id) => {
            tx.execute("DELETE FROM recordings WHERE id = $1", &[id]).await?;
        }
    }
    Ok(())
}

fn time(row: &Row, i: usize) -> Result<Option<DateTime<Utc>>, AppError> {
    let text: Option<String> = col(row, i)?;
    text.map(|t| {
        DateTime::parse_from_rfc3339(&t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                let column = row.columns().get(i).map_or("?", |c| c.name());
                AppError::with_detail(ErrorCode::Database, format!("column {column}: {e}"))
            })
    })
    .transpose()
}

fn recording(row: &Row) -> Result<Recording, AppError> {
    let id: String = col(row, 0)?;
    let state: String = col(row, 10)?;
    Ok(Recording {
        pty_id: id.clone(),
        id,
        kind: col(row, 1)?,
        user: col(row, 2)?,
        server: col(row, 3)?,
        command: col(row, 4)?,
        terminal_id: col(row, 5)?,
        run_id: col(row, 6)?,
        step: col(row, 7)?,
        started_at: time(row, 8)?.unwrap_or_default(),
        ended_at: time(row, 9)?,
        state: RecordingState::parse(&state).unwrap_or(RecordingState::Interrupted),
        reason: col(row, 11)?,
        exit_status: col(row, 12)?,
        error: col(row, 13)?,
        bytes: col(row, 14)?,
        width: col(row, 15)?,
        height: col(row, 16)?,
        file: col(row, 17)?,
    })
}

/// The recordings `q` asks for, newest first.
pub(super) async fn list(pool: Pool, q: RecordingsQuery) -> Result<Vec<Recording>, AppError> {
    let client = pool.get().await.map_err(pool_error)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings
             WHERE ($1::text IS NULL OR \"user\" = $1) AND ($2::text IS NULL OR server = $2)
               AND ($3::text IS NULL OR started_at >= $3) AND ($4::text IS NULL OR started_at < $4)
               AND ($5::text IS NULL OR strpos(command, $5) > 0) AND ($6::text IS NULL OR run_id = $6)
               AND ($7::text IS NULL OR server IN (SELECT jsonb_array_elements_text($7::text::jsonb)))
               AND ($8::text IS NULL OR \"user\" = $8)
             ORDER BY started_at DESC, id DESC LIMIT $9 OFFSET $10"
        ))
        .await
        .map_err(db_error)?;
    let rows = client
        .query(
            &stmt,
            &[
                &q.user,
                &q.server,
                &q.since.map(timestamp),
                &q.until.map(timestamp),
                &q.text,
                &q.run_id,
                &q.visible.as_json(),
                &q.owner,
                &i64::from(q.limit),
                &i64::from(q.offset),
            ],
        )
        .await
        .map_err(db_error)?;
    rows.iter().map(recording).collect()
}

/// One recording, whoever's it is (the caller judges access).
pub(super) async fn get(pool: Pool, id: String) -> Result<Option<Recording>, AppError> {
    let client = pool.get().await.map_err(pool_error)?;
    let stmt = client
        .prepare_cached(&format!("SELECT {COLUMNS} FROM recordings WHERE id = $1"))
        .await
        .map_err(db_error)?;
    let row = client.query_opt(&stmt, &[&id]).await.map_err(db_error)?;
    row.as_ref().map(recording).transpose()
}

/// Marks `instance`'s recordings still `recording` as `interrupted` (a
/// killed daemon left them open), at `at`; how many.
pub(super) async fn interrupt_left(
    pool: Pool,
    instance: String,
    at: DateTime<Utc>,
) -> Result<usize, AppError> {
    let client = pool.get().await.map_err(pool_error)?;
    let n = client
        .execute(
            "UPDATE recordings SET state = 'interrupted', reason = 'interrupted', ended_at = $2 \
             WHERE state = 'recording' AND instance = $1",
            &[&instance, &timestamp(at)],
        )
        .await
        .map_err(db_error)?;
    Ok(n as usize)
}

/// What retention removes, oldest first, at most `limit`: finished
/// recordings started before `before`, then the oldest finished ones
/// while all of them together hold more than `max_bytes`. One read-only
/// snapshot, so the total and the rows agree.
pub(super) async fn expired(
    pool: Pool,
    before: DateTime<Utc>,
    max_bytes: u64,
    limit: u32,
) -> Result<Vec<Recording>, AppError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = super::tx::snapshot(&mut client).await.map_err(db_error)?;
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE state != 'recording' AND started_at < $1 \
             ORDER BY started_at, id LIMIT $2"
        ))
        .await
        .map_err(db_error)?;
    let old = tx
        .query(&stmt, &[&timestamp(before), &i64::from(limit)])
        .await
        .map_err(db_error)?;
    let mut out = old.iter().map(recording).collect::<Result<Vec<_>, _>>()?;
    // sum() of BIGINT is NUMERIC: back to BIGINT
    let total: i64 = tx
        .query_one("SELECT coalesce(sum(bytes), 0)::bigint FROM recordings", &[])
        .await
        .map_err(db_error)
        .and_then(|r| col(&r, 0))?;
    let mut over = total - out.iter().map(|r| r.bytes).sum::<i64>() - max_bytes.min(i64::MAX as u64) as i64;
    if over > 0 && out.len() < limit as usize {
        let stmt = tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM recordings WHERE state != 'recording' AND started_at >= $1 \
                 ORDER BY started_at, id LIMIT $2"
            ))
            .await
            .map_err(db_error)?;
        let rows = tx
            .query(
                &stmt,
                &[&timestamp(before), &((limit as usize - out.len()) as i64)],
            )
            .await
            .map_err(db_error)?;
        for row in &rows {
            if over <= 0 {
                break;
            }
            let r = recording(row)?;
            over -= r.bytes;
            out.push(r);
        }
    }
    tx.commit().await.map_err(db_error)?;
    Ok(out)
}

impl RecordingStore for PgStore {
    fn apply(&self, writes: Vec<RecordingWrite>) -> BoxFuture<'static, Writes> {
        self.run(move |pool| apply(pool, writes))
    }

    fn list(&self, query: RecordingsQuery) -> StoreFuture<Vec<Recording>> {
        self.run(move |pool| list(pool, query))
    }

    fn get(&self, id: String) -> StoreFuture<Option<Recording>> {
        self.run(move |pool| get(pool, id))
    }

    fn interrupt_left(&self, instance: &str, at: DateTime<Utc>) -> StoreFuture<usize> {
        let instance = instance.to_owned();
        self.run(move |pool| interrupt_left(pool, instance, at))
    }

    fn expired(&self, before: DateTime<Utc>, max_bytes: u64, limit: u32) -> StoreFuture<Vec<Recording>> {
        self.run(move |pool| expired(pool, before, max_bytes, limit))
    }
}
