//! [`DiffJob`]: a DIFF request validated once and run. The same job serves
//! a WebSocket `diff_*` frame and a `POST /api/v1/diff/*` body, so a limit
//! or an error code is decided here and nowhere else.
//!
//! Fields go through the shared validated types of [`crate::request`]
//! ([`RemotePath`], [`ServerRef`], [`TimeoutS`]); every error names the
//! side or field it is about (`left: no server named 'x'`).

use std::time::{Duration, Instant};

use pinkpage_actors::diff::remote::{self, CommandOptions, DiffError, DirOptions, Target};
use pinkpage_actors::diff::DEFAULT_CONTEXT;
use pinkpage_actors::files::pool::SftpPool;
use pinkpage_actors::policy::{CommandCheck, Gate};
use pinkpage_actors::ssh::SshOptions;
use pinkpage_actors::AppError;
use tokio::sync::watch;

use super::requests::{DiffCommandRequest, DiffDirsRequest, DiffFilesRequest, DiffReply, FileRef};
use crate::request::{invalid, RemotePath, ServerRef, TimeoutS};
use crate::settings::Settings;
use pinkpage_actors::access::Principal;

/// Most lines of context a unified diff may ask for.
pub const MAX_CONTEXT: usize = 10_000;
/// Most entries walked per side of a `diff_dirs`.
pub const MAX_DIR_ENTRIES: usize = 100_000;
/// What one walked directory entry is taken to hold (its relative path,
/// kind, size, time and hash), for [`DiffJob::memory_bound`].
pub const DIR_ENTRY_BYTES: u64 = 256;
/// `diff_command`'s run time per side when the request names none.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest `timeout_s` a `diff_command` may ask for: tighter than
/// [`TimeoutS::MAX_S`], since a command diff holds two SSH sessions.
pub const MAX_COMMAND_TIMEOUT_S: f64 = 3600.0;

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

/// Resolves the server on `side` (23000 when unknown, the side in front of
/// the detail so a client knows which one).
fn server(settings: &Settings, who: &Principal, side: &str, name: &str) -> Result<Target, AppError> {
    let server = ServerRef::resolve(settings, who, name).map_err(|mut e| {
        e.detail = e.detail.map(|d| format!("{side}: {d}"));
        e
    })?;
    Ok(Target {
        server: server.into_spec(),
        path: String::new(),
    })
}

/// Checks the path on `side` and resolves its server.
fn target(settings: &Settings, who: &Principal, side: &str, r: &FileRef) -> Result<Target, AppError> {
    let path = RemotePath::parse(&format!("{side}.path"), r.path.clone())?;
    Ok(Target {
        path: path.into_string(),
        ..server(settings, who, side, &r.server)?
    })
}

/// `timeout_s` of a `diff_command`: [`TimeoutS`], capped at an hour.
fn command_timeout(value: Option<f64>) -> Result<Duration, AppError> {
    match TimeoutS::parse(value) {
        Ok(None) => Ok(DEFAULT_COMMAND_TIMEOUT),
        Ok(Some(t)) if t.duration().as_secs_f64() <= MAX_COMMAND_TIMEOUT_S => Ok(t.duration()),
        // one message for every refusal, with this domain's own cap
        _ => Err(invalid(format!(
            "timeout_s must be in (0, {MAX_COMMAND_TIMEOUT_S}]"
        ))),
    }
}

impl DiffJob {
    /// Validates `req`: 10001 for a bad field, 23000 for an unknown server.
    pub fn files(settings: &Settings, who: &Principal, req: &DiffFilesRequest) -> Result<DiffJob, AppError> {
        let context = req.context.unwrap_or(DEFAULT_CONTEXT);
        if context > MAX_CONTEXT {
            return Err(invalid(format!("context must be at most {MAX_CONTEXT}")));
        }
        Ok(DiffJob::Files {
            left: target(settings, who, "left", &req.left)?,
            right: target(settings, who, "right", &req.right)?,
            context,
            max_bytes: settings.diff_max_bytes,
        })
    }

    /// Validates `req`.
    pub fn dirs(settings: &Settings, who: &Principal, req: &DiffDirsRequest) -> Result<DiffJob, AppError> {
        if req.max_depth == Some(0) {
            return Err(invalid("max_depth must be at least 1"));
        }
        Ok(DiffJob::Dirs {
            left: target(settings, who, "left", &req.left)?,
            right: target(settings, who, "right", &req.right)?,
            options: DirOptions {
                recursive: req.recursive,
                max_depth: req.max_depth,
                compare: req.compare,
                max_entries: MAX_DIR_ENTRIES,
            },
        })
    }

    /// Validates `req`.
    pub fn command(
        settings: &Settings,
        who: &Principal,
        req: &DiffCommandRequest,
    ) -> Result<DiffJob, AppError> {
        if req.command.trim().is_empty() {
            return Err(invalid("command must not be empty"));
        }
        if req.command.contains('\0') {
            return Err(invalid("command must not contain NUL"));
        }
        let timeout = command_timeout(req.timeout_s)?;
        Ok(DiffJob::Command {
            command: req.command.clone(),
            left: server(settings, who, "left", &req.left_server)?,
            right: server(settings, who, "right", &req.right_server)?,
            options: CommandOptions {
                max_stdout: usize::try_from(settings.diff_max_bytes).unwrap_or(usize::MAX),
                timeout,
            },
        })
    }

    /// The command rules on a `diff_command`, on each of its servers: the
    /// refusal (55000), or what the job waits on before it runs (one hold
    /// per server a `review` rule holds it on). Other jobs run no command.
    pub fn held(&self, rules: &dyn CommandCheck) -> Result<Option<Gate>, AppError> {
        let DiffJob::Command {
            command, left, right, ..
        } = self
        else {
            return Ok(None);
        };
        let first = rules.check(&left.server, command)?;
        let second = if right.server.name == left.server.name {
            None
        } else {
            rules.check(&right.server, command)?
        };
        Ok(match (first, second) {
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => Some(one),
            // the first refusal drops the other hold (withdrawn at once)
            (Some(a), Some(b)) => Some(Box::pin(async move { futures_util::try_join!(a, b).map(|_| ()) })),
        })
    }

    /// The message type that asks for this job (what it needs comes from
    /// the access table), and the names of its two servers: what a
    /// re-judging of access looks at.
    pub fn scope(&self) -> (&'static str, [&str; 2]) {
        let (kind, left, right) = match self {
            DiffJob::Files { left, right, .. } => ("diff_files", left, right),
            DiffJob::Dirs { left, right, .. } => ("diff_dirs", left, right),
            DiffJob::Command { left, right, .. } => ("diff_command", left, right),
        };
        (kind, [&left.server.name, &right.server.name])
    }

    /// The most bytes this job may hold while it runs, reserved from the
    /// daemon's diff budget before it starts: both files, both commands'
    /// kept output, or both directory listings (estimated at
    /// [`DIR_ENTRY_BYTES`] an entry).
    pub fn memory_bound(&self) -> u64 {
        match self {
            DiffJob::Files { max_bytes, .. } => max_bytes.saturating_mul(2),
            DiffJob::Command { options, .. } => {
                2 * (options.max_stdout as u64 + remote::COMMAND_STDERR_MAX as u64)
            }
            DiffJob::Dirs { options, .. } => 2 * options.max_entries as u64 * DIR_ENTRY_BYTES,
        }
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

#[cfg(test)]
mod tests {
    use pinkpage_actors::ErrorCode;

    use super::*;

    #[test]
    fn command_timeouts_are_capped_at_an_hour_with_one_message() {
        assert_eq!(command_timeout(None).unwrap(), DEFAULT_COMMAND_TIMEOUT);
        assert_eq!(command_timeout(Some(1.5)).unwrap(), Duration::from_millis(1500));
        assert_eq!(command_timeout(Some(3600.0)).unwrap(), Duration::from_secs(3600));
        for bad in [0.0, -1.0, f64::NAN, 3600.5, 86_400.0] {
            let err = command_timeout(Some(bad)).unwrap_err();
            assert_eq!(err.code, ErrorCode::Validation, "{bad}");
            assert_eq!(err.detail.as_deref(), Some("timeout_s must be in (0, 3600]"));
        }
    }
}
