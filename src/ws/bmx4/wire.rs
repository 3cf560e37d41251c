//! The BMX4 domain's wire types: what a client may send and what the
//! domain sends back (besides the common frames of `ws::protocol`). The
//! fields of `batch_execute` are [`BatchExecuteFields`], shared with any
//! other front door that starts batches and validated by
//! `BatchExecute::parse`.

use pinkpage_actors::batch::plan::CommandResult;
use pinkpage_actors::{AppError, ErrorBody};
use serde::{Deserialize, Serialize};

use crate::request::BatchExecuteFields;

/// What a BMX4 client may send (besides `ping`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Bmx4Request {
    /// Run commands on one or more servers.
    BatchExecute(BatchExecuteFields),
    /// Stop a running batch.
    BatchCancel {
        /// The run, from `batch_started`.
        run_id: String,
    },
}

/// What the BMX4 domain sends (besides the common frames).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Bmx4Reply<'a> {
    /// The run is recorded and starting.
    BatchStarted {
        /// The run's id (for `batch_cancel` and REST).
        run_id: &'a str,
        /// Server names, deduplicated.
        servers: &'a [String],
        /// Commands per server.
        commands: usize,
    },
    /// One command finished or was skipped.
    BatchCommandResult {
        /// The run.
        run_id: &'a str,
        /// Server name.
        server: &'a str,
        /// Position in the command list (0-based).
        index: usize,
        /// The command line.
        command: &'a str,
        /// `succeeded`, `failed` or `skipped`.
        status: &'a str,
        /// Exit status of the last attempt.
        exit_status: Option<u32>,
        /// Signal that ended the last attempt.
        exit_signal: Option<&'a str>,
        /// Standard output (capped).
        stdout: &'a str,
        /// Standard error (capped).
        stderr: &'a str,
        /// Attempts made.
        attempts: u32,
        /// First attempt's start to last attempt's end, delays included.
        duration_ms: u64,
        /// Whether stdout or stderr was cut at the cap.
        truncated: bool,
        /// Why it failed without an exit status, or why it was skipped.
        error: Option<ErrorBody>,
    },
    /// The run is over and stored.
    BatchComplete {
        /// The run.
        run_id: &'a str,
        /// Commands that succeeded.
        succeeded: u32,
        /// Commands that failed.
        failed: u32,
        /// Commands skipped (also those cut off by a cancel).
        skipped: u32,
        /// Run time.
        duration_ms: u64,
        /// Whether it was cancelled.
        cancelled: bool,
    },
    /// The cancel was accepted; `batch_complete` follows.
    BatchCancelled {
        /// The run.
        run_id: &'a str,
    },
}

impl<'a> Bmx4Reply<'a> {
    /// The `batch_command_result` frame of `r`.
    pub fn result(r: &'a CommandResult) -> Self {
        Bmx4Reply::BatchCommandResult {
            run_id: &r.run_id,
            server: &r.server,
            index: r.index,
            command: &r.command,
            status: r.status.as_str(),
            exit_status: r.exit_status,
            exit_signal: r.exit_signal.as_deref(),
            stdout: &r.stdout,
            stderr: &r.stderr,
            attempts: r.attempts,
            duration_ms: r.duration_ms,
            truncated: r.truncated,
            error: r.error.as_ref().map(AppError::body),
        }
    }
}
