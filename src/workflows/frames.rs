//! The frames of a workflow run (docs/protocol.md, "Workflows").
//!
//! `workflow_*` frames say where the run is; a step's own frames are the
//! same as when the step is driven by hand (`ssh_output`,
//! `scp_progress`, `batch_command_result`, ...), each with the `run_id` and
//! `step` they belong to.

use std::collections::BTreeMap;

use actix::Message;
use pinkpage_actors::transfer::{FileDone, TransferProgress};
use pinkpage_actors::workflow::plan::PlannedStep;
use pinkpage_actors::ErrorBody;
use serde::Serialize;

/// A frame already serialised for one watcher (its `request_id` in it),
/// written by the connection as it is.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct WorkflowFrame(pub String);

/// Everything a run sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkflowReply<'a> {
    /// `workflow_plan`'s answer: what a run would do.
    WorkflowPlan {
        /// The workflow.
        workflow: &'a str,
        /// The values, defaults filled in.
        params: &'a BTreeMap<String, String>,
        /// The resolved steps.
        steps: &'a [PlannedStep],
    },
    /// A run started (the answer to `workflow_run`).
    WorkflowStarted {
        /// The run's id.
        run_id: &'a str,
        /// The workflow.
        workflow: &'a str,
        /// The values it runs with.
        params: &'a BTreeMap<String, String>,
        /// What it will do.
        steps: &'a [PlannedStep],
    },
    /// A step starts.
    WorkflowStepStarted {
        /// The run.
        run_id: &'a str,
        /// The step's index.
        step: usize,
        /// Its name.
        name: &'a str,
        /// `command`, `transfer`, `batch` or `pause`.
        kind: &'a str,
    },
    /// The run waits for `workflow_confirm`.
    WorkflowPaused {
        /// The run.
        run_id: &'a str,
        /// The step.
        step: usize,
        /// What to check.
        message: &'a str,
        /// Seconds until the run is cancelled.
        timeout_s: f64,
    },
    /// A pause was confirmed: the answer to `workflow_confirm` (with its
    /// `request_id`) and a notice to every other watcher.
    WorkflowConfirmed {
        /// The run.
        run_id: &'a str,
        /// The step.
        step: usize,
        /// Who confirmed.
        by: &'a str,
    },
    /// A step ended.
    WorkflowStepFinished {
        /// The run.
        run_id: &'a str,
        /// The step.
        step: usize,
        /// `succeeded`, `failed` or `cancelled`.
        status: &'a str,
        /// A command step's exit status.
        exit_status: Option<u32>,
        /// How long it took.
        duration_ms: u64,
        /// Why it failed or was cancelled.
        error: Option<ErrorBody>,
    },
    /// The run ended (the session lock, if the run took it, is free).
    WorkflowComplete {
        /// The run.
        run_id: &'a str,
        /// The workflow.
        workflow: &'a str,
        /// `succeeded`, `failed` or `cancelled`.
        status: &'a str,
        /// The step that stopped it, if one did.
        stopped_at: Option<usize>,
        /// Why it stopped.
        error: Option<ErrorBody>,
    },
    /// A command step is connecting.
    SshCommandStarted {
        /// The run.
        run_id: &'a str,
        /// The step.
        step: usize,
        /// The server.
        server: &'a str,
    },
    /// A command step's output.
    SshOutput {
        /// The run.
        run_id: &'a str,
        /// The step.
        step: usize,
        /// The server.
        server: &'a str,
        /// Decoded text.
        data: &'a str,
    },
    /// A command step's command is over.
    SshCommandComplete {
        /// The run.
        run_id: &'a str,
        /// The step.
        step: usize,
        /// The server.
        server: &'a str,
        /// `exit`, `stop_phrase`, `timeout`, `cancelled` or `error`.
        reason: &'a str,
        /// The exit status, when it exited.
        exit_status: Option<u32>,
    },
    /// A transfer step started.
    ScpTransferStarted {
        /// The run.
        run_id: &'a str,
        /// The step.
        step: usize,
        /// The transfer.
        transfer_name: &'a str,
        /// Where from.
        source_server: &'a str,
        /// Where to.
        destination_server: &'a str,
    },
    /// A transfer step's progress.
    ScpProgress {
        /// The run.
        run_id: &'a str,
        /// The step.
        step: usize,
        /// The transfer.
        transfer_name: &'a str,
        /// Where it is.
        #[serde(flatten)]
        progress: &'a TransferProgress,
    },
    /// A transfer step's files are in place.
    ScpComplete {
        /// The run.
        run_id: &'a str,
        /// The step.
        step: usize,
        /// The transfer.
        transfer_name: &'a str,
        /// The files.
        files: &'a [FileDone],
        /// Bytes copied.
        bytes: u64,
        /// How long it took.
        duration_ms: u64,
    },
    /// One command of a batch step finished.
    BatchCommandResult {
        /// The run.
        run_id: &'a str,
        /// The step.
        step: usize,
        /// The server.
        server: &'a str,
        /// The command's position.
        index: usize,
        /// The command line.
        command: &'a str,
        /// `succeeded`, `failed` or `skipped`.
        status: &'a str,
        /// Exit status of the last attempt.
        exit_status: Option<u32>,
        /// Standard output (capped).
        stdout: &'a str,
        /// Standard error (capped).
        stderr: &'a str,
        /// Whether output was cut at the cap.
        truncated: bool,
        /// Attempts made.
        attempts: u32,
        /// Time taken.
        duration_ms: u64,
        /// Why it failed without an exit status.
        error: Option<ErrorBody>,
    },
}
