//! How a step and a run end: the statuses the step machine decides and a
//! run reports. A leaf: the run's rooms import it, it imports none of them.

use crate::error::AppError;

/// How much of a step's output is kept for its record (the last bytes).
pub const OUTPUT_TAIL: usize = 64 * 1024;

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// It did what it should.
    Succeeded,
    /// It failed (a wrong exit status, a timeout, an error).
    Failed,
    /// The run was cancelled while it ran.
    Cancelled,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Every step succeeded (or failed with `continue_on_error`).
    Succeeded,
    /// A step failed and stopped the run.
    Failed,
    /// It was cancelled (a cancel, a revoked lock, an expired pause).
    Cancelled,
}

/// The run's end.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// How it ended.
    pub status: RunStatus,
    /// The step that stopped it, if one did.
    pub stopped_at: Option<usize>,
    /// Why, when there is a code for it.
    pub error: Option<AppError>,
}
