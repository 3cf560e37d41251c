//! [`RunMachine`]: where a run is and what comes next, with no actors,
//! timers or I/O: which step runs, what it waits for, whether the run is
//! ending and why, and how it ends. The run's actor (`super`) feeds it
//! what happened and acts on its answers, so every rule of a run (a failed
//! step stops it unless it may fail, a cancel stops the step first, a
//! late confirmation finds nothing) is here, testable alone.

use std::time::Duration;

use tokio::time::Instant;

use super::outcome::{RunOutcome, RunStatus, StepStatus, OUTPUT_TAIL};
use crate::error::{AppError, ErrorCode};
use crate::task::TaskId;

/// What the current step waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waits {
    /// Its task's end.
    Task(TaskId),
    /// A confirmation (a pause).
    Pause,
    /// Its task's end after it was told to stop (a cancel).
    Stopping(TaskId),
}

/// The step running now.
#[derive(Debug)]
struct Current {
    step: usize,
    started: Instant,
    waits: Waits,
    tail: Tail,
}

/// Why the run is ending, once it is.
#[derive(Debug, Clone)]
enum Ending {
    /// Cancelled (a cancel, a revoked lock, an expired pause), with why
    /// when there is a code for it.
    Cancelled(Option<AppError>),
    /// Step `.0` failed and may not: the run stops there.
    Failed(usize, Option<AppError>),
}

/// What to do about a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelling {
    /// Already ending (a failure that stopped the run stays a failure).
    Nothing,
    /// No step runs: the run ends now.
    EndRun,
    /// The current step is a pause: end it now, cancelled.
    EndPause,
    /// Stop this task; its end ends the run.
    StopTask(TaskId),
}

/// One step's end, as the machine took it.
#[derive(Debug)]
pub struct Ended {
    /// Which step.
    pub step: usize,
    /// How long it took.
    pub duration: Duration,
    /// The last [`OUTPUT_TAIL`] bytes of its output.
    pub output_tail: String,
}

/// See the module docs.
#[derive(Debug)]
pub struct RunMachine {
    /// Per step: whether it may fail without stopping the run.
    continue_on_error: Vec<bool>,
    /// The next step to start.
    next: usize,
    current: Option<Current>,
    ending: Option<Ending>,
}

impl RunMachine {
    /// A run of steps that may (`true`) or may not fail on.
    pub fn new(continue_on_error: Vec<bool>) -> Self {
        RunMachine {
            continue_on_error,
            next: 0,
            current: None,
            ending: None,
        }
    }

    /// The step to start now, or `None` when the run ends (no step left,
    /// or it is ending).
    pub fn next_step(&mut self) -> Option<usize> {
        if self.ending.is_some() || self.next >= self.continue_on_error.len() {
            return None;
        }
        self.next += 1;
        Some(self.next - 1)
    }

    /// Step `step` began, waiting for `waits`.
    pub fn begin(&mut self, step: usize, waits: Waits) {
        self.current = Some(Current {
            step,
            started: Instant::now(),
            waits,
            tail: Tail::default(),
        });
    }

    /// The current step and what it waits for.
    pub fn current(&self) -> Option<(usize, Waits)> {
        self.current.as_ref().map(|c| (c.step, c.waits))
    }

    /// Whether `task_id` is the current step's task (a stale task's
    /// messages are ignored by this).
    pub fn is_current_task(&self, task_id: TaskId) -> bool {
        matches!(self.current(), Some((_, Waits::Task(t) | Waits::Stopping(t))) if t == task_id)
    }

    /// Keeps the last bytes of the current step's output.
    pub fn output(&mut self, text: &str) {
        if let Some(c) = self.current.as_mut() {
            c.tail.push(text);
        }
    }

    /// The current step ended with `status` (and `error`, when there is a
    /// code for it); `None` when no step runs. A failure that may not be
    /// continued stops the run; a cancelled step ends it.
    pub fn end_step(&mut self, status: StepStatus, error: Option<AppError>) -> Option<Ended> {
        let current = self.current.take()?;
        let step = current.step;
        match status {
            StepStatus::Succeeded => {}
            StepStatus::Failed if self.continue_on_error.get(step).copied().unwrap_or(false) => {}
            StepStatus::Failed => {
                if self.ending.is_none() {
                    self.ending = Some(Ending::Failed(step, error));
                }
            }
            StepStatus::Cancelled => {
                if self.ending.is_none() {
                    self.ending = Some(Ending::Cancelled(error));
                }
            }
        }
        Some(Ended {
            step,
            duration: current.started.elapsed(),
            output_tail: current.tail.take(),
        })
    }

    /// Cancels the run for `why`; what the actor must do now.
    pub fn cancel(&mut self, why: Option<AppError>) -> Cancelling {
        if self.ending.is_some() {
            return Cancelling::Nothing;
        }
        self.ending = Some(Ending::Cancelled(why));
        match self.current.as_mut() {
            None => Cancelling::EndRun,
            Some(c) => match c.waits {
                Waits::Pause => Cancelling::EndPause,
                Waits::Task(t) | Waits::Stopping(t) => {
                    c.waits = Waits::Stopping(t);
                    Cancelling::StopTask(t)
                }
            },
        }
    }

    /// Why the run is cancelled, once it is.
    pub fn cancelled_because(&self) -> Option<Option<AppError>> {
        match &self.ending {
            Some(Ending::Cancelled(why)) => Some(why.clone()),
            _ => None,
        }
    }

    /// A confirmation of the pause the run waits at: the pause's step, or
    /// 50015 when it waits at none (or is ending).
    pub fn confirm(&self) -> Result<usize, AppError> {
        match self.current() {
            Some((step, Waits::Pause)) if self.ending.is_none() => Ok(step),
            _ => Err(AppError::with_detail(
                ErrorCode::WorkflowNotPaused,
                "the run is not waiting at a pause",
            )),
        }
    }

    /// How the run ends, asked once it stopped: cancelled (at the step that
    /// ran then), failed at the step that stopped it, or succeeded.
    pub fn outcome(&self) -> RunOutcome {
        match &self.ending {
            Some(Ending::Cancelled(why)) => RunOutcome {
                status: RunStatus::Cancelled,
                stopped_at: self
                    .current
                    .as_ref()
                    .map(|c| c.step)
                    .or(Some(self.next.saturating_sub(1))),
                error: why.clone(),
            },
            Some(Ending::Failed(step, e)) => RunOutcome {
                status: RunStatus::Failed,
                stopped_at: Some(*step),
                error: e.clone(),
            },
            None => RunOutcome {
                status: RunStatus::Succeeded,
                stopped_at: None,
                error: None,
            },
        }
    }
}

/// The last [`OUTPUT_TAIL`] bytes of a step's output, cut at character
/// boundaries; up to twice that is kept between cuts, so a cut is rare.
#[derive(Debug, Default)]
struct Tail(String);

impl Tail {
    fn push(&mut self, text: &str) {
        self.0.push_str(text);
        if self.0.len() > 2 * OUTPUT_TAIL {
            self.keep_last();
        }
    }

    fn keep_last(&mut self) {
        if self.0.len() > OUTPUT_TAIL {
            let mut cut = self.0.len() - OUTPUT_TAIL;
            while !self.0.is_char_boundary(cut) {
                cut += 1;
            }
            self.0.drain(..cut);
        }
    }

    fn take(mut self) -> String {
        self.keep_last();
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(code: ErrorCode) -> Option<AppError> {
        Some(AppError::new(code))
    }

    #[test]
    fn steps_run_in_order_and_a_run_of_successes_succeeds() {
        let mut m = RunMachine::new(vec![false, false]);
        for expect in [0, 1] {
            let step = m.next_step().unwrap();
            assert_eq!(step, expect);
            m.begin(step, Waits::Task(TaskId::next()));
            assert_eq!(m.end_step(StepStatus::Succeeded, None).unwrap().step, expect);
        }
        assert_eq!(m.next_step(), None);
        assert_eq!(m.outcome().status, RunStatus::Succeeded);
    }

    #[test]
    fn a_failed_step_stops_the_run_unless_it_may_fail() {
        let mut m = RunMachine::new(vec![true, false, false]);
        let step = m.next_step().unwrap();
        m.begin(step, Waits::Task(TaskId::next()));
        m.end_step(StepStatus::Failed, failed(ErrorCode::SshCommandFailed));
        let step = m.next_step().unwrap();
        assert_eq!(step, 1, "step 0 may fail");
        m.begin(step, Waits::Task(TaskId::next()));
        m.end_step(StepStatus::Failed, failed(ErrorCode::BatchFailed));
        assert_eq!(m.next_step(), None, "step 1 may not");
        let out = m.outcome();
        assert_eq!((out.status, out.stopped_at), (RunStatus::Failed, Some(1)));
        assert_eq!(out.error.unwrap().code, ErrorCode::BatchFailed);
    }

    #[test]
    fn a_cancel_stops_the_task_first_and_its_end_ends_the_run() {
        let mut m = RunMachine::new(vec![false, false]);
        let task = TaskId::next();
        let step = m.next_step().unwrap();
        m.begin(step, Waits::Task(task));
        assert_eq!(m.cancel(None), Cancelling::StopTask(task));
        assert!(m.is_current_task(task), "its end is still awaited");
        assert_eq!(m.cancel(None), Cancelling::Nothing, "once");
        m.end_step(StepStatus::Cancelled, None);
        assert_eq!(m.next_step(), None);
        let out = m.outcome();
        assert_eq!((out.status, out.stopped_at), (RunStatus::Cancelled, Some(0)));
    }

    #[test]
    fn a_pause_is_confirmed_once_and_a_cancelled_pause_ends_at_once() {
        let mut m = RunMachine::new(vec![false, false]);
        let step = m.next_step().unwrap();
        m.begin(step, Waits::Pause);
        assert_eq!(m.confirm().unwrap(), 0);
        m.end_step(StepStatus::Succeeded, None);
        assert_eq!(m.confirm().unwrap_err().code, ErrorCode::WorkflowNotPaused);
        let step = m.next_step().unwrap();
        m.begin(step, Waits::Pause);
        let expired = AppError::new(ErrorCode::WorkflowPauseExpired);
        assert_eq!(m.cancel(Some(expired)), Cancelling::EndPause);
        assert_eq!(
            m.confirm().unwrap_err().code,
            ErrorCode::WorkflowNotPaused,
            "a confirmation after the cancel finds nothing"
        );
        m.end_step(StepStatus::Cancelled, None);
        let out = m.outcome();
        assert_eq!(out.error.unwrap().code, ErrorCode::WorkflowPauseExpired);
    }

    #[test]
    fn a_failure_that_stopped_the_run_stays_a_failure_when_a_cancel_comes_late() {
        let mut m = RunMachine::new(vec![false]);
        let step = m.next_step().unwrap();
        m.begin(step, Waits::Task(TaskId::next()));
        m.end_step(StepStatus::Failed, None);
        assert_eq!(m.cancel(None), Cancelling::Nothing);
        assert_eq!(m.outcome().status, RunStatus::Failed);
    }

    #[test]
    fn the_tail_keeps_the_last_bytes_at_a_character_boundary() {
        let mut m = RunMachine::new(vec![false]);
        let step = m.next_step().unwrap();
        m.begin(step, Waits::Task(TaskId::next()));
        for _ in 0..3 {
            m.output(&"가".repeat(OUTPUT_TAIL / 3 + 1));
        }
        m.output("end");
        let tail = m.end_step(StepStatus::Succeeded, None).unwrap().output_tail;
        assert!(
            tail.len() <= OUTPUT_TAIL && tail.len() > OUTPUT_TAIL - 4,
            "{}",
            tail.len()
        );
        assert!(tail.ends_with("end"));
    }
}
