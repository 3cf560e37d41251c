//! BMX4 batch runs and their per-command results.
//!
//! A run row is created before the run's actor starts (so results always
//! have their run), each result is stored as it arrives, and the run is
//! finished once. All three are written by the run's one recorder
//! (`ws::bmx4::recorder`), in that order; [`FinishBatchRun`] also only
//! touches a run still `running`, so a second finish could not overwrite
//! the first.

use actix::{Handler, Message};
use std::sync::Arc;

use pinkpage_actors::batch::plan::CommandResult;
use pinkpage_actors::{AppError, ErrorBody, ErrorCode};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{db_error, StoreActor};

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewBatchRun {
    /// UUID v4, made by whoever accepted the request.
    pub run_id: String,
    /// Connection id of the client that asked.
    pub actor: String,
    /// The signed-in user who asked.
    pub user: Option<String>,
    /// The client's address.
    pub remote_addr: Option<String>,
    /// Server names.
    pub servers: Vec<String>,
    /// Command lines, in order.
    pub commands: Vec<String>,
    /// Whether a failure stops a server's run.
    pub stop_on_error: bool,
    /// Extra attempts per command.
    pub retries: u32,
    /// Pause between attempts.
    pub retry_delay_ms: u64,
    /// Per-attempt timeout.
    pub timeout_s: Option<f64>,
}

/// A stored run, as listed (without its commands and results).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchRun {
    /// The run's id.
    pub run_id: String,
    /// Connection id of the client that started it.
    pub actor: String,
    /// The user who started it (null for runs from before sign-in existed).
    pub user: Option<String>,
    /// The client's address.
    pub remote_addr: Option<String>,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended; null while running.
    pub finished_at: Option<String>,
    /// `running`, `completed`, `cancelled`, or `interrupted` (left
    /// `running` by a daemon that was killed; marked at the next start).
    pub status: String,
    /// Server names.
    pub servers: Vec<String>,
    /// How many commands per server.
    pub command_count: usize,
    /// Whether a failure stopped a server's run.
    pub stop_on_error: bool,
    /// Extra attempts per command.
    pub retries: u32,
    /// Pause between attempts.
    pub retry_delay_ms: u64,
    /// Per-attempt timeout, seconds.
    pub timeout_s: Option<f64>,
    /// Commands that succeeded.
    pub succeeded: u32,
    /// Commands that failed.
    pub failed: u32,
    /// Commands skipped (after a failure, an unreachable server or a cancel).
    pub skipped: u32,
    /// Run time; null while running.
    pub duration_ms: Option<u64>,
}

/// One command's stored result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchResult {
    /// Server name.
    pub server: String,
    /// Position in the run's command list (0-based).
    pub index: usize,
    /// The command line.
    pub command: String,
    /// `succeeded`, `failed` or `skipped`.
    pub status: String,
    /// Exit status of the last attempt.
    pub exit_status: Option<u32>,
    /// Signal that ended the last attempt.
    pub exit_signal: Option<String>,
    /// Standard output (capped).
    pub stdout: String,
    /// Standard error (capped).
    pub stderr: String,
    /// Whether output was cut at the cap.
    pub truncated: bool,
    /// Attempts made.
    pub attempts: u32,
    /// First attempt's start to last attempt's end, delays included.
    pub duration_ms: u64,
    /// Why it failed without an exit status, or why it was skipped.
    #[schema(value_type = Option<crate::api::error::ErrorBodySchema>)]
    pub error: Option<ErrorBody>,
}

/// A run with its commands and results.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchRunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: BatchRun,
    /// Command lines, in order.
    pub commands: Vec<String>,
    /// One page of the results by server, then index (see [`GetBatchRun`]).
    pub results: Vec<BatchResult>,
    /// How many results the run has stored in all.
    pub results_total: u64,
    /// The `offset` of the next page; null when this page is the last.
    pub next_offset: Option<u64>,
}

/// Most bytes of output (stdout and stderr) one page of results carries:
/// with 1,000 results of up to 2 MiB each a whole run could be gigabytes
/// in one response; a page ends early at this bound instead (always with
/// at least one result, so paging moves on).
pub const RESULTS_PAGE_MAX_BYTES: usize = 16 << 20;

/// Stores a new run as `running`.
#[derive(Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct CreateBatchRun(pub NewBatchRun);

/// Stores one command's result.
#[derive(Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct RecordBatchResult(pub Arc<CommandResult>);

/// Ends a run still `running`; replies whether it was.
#[derive(Message, Clone)]
#[rtype(result = "Result<bool, AppError>")]
pub struct FinishBatchRun {
    /// Which run.
    pub run_id: String,
    /// `completed` or `cancelled`.
    pub status: &'static str,
    /// Commands that succeeded.
    pub succeeded: u32,
    /// Commands that failed.
    pub failed: u32,
    /// Commands skipped.
    pub skipped: u32,
    /// Run time.
    pub duration_ms: u64,
}

/// Runs, newest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<BatchRun>, AppError>")]
pub struct ListBatchRuns {
    /// Most rows to return.
    pub limit: u32,
    /// Rows to skip (for paging).
    pub offset: u32,
}

/// One run with a page of its results: at most `limit` from `offset`, and
/// at most [`RESULTS_PAGE_MAX_BYTES`] of output; `None` when unknown.
#[derive(Message)]
#[rtype(result = "Result<Option<BatchRunDetail>, AppError>")]
pub struct GetBatchRun {
    /// Which run.
    pub run_id: String,
    /// Most results to return.
    pub limit: u32,
    /// Results to skip.
    pub offset: u64,
}

impl GetBatchRun {
    /// The first page (as many results as a page may hold).
    pub fn first_page(run_id: impl Into<String>) -> Self {
        GetBatchRun {
            run_id: run_id.into(),
            limit: 1000,
            offset: 0,
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

fn from_json(text: String) -> Vec<String> {
    serde_json::from_str(&text).unwrap_or_default()
}

impl Handler<CreateBatchRun> for StoreActor {
    type Result = Result<(), AppError>;

    fn handle(&mut self, CreateBatchRun(r): CreateBatchRun, _: &mut Self::Context) -> Self::Result {
        self.conn
            .execute(
                "INSERT INTO batch_runs (run_id, actor, started_at, status, servers, commands,
                    stop_on_error, retries, retry_delay_ms, timeout_s, user, remote_addr)
                 VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    r.run_id,
                    r.actor,
                    now(),
                    to_json(&r.servers),
                    to_json(&r.commands),
                    r.stop_on_error,
                    r.retries,
                    r.retry_delay_ms as i64,
                    r.timeout_s,
                    r.user,
                    r.remote_addr
                ],
            )
            .map_err(db_error)?;
        Ok(())
    }
}

impl Handler<RecordBatchResult> for StoreActor {
    type Result = Result<(), AppError>;

    fn handle(&mut self, RecordBatchResult(r): RecordBatchResult, _: &mut Self::Context) -> Self::Result {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO batch_results (run_id, server, idx, command, status, exit_status,
                    exit_signal, stdout, stderr, truncated, attempts, duration_ms, error_code, error_detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    r.run_id,
                    r.server,
                    r.index as i64,
                    r.command,
                    r.status.as_str(),
                    r.exit_status,
                    r.exit_signal,
                    r.stdout,
                    r.stderr,
                    r.truncated,
                    r.attempts,
                    r.duration_ms as i64,
                    r.error.as_ref().map(|e| e.code.code()),
                    r.error.as_ref().and_then(|e| e.detail.clone()),
                ],
            )
            .map_err(db_error)?;
        Ok(())
    }
}

impl Handler<FinishBatchRun> for StoreActor {
    type Result = Result<bool, AppError>;

    fn handle(&mut self, f: FinishBatchRun, _: &mut Self::Context) -> Self::Result {
        let changed = self
            .conn
            .execute(
                "UPDATE batch_runs SET status = ?2, finished_at = ?3, succeeded = ?4, failed = ?5,
                    skipped = ?6, duration_ms = ?7
                 WHERE run_id = ?1 AND status = 'running'",
                params![
                    f.run_id,
                    f.status,
                    now(),
                    f.succeeded,
                    f.failed,
                    f.skipped,
                    f.duration_ms as i64
                ],
            )
            .map_err(db_error)?;
        Ok(changed == 1)
    }
}

const RUN_COLUMNS: &str = "run_id, actor, started_at, finished_at, status, servers, commands, stop_on_error,
    retries, retry_delay_ms, timeout_s, succeeded, failed, skipped, duration_ms, user, remote_addr";

/// A run row (in [`RUN_COLUMNS`] order) and its commands.
fn run_from_row(r: &Row<'_>) -> rusqlite::Result<(BatchRun, Vec<String>)> {
    let commands = from_json(r.get(6)?);
    let run = BatchRun {
        run_id: r.get(0)?,
        actor: r.get(1)?,
        started_at: r.get(2)?,
        finished_at: r.get(3)?,
        status: r.get(4)?,
        servers: from_json(r.get(5)?),
        command_count: commands.len(),
        stop_on_error: r.get(7)?,
        retries: r.get(8)?,
        retry_delay_ms: r.get::<_, i64>(9)? as u64,
        timeout_s: r.get(10)?,
        succeeded: r.get(11)?,
        failed: r.get(12)?,
        skipped: r.get(13)?,
        duration_ms: r.get::<_, Option<i64>>(14)?.map(|d| d as u64),
        user: r.get(15)?,
        remote_addr: r.get(16)?,
    };
    Ok((run, commands))
}

impl Handler<ListBatchRuns> for StoreActor {
    type Result = Result<Vec<BatchRun>, AppError>;

    fn handle(&mut self, q: ListBatchRuns, _: &mut Self::Context) -> Self::Result {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM batch_runs ORDER BY seq DESC LIMIT ?1 OFFSET ?2"
            ))
            .map_err(db_error)?;
        let rows = stmt
            .query_map(params![q.limit, q.offset], |r| {
                run_from_row(r).map(|(run, _)| run)
            })
            .map_err(db_error)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_error)
    }
}

impl Handler<GetBatchRun> for StoreActor {
    type Result = Result<Option<BatchRunDetail>, AppError>;

    fn handle(&mut self, q: GetBatchRun, _: &mut Self::Context) -> Self::Result {
        let run_id = q.run_id;
        let found = self
            .conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM batch_runs WHERE run_id = ?1"),
                params![run_id],
                run_from_row,
            )
            .optional()
            .map_err(db_error)?;
        let Some((run, commands)) = found else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT server, idx, command, status, exit_status, exit_signal, stdout, stderr, truncated,
                    attempts, duration_ms, error_code, error_detail
                 FROM batch_results WHERE run_id = ?1 ORDER BY server, idx LIMIT ?2 OFFSET ?3",
            )
            .map_err(db_error)?;
        let rows = stmt
            .query_map(params![run_id, q.limit, q.offset as i64], |r| {
                let code: Option<u32> = r.get(11)?;
                let detail: Option<String> = r.get(12)?;
                Ok(BatchResult {
                    server: r.get(0)?,
                    index: r.get::<_, i64>(1)? as usize,
                    command: r.get(2)?,
                    status: r.get(3)?,
                    exit_status: r.get(4)?,
                    exit_signal: r.get(5)?,
                    stdout: r.get(6)?,
                    stderr: r.get(7)?,
                    truncated: r.get(8)?,
                    attempts: r.get(9)?,
                    duration_ms: r.get::<_, i64>(10)? as u64,
                    error: code.map(|code| ErrorBody {
                        code,
                        message: ErrorCode::from_code(code)
                            .map(|c| c.message().to_owned())
                            .unwrap_or_default(),
                        detail,
                    }),
                })
            })
            .map_err(db_error)?;
        // rows are read one at a time, so a page cut at the byte bound
        // never had the rest in memory
        let mut results = Vec::new();
        let mut bytes = 0usize;
        for row in rows {
            let result = row.map_err(db_error)?;
            let size = result.stdout.len() + result.stderr.len();
            if !results.is_empty() && bytes + size > RESULTS_PAGE_MAX_BYTES {
                break;
            }
            bytes += size;
            results.push(result);
        }
        let results_total: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM batch_results WHERE run_id = ?1",
                params![run_id],
                |r| r.get(0),
            )
            .map_err(db_error)?;
        let results_total = results_total.max(0) as u64;
        let end = q.offset + results.len() as u64;
        let next_offset = (end < results_total).then_some(end);
        Ok(Some(BatchRunDetail {
            run,
            commands,
            results,
            results_total,
            next_offset,
        }))
    }
}

/// Marks BMX4 runs a stopped daemon left `running` as `interrupted`, now;
/// how many. Their results so far stay as stored.
pub(crate) fn interrupt_left_runs(conn: &rusqlite::Connection) -> Result<usize, AppError> {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    conn.execute(
        "UPDATE batch_runs SET status = 'interrupted', finished_at = ?1 WHERE status = 'running'",
        params![at],
    )
    .map_err(db_error)
}
