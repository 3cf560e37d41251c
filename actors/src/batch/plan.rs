//! What a batch run is asked to do ([`BatchPlan`]) and what it reports
//! ([`CommandResult`] per command, [`BatchSummary`] at the end): plain data,
//! shared by the actor, its workers and whoever records the run.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::AppError;
use crate::server::ServerSpec;
use crate::ssh::ExecLimits;

/// How failed commands are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts after a failed one (0: run once).
    pub retries: u32,
    /// Pause between a failed attempt and the next.
    pub retry_delay: Duration,
    /// Whether a command that still fails after its retries ends the
    /// server's run (the rest are reported skipped).
    pub stop_on_error: bool,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    /// The run's id, made by the caller; echoed in every event.
    pub run_id: String,
    /// Servers, each run in parallel with the others.
    pub servers: Vec<Arc<ServerSpec>>,
    /// Commands, run in order on every server.
    pub commands: Vec<String>,
    /// Retries and stop-on-error.
    pub policy: RetryPolicy,
    /// Output caps and the per-attempt timeout.
    pub limits: ExecLimits,
    /// Asked of each command at its turn, before its first attempt: a
    /// refused command fails unrun, a held one waits (and with it the
    /// commands after it on that server; other servers go on).
    pub checks: crate::policy::Checks,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Exit status 0 (possibly after retries).
    Succeeded,
    /// Non-zero exit, signal, timeout or error on the last attempt.
    Failed,
    /// Not run: an earlier command failed under `stop_on_error`, or the
    /// server could not be reached.
    Skipped,
}

impl CommandStatus {
    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Succeeded => "succeeded",
            CommandStatus::Failed => "failed",
            CommandStatus::Skipped => "skipped",
        }
    }
}

/// One command on one server: the one definition of a batch result, sent
/// to clients (`batch_command_result`, a workflow's batch step), stored and
/// read back over REST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommandResult {
    /// The run.
    pub run_id: String,
    /// Server name.
    pub server: String,
    /// Position of the command in the run's list (0-based).
    pub index: usize,
    /// The command line.
    pub command: String,
    /// How it ended.
    pub status: CommandStatus,
    /// Exit status of the last attempt, when it exited.
    pub exit_status: Option<u32>,
    /// Signal that ended the last attempt (`TERM`, ...), if any.
    pub exit_signal: Option<String>,
    /// Standard output of the last attempt, decoded with the server's
    /// encoding (invalid bytes become U+FFFD), at most the cap.
    pub stdout: String,
    /// Standard error of the last attempt, likewise.
    pub stderr: String,
    /// Whether stdout or stderr had more than the cap.
    pub truncated: bool,
    /// Attempts made (0 when skipped).
    pub attempts: u32,
    /// From the first attempt's start to the last one's end, retry delays
    /// included.
    pub duration_ms: u64,
    /// Why the last attempt failed without an exit status (timeout 22001,
    /// connection 20000-21000, ...), or why the command was skipped after a
    /// connection failure.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::error::ErrorBody>))]
    pub error: Option<AppError>,
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    /// The run.
    pub run_id: String,
    /// Commands that succeeded (over all servers).
    pub succeeded: u32,
    /// Commands that failed.
    pub failed: u32,
    /// Commands skipped, including those not run because of a cancel.
    pub skipped: u32,
    /// From the actor's start to its end.
    pub duration_ms: u64,
    /// Whether the run was stopped before it finished.
    pub cancelled: bool,
    /// Servers where no command could run because the connection failed
    /// (with the error), for the "whole run could not start" summary.
    pub unreachable: Vec<(String, AppError)>,
}
