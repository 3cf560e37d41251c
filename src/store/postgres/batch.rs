//! BMX4 runs and their per-command results, in SQL (migration 3): the
//! PostgreSQL twin of `sqlite::batch`, statement for statement.

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use futures_util::future::BoxFuture;
use pinkpage_actors::batch::plan::{CommandResult, CommandStatus};
use pinkpage_actors::{AppError, ErrorCode};
use tokio_postgres::Row;

use super::tx::{apply_each, bad_text, col, flag, int, opt_int, pg_text};
use super::tx::{db_error, pool_error, visible_on};
use super::PgStore;
use crate::records::batch::{ResultsPage, RESULTS_PAGE_MAX_BYTES};
use crate::records::{
    timestamp, BatchEnd, BatchRun, BatchRunDetail, BatchRunStatus, BatchWrite, NewBatchRun, Visible,
};
use crate::store::{BatchStore, Expired, StoreFuture, Writes};

/// Applies `writes` in order, in one transaction.
pub(super) async fn apply(pool: Pool, writes: Vec<BatchWrite>) -> Writes {
    apply_each(pool, &writes, |tx, w| Box::pin(write(tx, w))).await
}

async fn write(tx: &Transaction<'_>, w: &BatchWrite) -> Result<Option<i64>, tokio_postgres::Error> {
    match w {
        BatchWrite::Create(r) => create(tx, r).await.map(|()| None),
        BatchWrite::Result(r) => result(tx, r).await.map(|()| None),
        BatchWrite::End(e) => end(tx, e).await.map(|()| None),
    }
}

async fn create(tx: &Transaction<'_>, r: &NewBatchRun) -> Result<(), tokio_postgres::Error> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO batch_runs (run_id, actor, started_at, status, servers, commands,
                stop_on_error, retries, retry_delay_ms, timeout_s, \"user\", remote_addr, instance)
             VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &r.run_id,
            &r.actor,
            &timestamp(r.at),
            &to_json(&r.servers),
            &to_json(&r.commands),
            &i64::from(r.stop_on_error),
            &i64::from(r.retries),
            &(r.retry_delay_ms as i64),
            &r.timeout_s,
            &r.user,
            &r.remote_addr,
            &crate::records::instance(),
        ],
    )
    .await?;
    Ok(())
}

/// A result, or its replacement when the run already has one for that
/// server and index (SQLite's `INSERT OR REPLACE`). A result of a run the
/// store does not have breaks the foreign key: rejected.
async fn result(tx: &Transaction<'_>, r: &CommandResult) -> Result<(), tokio_postgres::Error> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO batch_results (run_id, server, idx, command, status, exit_status,
                exit_signal, stdout, stderr, truncated, attempts, duration_ms, error_code, error_detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (run_id, server, idx) DO UPDATE SET command = EXCLUDED.command,
                status = EXCLUDED.status, exit_status = EXCLUDED.exit_status,
                exit_signal = EXCLUDED.exit_signal, stdout = EXCLUDED.stdout,
                stderr = EXCLUDED.stderr, truncated = EXCLUDED.truncated,
                attempts = EXCLUDED.attempts, duration_ms = EXCLUDED.duration_ms,
                error_code = EXCLUDED.error_code, error_detail = EXCLUDED.error_detail",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &r.run_id,
            &r.server,
            &(r.index as i64),
            &pg_text(&r.command),
            &r.status.as_str(),
            &r.exit_status.map(i64::from),
            &r.exit_signal,
            &pg_text(&r.stdout),
            &pg_text(&r.stderr),
            &i64::from(r.truncated),
            &i64::from(r.attempts),
            &(r.duration_ms as i64),
            &r.error.as_ref().map(|e| i64::from(e.code.code())),
            &r.error.as_ref().and_then(|e| e.detail.clone()),
        ],
    )
    .await?;
    Ok(())
}

/// Finishes a run still `running`. A run that is not (a second end, or one
/// the start-up marked `interrupted`) is left as it is and logged: only
/// its recorder ends a run, once, so this must be looked into.
async fn end(tx: &Transaction<'_>, e: &BatchEnd) -> Result<(), tokio_postgres::Error> {
    let stmt = tx
        .prepare_cached(
            "UPDATE batch_runs SET status = $2, finished_at = $3, succeeded = $4, failed = $5,
                skipped = $6, duration_ms = $7
             WHERE run_id = $1 AND status = 'running'",
        )
        .await?;
    let changed = tx
        .execute(
            &stmt,
            &[
                &e.run_id,
                &e.status.as_str(),
                &timestamp(e.at),
                &i64::from(e.succeeded),
                &i64::from(e.failed),
                &i64::from(e.skipped),
                &(e.duration_ms as i64),
            ],
        )
        .await?;
    if changed == 0 {
        log::error!(run_id = e.run_id.as_str(); "batch run was not running when its end was written");
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

fn from_json(text: String) -> Vec<String> {
    serde_json::from_str(&text).unwrap_or_default()
}

const RUN_COLUMNS: &str = "run_id, actor, started_at, finished_at, status, servers, commands, stop_on_error,
    retries, retry_delay_ms, timeout_s, succeeded, failed, skipped, duration_ms, \"user\", remote_addr";

/// A run row (in [`RUN_COLUMNS`] order) and its commands.
fn run_from_row(r: &Row) -> Result<(BatchRun, Vec<String>), AppError> {
    let commands = from_json(col(r, 6)?);
    let status: String = col(r, 4)?;
    let run = BatchRun {
        run_id: col(r, 0)?,
        actor: col(r, 1)?,
        started_at: col(r, 2)?,
        finished_at: col(r, 3)?,
        status: BatchRunStatus::parse(&status).ok_or_else(|| bad_text(r, 4, &status))?,
        servers: from_json(col(r, 5)?),
        command_count: commands.len(),
        stop_on_error: flag(r, 7)?,
        retries: int(r, 8)?,
        retry_delay_ms: col::<i64>(r, 9)? as u64,
        timeout_s: col(r, 10)?,
        succeeded: int(r, 11)?,
        failed: int(r, 12)?,
        skipped: int(r, 13)?,
        duration_ms: col::<Option<i64>>(r, 14)?.map(|d| d as u64),
        user: col(r, 15)?,
        remote_addr: col(r, 16)?,
    };
    Ok((run, commands))
}

/// Runs `visible` allows, newest first.
pub(super) async fn list(
    pool: Pool,
    limit: u32,
    offset: u32,
    visible: Visible,
) -> Result<Vec<BatchRun>, AppError> {
    let client = pool.get().await.map_err(pool_error)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM batch_runs WHERE {} ORDER BY seq DESC LIMIT $1 OFFSET $2",
            visible_on("batch_runs.servers", "$3")
        ))
        .await
        .map_err(db_error)?;
    let rows = client
        .query(
            &stmt,
            &[&i64::from(limit), &i64::from(offset), &visible.as_json()],
        )
        .await
        .map_err(db_error)?;
    rows.iter().map(|r| run_from_row(r).map(|(run, _)| run)).collect()
}

fn result_from_row(run_id: &str, r: &Row) -> Result<CommandResult, AppError> {
    let code: Option<u32> = opt_int(r, 11)?;
    let detail: Option<String> = col(r, 12)?;
    let status: String = col(r, 3)?;
    let status = match status.as_str() {
        "succeeded" => CommandStatus::Succeeded,
        "failed" => CommandStatus::Failed,
        "skipped" => CommandStatus::Skipped,
        other => return Err(bad_text(r, 3, other)),
    };
    Ok(CommandResult {
        run_id: run_id.to_owned(),
        server: col(r, 0)?,
        index: col::<i64>(r, 1)? as usize,
        command: col(r, 2)?,
        status,
        exit_status: opt_int(r, 4)?,
        exit_signal: col(r, 5)?,
        stdout: col(r, 6)?,
        stderr: col(r, 7)?,
        truncated: flag(r, 8)?,
        attempts: int(r, 9)?,
        duration_ms: col::<i64>(r, 10)? as u64,
        error: code.map(|code| AppError {
            code: ErrorCode::from_code(code).unwrap_or(ErrorCode::Internal),
            detail,
        }),
    })
}

/// Results fetched from the page's portal at a time: a page cut at the
/// byte bound holds at most this many results past it, and the rest never
/// leave the database.
const RESULTS_FETCH: i32 = 16;

/// One run with a page of its results: at most `page.limit` from
/// `page.offset`, and at most [`RESULTS_PAGE_MAX_BYTES`] of output, read a
/// few rows at a time from a portal (a page cut at the byte bound never
/// had the rest in memory); `None` when unknown or not `visible`. One
/// read-only snapshot, so the run, its page and its total agree.
pub(super) async fn get(
    pool: Pool,
    run_id: String,
    page: ResultsPage,
    visible: Visible,
) -> Result<Option<BatchRunDetail>, AppError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = super::tx::snapshot(&mut client).await.map_err(db_error)?;
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM batch_runs WHERE run_id = $1 AND {}",
            visible_on("batch_runs.servers", "$2")
        ))
        .await
        .map_err(db_error)?;
    let found = tx
        .query_opt(&stmt, &[&run_id, &visible.as_json()])
        .await
        .map_err(db_error)?;
    let Some((run, commands)) = found.as_ref().map(run_from_row).transpose()? else {
        return Ok(None);
    };
    // by server in byte order, as SQLite's BINARY collation sorts them,
    // whatever the database's collation
    let stmt = tx
        .prepare_cached(
            "SELECT server, idx, command, status, exit_status, exit_signal, stdout, stderr, truncated,
                attempts, duration_ms, error_code, error_detail
             FROM batch_results WHERE run_id = $1 ORDER BY server COLLATE \"C\", idx LIMIT $2 OFFSET $3",
        )
        .await
        .map_err(db_error)?;
    let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
    let portal = tx
        .bind(&stmt, &[&run_id, &i64::from(page.limit), &offset])
        .await
        .map_err(db_error)?;
    let mut results: Vec<CommandResult> = Vec::new();
    let mut bytes = 0usize;
    'page: loop {
        let rows = tx.query_portal(&portal, RESULTS_FETCH).await.map_err(db_error)?;
        let last = rows.len() < RESULTS_FETCH as usize;
        for row in &rows {
            let result = result_from_row(&run_id, row)?;
            let size = result.stdout.len() + result.stderr.len();
            if !results.is_empty() && bytes + size > RESULTS_PAGE_MAX_BYTES {
                break 'page;
            }
            bytes += size;
            results.push(result);
        }
        if last {
            break;
        }
    }
    drop(portal);
    let results_total: i64 = tx
        .query_one("SELECT COUNT(*) FROM batch_results WHERE run_id = $1", &[&run_id])
        .await
        .map_err(db_error)
        .and_then(|r| col(&r, 0))?;
    tx.commit().await.map_err(db_error)?;
    let results_total = results_total.max(0) as u64;
    let end = page.offset + results.len() as u64;
    Ok(Some(BatchRunDetail {
        run,
        commands,
        results,
        results_total,
        next_offset: (end < results_total).then_some(end),
    }))
}

/// Marks `instance`'s runs still `running` as `interrupted`, at `at`; how
/// many. Their results so far stay as stored.
pub(super) async fn interrupt_left(
    pool: Pool,
    instance: String,
    at: DateTime<Utc>,
) -> Result<usize, AppError> {
    let client = pool.get().await.map_err(pool_error)?;
    let n = client
        .execute(
            "UPDATE batch_runs SET status = 'interrupted', finished_at = $1 WHERE status = 'running' AND instance = $2",
            &[&timestamp(at), &instance],
        )
        .await
        .map_err(db_error)?;
    Ok(n as usize)
}

impl BatchStore for PgStore {
    fn apply(&self, writes: Vec<BatchWrite>) -> BoxFuture<'static, Writes> {
        self.run(move |pool| apply(pool, writes))
    }

    fn list(&self, limit: u32, offset: u32, visible: Visible) -> StoreFuture<Vec<BatchRun>> {
        self.run(move |pool| list(pool, limit, offset, visible))
    }

    fn get(
        &self,
        run_id: String,
        page: ResultsPage,
        visible: Visible,
    ) -> StoreFuture<Option<BatchRunDetail>> {
        self.run(move |pool| get(pool, run_id, page, visible))
    }

    fn interrupt_left(&self, instance: &str, at: DateTime<Utc>) -> StoreFuture<usize> {
        let instance = instance.to_owned();
        self.run(move |pool| interrupt_left(pool, instance, at))
    }

    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Expired> {
        self.run(move |pool| {
            super::retention::expire_runs(pool, &crate::store::migrations::BATCH_RUNS, before, limit)
        })
    }
}
