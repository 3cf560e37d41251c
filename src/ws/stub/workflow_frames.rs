//! The frames of a workflow run on `/ws/v1/stub` (docs/protocol.md,
//! "Workflows"): how a run's typed events (`crate::workflows::events`) are
//! written for a client.
//!
//! `workflow_*` frames say where the run is; a step's own frames are the
//! same as when the step is driven by hand (`ssh_output`, `scp_progress`,
//! `batch_command_result`, ...), each with the `run_id` and `step` they
//! belong to.

use std::collections::BTreeMap;

use pinkpage_actors::batch::plan::CommandResult;
use pinkpage_actors::transfer::{FileDone, TransferProgress};
use pinkpage_actors::workflow::plan::PlannedStep;
use pinkpage_actors::{AppError, RunId};
use serde::Serialize;

use crate::records::workflow::{RunState, StepState};
use crate::workflows::events::RunEvent;

/// A planned step and where it stands (`workflow_state`).
#[derive(Debug, Serialize)]
pub struct StepView<'a> {
    /// The step as planned.
    #[serde(flatten)]
    pub step: &'a PlannedStep,
    /// Where it stands.
    pub status: StepState,
}

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
        run_id: RunId,
        /// The workflow.
        workflow: &'a str,
        /// The values it runs with.
        params: &'a BTreeMap<String, String>,
        /// What it will do.
        steps: &'a [PlannedStep],
    },
    /// Where a run stands: the first answer to `workflow_watch`.
    WorkflowState {
        /// The run.
        run_id: RunId,
        /// The workflow.
        workflow: &'a str,
        /// Where the run stands.
        status: RunState,
        /// The step running or paused at, or the last one reached.
        current_step: Option<usize>,
        /// Each step and where it stands.
        steps: Vec<StepView<'a>>,
    },
    /// A step starts.
    WorkflowStepStarted {
        /// The run.
        run_id: RunId,
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
        run_id: RunId,
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
        run_id: RunId,
        /// The step.
        step: usize,
        /// Who confirmed.
        by: &'a str,
    },
    /// A step ended.
    WorkflowStepFinished {
        /// The run.
        run_id: RunId,
        /// The step.
        step: usize,
        /// `succeeded`, `failed` or `cancelled`.
        status: StepState,
        /// A command step's exit status.
        exit_status: Option<u32>,
        /// How long it took.
        duration_ms: u64,
        /// Why it failed or was cancelled.
        error: Option<&'a AppError>,
    },
    /// The run ended (the session lock, if the run took it, is free).
    WorkflowComplete {
        /// The run.
        run_id: RunId,
        /// The workflow.
        workflow: &'a str,
        /// `succeeded`, `failed` or `cancelled`.
        status: RunState,
        /// The step that stopped it, if one did.
        stopped_at: Option<usize>,
        /// Why it stopped.
        error: Option<&'a AppError>,
    },
    /// A command step is connecting.
    SshCommandStarted {
        /// The run.
        run_id: RunId,
        /// The step.
        step: usize,
        /// The server.
        server: &'a str,
    },
    /// A command step's output.
    SshOutput {
        /// The run.
        run_id: RunId,
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
        run_id: RunId,
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
        run_id: RunId,
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
        run_id: RunId,
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
        run_id: RunId,
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
    /// One command of a batch step finished: the batch result (with its
    /// `run_id`, the workflow run's) and the step.
    BatchCommandResult {
        /// The step.
        step: usize,
        /// The result.
        #[serde(flatten)]
        result: &'a CommandResult,
    },
}

impl<'a> WorkflowReply<'a> {
    /// The frame of run `run_id`'s `event`.
    pub fn of(run_id: RunId, event: &'a RunEvent) -> WorkflowReply<'a> {
        match event {
            RunEvent::Started {
                workflow,
                params,
                steps,
            } => WorkflowReply::WorkflowStarted {
                run_id,
                workflow,
                params,
                steps,
            },
            RunEvent::State(view) => WorkflowReply::WorkflowState {
                run_id,
                workflow: &view.workflow,
                status: view.state,
                current_step: view.current_step,
                steps: view
                    .steps
                    .iter()
                    .map(|(step, status)| StepView {
                        step,
                        status: *status,
                    })
                    .collect(),
            },
            RunEvent::StepStarted { step, name, kind } => WorkflowReply::WorkflowStepStarted {
                run_id,
                step: *step,
                name,
                kind,
            },
            RunEvent::CommandStarted { step, server } => WorkflowReply::SshCommandStarted {
                run_id,
                step: *step,
                server,
            },
            RunEvent::TransferStarted {
                step,
                transfer,
                source_server,
                destination_server,
            } => WorkflowReply::ScpTransferStarted {
                run_id,
                step: *step,
                transfer_name: transfer,
                source_server,
                destination_server,
            },
            RunEvent::Output { step, server, data } => WorkflowReply::SshOutput {
                run_id,
                step: *step,
                server,
                data,
            },
            RunEvent::TransferProgress {
                step,
                transfer,
                progress,
            } => WorkflowReply::ScpProgress {
                run_id,
                step: *step,
                transfer_name: transfer,
                progress,
            },
            RunEvent::BatchResult { step, result } => {
                WorkflowReply::BatchCommandResult { step: *step, result }
            }
            RunEvent::Paused {
                step,
                message,
                timeout,
            } => WorkflowReply::WorkflowPaused {
                run_id,
                step: *step,
                message,
                timeout_s: timeout.as_secs_f64(),
            },
            RunEvent::Confirmed { step, by } => WorkflowReply::WorkflowConfirmed {
                run_id,
                step: *step,
                by,
            },
            RunEvent::CommandFinished {
                step,
                server,
                reason,
                exit_status,
            } => WorkflowReply::SshCommandComplete {
                run_id,
                step: *step,
                server,
                reason: reason.as_str(),
                exit_status: *exit_status,
            },
            RunEvent::TransferFinished {
                step,
                transfer,
                summary,
            } => WorkflowReply::ScpComplete {
                run_id,
                step: *step,
                transfer_name: transfer,
                files: &summary.files,
                bytes: summary.bytes,
                duration_ms: summary.duration.as_millis() as u64,
            },
            RunEvent::StepFinished {
                step,
                state,
                exit_status,
                duration_ms,
                error,
            } => WorkflowReply::WorkflowStepFinished {
                run_id,
                step: *step,
                status: *state,
                exit_status: *exit_status,
                duration_ms: *duration_ms,
                error: error.as_ref(),
            },
            RunEvent::Finished {
                workflow,
                state,
                stopped_at,
                error,
            } => WorkflowReply::WorkflowComplete {
                run_id,
                workflow,
                status: *state,
                stopped_at: *stopped_at,
                error: error.as_ref(),
            },
        }
    }
}
