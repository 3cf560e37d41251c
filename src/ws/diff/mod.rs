//! The DIFF domain (`/ws/v1/diff`): compare files, directories and command
//! output between two servers (SPEC section 4, DIFF; protocol in
//! docs/diff.md). REST (`POST /api/v1/diff/...`) takes the same requests
//! and answers the same objects through [`DiffJob`].
//!
//! Per connection it owns:
//! - an [`SftpPool`]: one SSH + SFTP session per server, reused by this
//!   client's diffs, closed by the pool's actor when idle and when the
//!   client goes away;
//! - the sender of a cancel signal: dropping it when the connection stops
//!   stops every `diff_command` still running on the servers (a command
//!   without a PTY would otherwise outlive its client).
//!
//! Diffs run concurrently, each in a detached task; the reply carries the
//! request's `request_id`. Reads need no session lock and are not audited;
//! each one is logged.

use std::time::{Duration, Instant};

use actix::{ActorFutureExt, ContextFutureSpawner, WrapFuture};
use pinkpage_actors::diff::remote::{self, CommandDiff, CommandOptions, DiffError, DirOptions, Target};
use pinkpage_actors::diff::{CompareBy, DirDiff, FileDiff, DEFAULT_CONTEXT};
use pinkpage_actors::files::pool::SftpPool;
use pinkpage_actors::ssh::SshOptions;
use pinkpage_actors::{AppError, ErrorCode};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::RequestId;
use crate::settings::Settings;
use pinkpage_actors::task::Done;

/// Most lines of context a unified diff may ask for.
pub const MAX_CONTEXT: usize = 10_000;
/// Most entries walked per side of a `diff_dirs`.
pub const MAX_DIR_ENTRIES: usize = 100_000;
/// `diff_command`'s run time per side when the request names none.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest `timeout_s` a `diff_command` may ask for.
pub const MAX_COMMAND_TIMEOUT_S: f64 = 3600.0;

/// A path on a server.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct FileRef {
    /// Configured server name.
    pub server: String,
    /// Remote path; relative paths start at the login user's home.
    pub path: String,
}

/// `diff_files`: compare two files.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct DiffFilesRequest {
    /// The `---` side.
    pub left: FileRef,
    /// The `+++` side.
    pub right: FileRef,
    /// Lines of context around each change (default 3, at most 10000).
    pub context: Option<usize>,
}

/// `diff_dirs`: compare two directory trees.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct DiffDirsRequest {
    /// One directory.
    pub left: FileRef,
    /// The other.
    pub right: FileRef,
    /// Descend into subdirectories (default false: the top level only).
    #[serde(default)]
    pub recursive: bool,
    /// With `recursive`, how many levels (1 = the top level); default all.
    pub max_depth: Option<u32>,
    /// `size` (default), `mtime` or `sha256`.
    #[serde(default)]
    #[schema(value_type = String)]
    pub compare: CompareBy,
}

/// `diff_command`: run one command on two servers and compare stdout.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct DiffCommandRequest {
    /// The command, run by each server's login shell, without a PTY.
    pub command: String,
    /// One server.
    pub left_server: String,
    /// The other.
    pub right_server: String,
    /// Stop the commands after this many seconds (default 60, at most 3600).
    pub timeout_s: Option<f64>,
}

/// What a DIFF client may send (besides `ping`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DiffRequest {
    /// Compare two files.
    DiffFiles(DiffFilesRequest),
    /// Compare two directories.
    DiffDirs(DiffDirsRequest),
    /// Compare a command's output on two servers.
    DiffCommand(DiffCommandRequest),
}

/// What the DIFF domain answers (REST answers the same objects).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DiffReply {
    /// Answer to `diff_files`.
    DiffResult(FileDiff),
    /// Answer to `diff_dirs`.
    DiffDirsResult(DirDiff),
    /// Answer to `diff_command`.
    DiffCommandResult(CommandDiff),
}

/// A validated diff request, its servers resolved; run it with
/// [`DiffJob::run`].
#[derive(Debug, Clone)]
pub enum DiffJob {
    /// Two files.
    Files {
        /// `---`.
        left: Target,
        /// `+++`.
        right: Target,
        /// Context lines.
        context: usize,
        /// Size cap per file.
        max_bytes: u64,
    },
    /// Two directories.
    Dirs {
        /// One.
        left: Target,
        /// The other.
        right: Target,
        /// How to walk and compare.
        options: DirOptions,
    },
    /// One command on two servers.
    Command {
        /// The command.
        command: String,
        /// One server.
        left: Target,
        /// The other.
        right: Target,
        /// Caps and timeout.
        options: CommandOptions,
    },
}

fn invalid(what: impl Into<String>) -> AppError {
    AppError::with_detail(ErrorCode::Validation, what)
}

/// Resolves a server name on `side` (23000 when unknown).
fn server(settings: &Settings, side: &str, name: &str) -> Result<Target, AppError> {
    let spec = settings.server(name).cloned().ok_or_else(|| {
        AppError::with_detail(
            ErrorCode::UnknownServer,
            format!("{side}: no server named '{name}'"),
        )
    })?;
    Ok(Target {
        server: spec,
        path: String::new(),
    })
}

/// Checks a path (not empty, no NUL, which SFTP would cut at) and resolves
/// its server.
fn target(settings: &Settings, side: &str, r: &FileRef) -> Result<Target, AppError> {
    if r.path.is_empty() {
        return Err(invalid(format!("{side}.path must not be empty")));
    }
    if r.path.contains('\0') {
        return Err(invalid(format!("{side}.path must not contain NUL")));
    }
    Ok(Target {
        path: r.path.clone(),
        ..server(settings, side, &r.server)?
    })
}

impl DiffJob {
    /// Validates `req`: 10001 for a bad field, 23000 for an unknown server.
    pub fn files(settings: &Settings, req: &DiffFilesRequest) -> Result<DiffJob, AppError> {
        let context = req.context.unwrap_or(DEFAULT_CONTEXT);
        if context > MAX_CONTEXT {
            return Err(invalid(format!("context must be at most {MAX_CONTEXT}")));
        }
        Ok(DiffJob::Files {
            left: target(settings, "left", &req.left)?,
            right: target(settings, "right", &req.right)?,
            context,
            max_bytes: settings.diff_max_bytes,
        })
    }

    /// Validates `req`.
    pub fn dirs(settings: &Settings, req: &DiffDirsRequest) -> Result<DiffJob, AppError> {
        if req.max_depth == Some(0) {
            return Err(invalid("max_depth must be at least 1"));
        }
        Ok(DiffJob::Dirs {
            left: target(settings, "left", &req.left)?,
            right: target(settings, "right", &req.right)?,
            options: DirOptions {
                recursive: req.recursive,
                max_depth: req.max_depth,
                compare: req.compare,
                max_entries: MAX_DIR_ENTRIES,
            },
        })
    }

    /// Validates `req`.
    pub fn command(settings: &Settings, req: &DiffCommandRequest) -> Result<DiffJob, AppError> {
        if req.command.trim().is_empty() {
            return Err(invalid("command must not be empty"));
        }
        if req.command.contains('\0') {
            return Err(invalid("command must not contain NUL"));
        }
        let timeout = match req.timeout_s {
            None => DEFAULT_COMMAND_TIMEOUT,
            Some(s) if s.is_finite() && s > 0.0 && s <= MAX_COMMAND_TIMEOUT_S => Duration::from_secs_f64(s),
            Some(_) => {
                return Err(invalid(format!(
                    "timeout_s must be in (0, {MAX_COMMAND_TIMEOUT_S}]"
                )))
            }
        };
        Ok(DiffJob::Command {
            command: req.command.clone(),
            left: server(settings, "left", &req.left_server)?,
            right: server(settings, "right", &req.right_server)?,
            options: CommandOptions {
                max_stdout: usize::try_from(settings.diff_max_bytes).unwrap_or(usize::MAX),
                timeout,
            },
        })
    }

    /// `diff_files`, `diff_dirs` or `diff_command`, for the log.
    pub fn op(&self) -> &'static str {
        match self {
            DiffJob::Files { .. } => "diff_files",
            DiffJob::Dirs { .. } => "diff_dirs",
            DiffJob::Command { .. } => "diff_command",
        }
    }

    fn sides(&self) -> (String, String) {
        match self {
            DiffJob::Files { left, right, .. } | DiffJob::Dirs { left, right, .. } => {
                (left.label(), right.label())
            }
            DiffJob::Command { left, right, .. } => (left.server.name.clone(), right.server.name.clone()),
        }
    }

    /// Runs the diff with SFTP sessions from `cache`. A running
    /// `diff_command` is stopped on the servers when `cancel`'s sender goes.
    pub async fn run(
        self,
        cache: &SftpPool,
        ssh: &SshOptions,
        cancel: watch::Receiver<()>,
        who: &str,
    ) -> Result<DiffReply, DiffError> {
        let op = self.op();
        let (l, r) = self.sides();
        let began = Instant::now();
        let res = match self {
            DiffJob::Files {
                left,
                right,
                context,
                max_bytes,
            } => remote::diff_files(cache, ssh, &left, &right, context, max_bytes)
                .await
                .map(DiffReply::DiffResult),
            DiffJob::Dirs { left, right, options } => remote::diff_dirs(cache, ssh, &left, &right, options)
                .await
                .map(DiffReply::DiffDirsResult),
            DiffJob::Command {
                command,
                left,
                right,
                options,
            } => remote::diff_command(ssh, &command, &left.server, &right.server, options, cancel)
                .await
                .map(DiffReply::DiffCommandResult),
        };
        let ms = began.elapsed().as_millis() as u64;
        match &res {
            Ok(reply) => {
                let identical = match reply {
                    DiffReply::DiffResult(d) => d.identical,
                    DiffReply::DiffCommandResult(d) => d.output.identical,
                    DiffReply::DiffDirsResult(d) => {
                        d.only_left.is_empty() && d.only_right.is_empty() && d.differing.is_empty()
                    }
                };
                log::info!(client = who, op = op, left = l.as_str(), right = r.as_str(), identical = identical, ms = ms; "diff done");
            }
            Err(e) => {
                log::info!(client = who, op = op, left = l.as_str(), right = r.as_str(), code = e.error.code.code(), error = e.to_string(), ms = ms; "diff failed");
            }
        }
        res
    }
}

/// Per-connection DIFF state.
pub struct Diff {
    /// This client's SFTP sessions; started with the first diff, stopped
    /// with the connection.
    pool: Option<SftpPool>,
    /// Dropped when the connection stops: running commands are stopped.
    cancel: watch::Sender<()>,
}

impl Default for Diff {
    fn default() -> Self {
        Diff {
            pool: None,
            cancel: watch::channel(()).0,
        }
    }
}

impl Domain for Diff {
    type Request = DiffRequest;
    const TYPES: &'static [&'static str] = &["diff_files", "diff_dirs", "diff_command"];
    const WELCOME: &'static str = "Connected to DIFF WebSocket";
    const NAME: &'static str = "diff";

    fn handle(conn: &mut WsConnection<Self>, req: DiffRequest, rid: RequestId, ctx: &mut WsCtx<Self>) {
        let settings = &conn.state.settings;
        let job = match &req {
            DiffRequest::DiffFiles(r) => DiffJob::files(settings, r),
            DiffRequest::DiffDirs(r) => DiffJob::dirs(settings, r),
            DiffRequest::DiffCommand(r) => DiffJob::command(settings, r),
        };
        let job = match job {
            Ok(j) => j,
            Err(e) => return conn.send_error(ctx, &e, &rid),
        };
        let cache = conn.domain.pool.get_or_insert_with(SftpPool::start).clone();
        let ssh = conn.state.ssh.clone();
        let cancel = conn.domain.cancel.subscribe();
        let who = conn.id.to_string();
        let task = actix::spawn(async move { job.run(&cache, &ssh, cancel, &who).await });
        task.into_actor(conn)
            .map(move |res, conn, ctx| match res {
                Ok(Ok(reply)) => conn.send(ctx, &reply, &rid),
                Ok(Err(e)) => conn.send_error(ctx, &e.error, &rid),
                Err(e) => {
                    let e = AppError::with_detail(ErrorCode::Internal, format!("diff task: {e}"));
                    conn.send_error(ctx, &e, &rid)
                }
            })
            .spawn(ctx);
    }

    fn stopping(conn: &mut WsConnection<Self>, _: &mut WsCtx<Self>) -> Vec<Done> {
        // stop running commands: their receivers see the sender go
        conn.domain.cancel = watch::channel(()).0;
        if let Some(pool) = conn.domain.pool.take() {
            pool.stop();
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_from_the_documented_json() {
        let r: DiffRequest = serde_json::from_value(serde_json::json!({
            "type": "diff_dirs",
            "left": {"server": "a", "path": "/x"},
            "right": {"server": "b", "path": "/y"},
            "recursive": true,
            "compare": "sha256"
        }))
        .unwrap();
        let DiffRequest::DiffDirs(d) = r else {
            panic!("not diff_dirs")
        };
        assert_eq!(d.compare, CompareBy::Sha256);
        assert!(d.recursive);
        assert_eq!(d.max_depth, None);
    }

    #[test]
    fn replies_carry_their_type() {
        let v = serde_json::to_value(DiffReply::DiffDirsResult(DirDiff::default())).unwrap();
        assert_eq!(v["type"], "diff_dirs_result");
        assert_eq!(v["identical_count"], 0);
    }
}
