//! `POST /api/v1/diff/files`, `/dirs`, `/command`: the DIFF operations for
//! scripts. The body has the WebSocket request's fields (without `type`),
//! the reply is the WebSocket reply object (`diff_result`, ...), errors the
//! usual error body (docs/diff.md).
//!
//! Each request gets its own SFTP pool (an actor), stopped at the end,
//! which closes its sessions. The diff
//! runs in a detached task that holds the cancel receiver, while this
//! handler holds the sender: a client that goes away drops the handler,
//! which stops a running `diff_command` on both servers.

use actix_web::{post, web, HttpResponse};
use pinkpage_actors::files::pool::SftpPool;
use pinkpage_actors::{AppError, ErrorCode};
use tokio::sync::watch;

use super::error::{ApiError, ErrorResponse};
use crate::auth::Caller;
use crate::diff_jobs::{DiffCommandRequest, DiffDirsRequest, DiffFilesRequest, DiffJob};
use crate::records::NewAuditEvent;
use crate::state::AppState;

/// Writes the audit row of an accepted diff (`diff.files`, ...), before it
/// runs, so a client that goes away halfway leaves its row too.
fn audited(state: &AppState, caller: &Caller, job: Result<DiffJob, AppError>) -> Result<DiffJob, AppError> {
    if let Ok(job) = &job {
        let by = NewAuditEvent::new("rest", "diff").by(Some(&caller.user()), caller.remote_addr());
        state.journal.audit(job.audit_event(by));
    }
    job
}

async fn run(
    state: web::Data<AppState>,
    caller: &Caller,
    job: Result<DiffJob, AppError>,
) -> Result<HttpResponse, ApiError> {
    let job = job?;
    // a held `diff_command` waits in this request for its approver (it is
    // in `GET /api/v1/command-reviews`; the caller's consoles are told)
    let rules = state.policy_check(caller.principal()?, "rest", caller.remote_addr());
    if let Some(held) = job.held(&rules)? {
        held.await?;
        // approved, maybe minutes later: the caller's access is judged
        // again as it is now (a revoked token, a changed role or scope
        // ends it with 10010), as running work is judged on a change
        let now = state
            .identity
            .recheck(caller.principal()?)
            .map_err(|refusal| crate::auth::rejudge::withdrawn(refusal.reason().to_owned()))?;
        let (kind, servers) = job.scope();
        let need = crate::auth::table::message_need("/ws/v1/diff", kind);
        crate::auth::rejudge::judge(&*state.settings(), &now, need, &servers)?;
    }
    // the most the diff may hold, given back when the task ends
    let reservation = state.diff_budget.reserve(job.memory_bound())?;
    let ssh = state.ssh.clone();
    let temp_files = state.temp_files.clone();
    // held until this handler ends (or is dropped with its client)
    let (_cancel, cancelled) = watch::channel(());
    let task = actix::spawn(async move {
        let pool = SftpPool::start(temp_files);
        let res = job.run(&pool, &ssh, cancelled, "rest").await;
        pool.stop();
        drop(reservation);
        res
    });
    match task.await {
        Ok(Ok(reply)) => Ok(HttpResponse::Ok().json(reply)),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(AppError::with_detail(ErrorCode::Internal, format!("diff task: {e}")).into()),
    }
}

/// Compare two files (`diff_files`): the reply is a `diff_result`.
#[utoipa::path(tag = "diff", request_body = DiffFilesRequest, responses(
    (status = 200, description = "`diff_result`: identical, unified_diff, left_sha256, right_sha256, left_size, right_size, binary", body = DiffResultSchema),
    (status = 400, description = "bad field (10001)", body = ErrorResponse),
    (status = 413, description = "a file is over PINKPAGE_DIFF_MAX_BYTES (53000)", body = ErrorResponse),
    (status = 403, description = "SFTP permission denied on a side (53000)", body = ErrorResponse),
    (status = 409, description = "a path is of the wrong kind, or SFTP failed on it (53000)", body = ErrorResponse),
    (status = 501, description = "the server does not support an SFTP operation (53000)", body = ErrorResponse),
    (status = 502, description = "connection failed (2xxxx) or SFTP was lost (53000)", body = ErrorResponse),
    (status = 504, description = "a connection or SFTP request timed out", body = ErrorResponse),
    (status = 503, description = "the daemon's diff memory budget is taken (53001); retry later", body = ErrorResponse),
    (status = 404, description = "a path is missing (53000, the side in `detail`) or unknown server (23000)", body = ErrorResponse)))]
#[post("/api/v1/diff/files")]
pub async fn diff_files(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<DiffFilesRequest>,
) -> Result<HttpResponse, ApiError> {
    let job = audited(
        &state,
        &caller,
        DiffJob::files(&state.settings(), caller.principal()?, &body),
    );
    run(state, &caller, job).await
}

/// Compare two directory trees (`diff_dirs`): the reply is a `diff_dirs_result`.
#[utoipa::path(tag = "diff", request_body = DiffDirsRequest, responses(
    (status = 200, description = "`diff_dirs_result`: only_left, only_right, differing, identical_count", body = DiffDirsResultSchema),
    (status = 400, description = "bad field (10001)", body = ErrorResponse),
    (status = 404, description = "a directory is missing (53000, the side in `detail`) or unknown server (23000)", body = ErrorResponse),
    (status = 403, description = "SFTP permission denied on a side (53000)", body = ErrorResponse),
    (status = 409, description = "a path is of the wrong kind, or SFTP failed on it (53000)", body = ErrorResponse),
    (status = 501, description = "the server does not support an SFTP operation (53000)", body = ErrorResponse),
    (status = 502, description = "connection failed (2xxxx) or SFTP was lost (53000)", body = ErrorResponse),
    (status = 504, description = "a connection or SFTP request timed out", body = ErrorResponse),
    (status = 503, description = "the daemon's diff memory budget is taken (53001); retry later", body = ErrorResponse),
    (status = 413, description = "more than 100000 entries on a side (53000)", body = ErrorResponse)))]
#[post("/api/v1/diff/dirs")]
pub async fn diff_dirs(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<DiffDirsRequest>,
) -> Result<HttpResponse, ApiError> {
    let job = audited(
        &state,
        &caller,
        DiffJob::dirs(&state.settings(), caller.principal()?, &body),
    );
    run(state, &caller, job).await
}

/// Run a command on two servers and compare stdout (`diff_command`): the
/// reply is a `diff_command_result`.
#[utoipa::path(tag = "diff", request_body = DiffCommandRequest, responses(
    (status = 200, description = "`diff_command_result`: the diff_result fields for stdout, plus command, \
        left/right_exit_status, left/right_exit_signal, left/right_stderr, left/right_truncated", body = DiffCommandResultSchema),
    (status = 400, description = "bad field (10001)", body = ErrorResponse),
    (status = 404, description = "unknown server (23000)", body = ErrorResponse),
    (status = 502, description = "connection failed (2xxxx) or the command could not run (22000)", body = ErrorResponse),
    (status = 504, description = "the command ran past timeout_s (22001)", body = ErrorResponse),
    (status = 503, description = "the daemon's diff memory budget is taken (53001); retry later", body = ErrorResponse)))]
#[post("/api/v1/diff/command")]
pub async fn diff_command(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<DiffCommandRequest>,
) -> Result<HttpResponse, ApiError> {
    let job = audited(
        &state,
        &caller,
        DiffJob::command(&state.settings(), caller.principal()?, &body),
    );
    run(state, &caller, job).await
}

/// OpenAPI view of `diff_result` (the engine knows nothing of OpenAPI).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DiffResultSchema {
    /// Always `diff_result`.
    r#type: String,
    /// Same content (equal bytes, or text equal after decoding).
    identical: bool,
    /// Unified diff with `server:path` labels; empty when identical or binary.
    unified_diff: String,
    /// SHA-256 of the left bytes, hex.
    left_sha256: String,
    /// SHA-256 of the right bytes, hex.
    right_sha256: String,
    /// Left size in bytes.
    left_size: u64,
    /// Right size in bytes.
    right_size: u64,
    /// Compared by hash only (NUL in the first 8 KiB, or not decodable).
    binary: bool,
}

/// OpenAPI view of one side of a differing entry.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DiffEntrySchema {
    /// `file`, `dir`, `symlink`, `other`.
    kind: String,
    /// Bytes.
    size: u64,
    /// Permission bits.
    mode: u32,
    /// Seconds since the epoch.
    mtime: Option<u32>,
    /// With `compare: sha256`, when the sizes agree.
    sha256: Option<String>,
}

/// OpenAPI view of an entry that differs.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DifferingSchema {
    /// Relative to both roots.
    path: String,
    /// The left side.
    left: DiffEntrySchema,
    /// The right side.
    right: DiffEntrySchema,
    /// `type`, `size`, `mtime`, `sha256`.
    reasons: Vec<String>,
}

/// OpenAPI view of `diff_dirs_result`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DiffDirsResultSchema {
    /// Always `diff_dirs_result`.
    r#type: String,
    /// Relative paths only on the left.
    only_left: Vec<String>,
    /// Relative paths only on the right.
    only_right: Vec<String>,
    /// Entries on both sides that differ.
    differing: Vec<DifferingSchema>,
    /// Entries on both sides that are the same.
    identical_count: u64,
}

/// OpenAPI view of `diff_command_result`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DiffCommandResultSchema {
    /// Always `diff_command_result`.
    r#type: String,
    /// The command.
    command: String,
    /// The stdouts are the same.
    identical: bool,
    /// Unified diff of the stdouts (`server:stdout` labels).
    unified_diff: String,
    /// SHA-256 of the left stdout.
    left_sha256: String,
    /// SHA-256 of the right stdout.
    right_sha256: String,
    /// Left stdout bytes.
    left_size: u64,
    /// Right stdout bytes.
    right_size: u64,
    /// Compared by hash only.
    binary: bool,
    /// Left exit status.
    left_exit_status: Option<u32>,
    /// Right exit status.
    right_exit_status: Option<u32>,
    /// Signal that ended the left command.
    left_exit_signal: Option<String>,
    /// Signal that ended the right command.
    right_exit_signal: Option<String>,
    /// Left stderr (at most 64 KiB).
    left_stderr: String,
    /// Right stderr (at most 64 KiB).
    right_stderr: String,
    /// Left output was cut at its cap.
    left_truncated: bool,
    /// Right output was cut at its cap.
    right_truncated: bool,
}
