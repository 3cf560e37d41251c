//! What a watcher of a workflow run is told: typed events, in the run's
//! order. The hub sends them; each front door renders them in its own wire
//! format (`/ws/v1/stub` as the frames of docs/protocol.md), so the hub
//! knows nothing of JSON or WebSockets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Message, Recipient};
use pinkpage_actors::batch::plan::CommandResult;
use pinkpage_actors::terminal::shell::FinishReason;
use pinkpage_actors::transfer::{TransferProgress, TransferSummary};
use pinkpage_actors::workflow::plan::PlannedStep;
use pinkpage_actors::{AppError, ConnectionId, RunId};

use crate::records::workflow::{RunState, StepState};

/// Something a run did.
#[derive(Debug)]
pub enum RunEvent {
    /// The run was accepted (its starter's answer to `workflow_run`).
    Started {
        /// The workflow.
        workflow: String,
        /// The values it runs with.
        params: BTreeMap<String, String>,
        /// What it will do.
        steps: Arc<[PlannedStep]>,
    },
    /// Where the run stands: the first event a watcher who joins later
    /// gets (`workflow_watch`), with the same states as the history.
    State(RunView),
    /// A step starts.
    StepStarted {
        /// The step.
        step: usize,
        /// Its name.
        name: String,
        /// `command`, `transfer`, `batch` or `pause`.
        kind: &'static str,
    },
    /// A command step is connecting.
    CommandStarted {
        /// The step.
        step: usize,
        /// The server.
        server: String,
    },
    /// A transfer step started.
    TransferStarted {
        /// The step.
        step: usize,
        /// The transfer.
        transfer: String,
        /// Where from.
        source_server: String,
        /// Where to.
        destination_server: String,
    },
    /// A command step's output.
    Output {
        /// The step.
        step: usize,
        /// The server.
        server: String,
        /// Decoded text.
        data: String,
    },
    /// A transfer step's progress.
    TransferProgress {
        /// The step.
        step: usize,
        /// The transfer.
        transfer: String,
        /// Where it is.
        progress: TransferProgress,
    },
    /// One command of a batch step finished.
    BatchResult {
        /// The step.
        step: usize,
        /// Its result.
        result: Arc<CommandResult>,
    },
    /// The run waits for a confirmation.
    Paused {
        /// The step.
        step: usize,
        /// What to check.
        message: String,
        /// How long until the run is cancelled.
        timeout: Duration,
    },
    /// A pause was confirmed.
    Confirmed {
        /// The step.
        step: usize,
        /// Who confirmed.
        by: Arc<str>,
    },
    /// A command step's command is over.
    CommandFinished {
        /// The step.
        step: usize,
        /// The server.
        server: String,
        /// Why it ended.
        reason: FinishReason,
        /// The exit status, when it exited.
        exit_status: Option<u32>,
    },
    /// A transfer step's files are in place.
    TransferFinished {
        /// The step.
        step: usize,
        /// The transfer.
        transfer: String,
        /// What was copied.
        summary: TransferSummary,
    },
    /// A step ended.
    StepFinished {
        /// The step.
        step: usize,
        /// How it ended.
        state: StepState,
        /// A command step's exit status.
        exit_status: Option<u32>,
        /// How long it took.
        duration_ms: u64,
        /// Why it failed or was cancelled.
        error: Option<AppError>,
    },
    /// The run ended (the session lock, if the run took it, is free).
    Finished {
        /// The workflow.
        workflow: String,
        /// How it ended.
        state: RunState,
        /// The step that stopped it, if one did.
        stopped_at: Option<usize>,
        /// Why it stopped.
        error: Option<AppError>,
    },
}

impl RunEvent {
    /// Its size in memory, near enough: what a watcher's feed counts.
    pub fn weight(&self) -> usize {
        128 + match self {
            RunEvent::Output { data, .. } => data.len(),
            RunEvent::BatchResult { result, .. } => result.stdout.len() + result.stderr.len(),
            RunEvent::Started { steps, .. } => steps.len() * 256,
            RunEvent::State(view) => view.steps.len() * 64,
            RunEvent::TransferFinished { summary, .. } => summary.files.len() * 96,
            _ => 0,
        }
    }

    /// Whether it is a run's output (its starter's feed holds the run back
    /// while full of these).
    pub fn is_output(&self) -> bool {
        matches!(self, RunEvent::Output { .. } | RunEvent::BatchResult { .. })
    }
}

/// A run as it stands, for a watcher that joins late.
#[derive(Debug, Clone)]
pub struct RunView {
    /// The workflow.
    pub workflow: String,
    /// Where the run stands.
    pub state: RunState,
    /// The step running or paused at, or the last one reached.
    pub current_step: Option<usize>,
    /// Each planned step and where it stands.
    pub steps: Vec<(PlannedStep, StepState)>,
}

/// One event of run `run_id` for one watcher. `tag` is the watcher's own
/// correlation for these events (a request's id), handed back as given.
#[derive(Debug, Message, Clone)]
#[rtype(result = "()")]
pub struct Watched {
    /// The run.
    pub run_id: RunId,
    /// The watcher's own tag for this event.
    pub tag: Option<String>,
    /// What happened.
    pub event: Arc<RunEvent>,
}

/// A connection that is told what a run does.
#[derive(Clone)]
pub struct Watcher {
    /// The connection (a connection watches a run once).
    pub id: ConnectionId,
    /// Where its events go.
    pub recipient: Recipient<Watched>,
    /// Its own tag for the events (the request that made it watch).
    pub tag: Option<String>,
}
