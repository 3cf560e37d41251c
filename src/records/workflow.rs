//! Workflow runs and their steps, as recorded.
//!
//! Every write is a [`WorkflowWrite`], sent in the order things happened by
//! the one place that follows the run (`workflows::hub`): first the run
//! with one `pending` step per planned step (so the history shows the
//! whole plan from the first moment), then each change. Each write only
//! moves a record forward (a finished step or run is never touched again),
//! so a write that arrives after the start-up recovery marked the run
//! `interrupted` changes nothing.
//!
//! The live view of a run (`workflow_state`, the frames) and its history
//! use the same [`RunState`] and [`StepState`] names.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use pinkpage_actors::workflow::plan::PlannedStep;
use pinkpage_actors::workflow::run::{RunStatus, StepStatus};
use pinkpage_actors::ErrorBody;
use serde::Serialize;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// A step is running.
    Running,
    /// It waits at a pause for a confirmation.
    Paused,
    /// Every step succeeded (or failed with `continue_on_error`).
    Succeeded,
    /// A step failed and stopped it.
    Failed,
    /// It was cancelled (a cancel, a revoked lock, an expired pause).
    Cancelled,
    /// The daemon stopped while it ran.
    Interrupted,
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Not reached yet.
    Pending,
    /// Running now.
    Running,
    /// A pause waiting for its confirmation.
    Paused,
    /// It did what it should.
    Succeeded,
    /// It failed.
    Failed,
    /// The run was cancelled while it ran.
    Cancelled,
    /// Never reached: the run ended before it.
    Skipped,
    /// The daemon stopped while it ran.
    Interrupted,
}

macro_rules! names {
    ($ty:ident { $($variant:ident = $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The stored and wire name.
            pub fn as_str(self) -> &'static str {
                match self { $( $ty::$variant => $name, )+ }
            }

            /// The state named `s`.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $( $name => Some($ty::$variant), )+ _ => None }
            }
        }
    };
}

names!(RunState {
    Running = "running",
    Paused = "paused",
    Succeeded = "succeeded",
    Failed = "failed",
    Cancelled = "cancelled",
    Interrupted = "interrupted",
});

names!(StepState {
    Pending = "pending",
    Running = "running",
    Paused = "paused",
    Succeeded = "succeeded",
    Failed = "failed",
    Cancelled = "cancelled",
    Skipped = "skipped",
    Interrupted = "interrupted",
});

impl From<RunStatus> for RunState {
    fn from(s: RunStatus) -> Self {
        match s {
            RunStatus::Succeeded => RunState::Succeeded,
            RunStatus::Failed => RunState::Failed,
            RunStatus::Cancelled => RunState::Cancelled,
        }
    }
}

impl From<StepStatus> for StepState {
    fn from(s: StepStatus) -> Self {
        match s {
            StepStatus::Succeeded => StepState::Succeeded,
            StepStatus::Failed => StepState::Failed,
            StepStatus::Cancelled => StepState::Cancelled,
        }
    }
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewWorkflowRun {
    /// UUID v4.
    pub run_id: String,
    /// When it started.
    pub at: DateTime<Utc>,
    /// The workflow's name.
    pub workflow: String,
    /// Connection id of the client that asked, or `rest`.
    pub actor: String,
    /// Who asked.
    pub user: String,
    /// From where.
    pub remote_addr: Option<String>,
    /// The bound parameter values.
    pub params: BTreeMap<String, String>,
    /// The plan.
    pub steps: Vec<PlannedStep>,
}

/// One change to a run, applied in the order sent.
#[derive(Debug, Clone)]
pub enum WorkflowWrite {
    /// A new run, `running`, with its steps `pending`; always the first.
    Create(NewWorkflowRun),
    /// Step `step` started at `at`.
    StepStarted {
        /// The run.
        run_id: String,
        /// The step.
        step: usize,
        /// When.
        at: DateTime<Utc>,
    },
    /// The run waits at pause `step`.
    Paused {
        /// The run.
        run_id: String,
        /// The step.
        step: usize,
    },
    /// Step `step` ended.
    StepFinished {
        /// The run.
        run_id: String,
        /// The step.
        step: usize,
        /// How it ended.
        state: StepState,
        /// How long it took.
        duration_ms: u64,
        /// A command's exit status.
        exit_status: Option<u32>,
        /// Why it failed.
        error: Option<ErrorBody>,
        /// The last 64 KiB of its output.
        output_tail: String,
        /// Who confirmed a pause.
        confirmed_by: Option<String>,
    },
    /// The run ended at `at`; steps never reached become `skipped`.
    Finished {
        /// The run.
        run_id: String,
        /// How it ended.
        state: RunState,
        /// Why it stopped.
        error: Option<ErrorBody>,
        /// When.
        at: DateTime<Utc>,
    },
}

impl WorkflowWrite {
    /// The run it changes.
    pub fn run_id(&self) -> &str {
        match self {
            WorkflowWrite::Create(r) => &r.run_id,
            WorkflowWrite::StepStarted { run_id, .. }
            | WorkflowWrite::Paused { run_id, .. }
            | WorkflowWrite::StepFinished { run_id, .. }
            | WorkflowWrite::Finished { run_id, .. } => run_id,
        }
    }

    /// Its size in memory, near enough (a step's end carries up to 64 KiB
    /// of output).
    pub fn weight(&self) -> usize {
        match self {
            WorkflowWrite::Create(r) => 512 + r.steps.len() * 512,
            WorkflowWrite::StepFinished { output_tail, .. } => 256 + output_tail.len(),
            _ => 128,
        }
    }

    /// Bulk output, which may never crowd out the rows of the audit trail.
    pub fn is_bulk(&self) -> bool {
        matches!(self, WorkflowWrite::StepFinished { output_tail, .. } if !output_tail.is_empty())
    }
}

/// A stored run, as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowRun {
    /// The run's id.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// Connection id of the client that started it, or `rest`.
    pub actor: String,
    /// Who started it.
    pub user: Option<String>,
    /// From where.
    pub remote_addr: Option<String>,
    /// The parameter values it ran with.
    pub params: BTreeMap<String, String>,
    /// Where it stands.
    pub status: RunState,
    /// The step running or paused at, or the step that stopped the run.
    pub current_step: Option<usize>,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended; null while it runs.
    pub finished_at: Option<String>,
    /// Why it stopped.
    pub error: Option<ErrorBody>,
}

/// One stored step.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowStep {
    /// Its position (0-based).
    pub index: usize,
    /// Its name.
    pub name: String,
    /// `command`, `transfer`, `batch` or `pause`.
    pub kind: String,
    /// The resolved step, as `workflow_plan` shows it.
    #[schema(value_type = Object)]
    pub plan: serde_json::Value,
    /// Where it stands.
    pub status: StepState,
    /// When it started.
    pub started_at: Option<String>,
    /// How long it took.
    pub duration_ms: Option<u64>,
    /// A command's exit status.
    pub exit_status: Option<u32>,
    /// Why it failed.
    pub error: Option<ErrorBody>,
    /// The last 64 KiB of its output.
    pub output_tail: Option<String>,
    /// For a pause: who confirmed it.
    pub confirmed_by: Option<String>,
}

/// A run with its steps.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowRunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: WorkflowRun,
    /// Its steps, in order.
    pub steps: Vec<WorkflowStep>,
}

/// Which runs to list: newest first.
#[derive(Debug, Clone)]
pub struct WorkflowRunsQuery {
    /// Most rows to return.
    pub limit: u32,
    /// Rows to skip (for paging).
    pub offset: u32,
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs the reader may see.
    pub visible: super::visible::Visible,
    /// Only runs in flight (`running` or `paused`), for a console that
    /// comes back to a run it did not start here.
    pub in_flight: bool,
}

impl RunState {
    /// Whether a run in this state has not ended yet.
    pub fn in_flight(self) -> bool {
        matches!(self, RunState::Running | RunState::Paused)
    }
}
