//! `WorkflowRunActor`: one workflow run, its steps run in order, each as
//! the task its [`StepLauncher`] starts (a command, a transfer, a batch)
//! or a pause that waits for [`Confirm`].
//!
//! The run is three rooms:
//! - [`machine`]: the step state machine: which step runs, what it waits
//!   for, whether the run is ending and why; no actors, timers or I/O.
//! - [`launch`]: starting a step's task ([`SshSteps`], or a scripted
//!   launcher in tests) and judging each kind of task's end.
//! - this actor: the glue: it owns the machine, the current task's handle,
//!   the timers (a pause's expiry, a stopping step's give-up) and, when the
//!   run took the session lock itself, the grant. Only it touches them and
//!   it handles one message at a time, so a step's end, a cancel and a
//!   confirmation cannot interleave: whichever is handled first decides,
//!   the others find the state already moved on (a late confirmation gets
//!   50015, a stale task's messages are ignored by their task id).
//!
//! It keeps the task contract (`crate::task`) towards its client with one
//! refinement: [`Stop`] stops the current step first and the run ends once
//! that step has ended (the step's task finishes within its own
//! `CLEANUP_TIMEOUT`; a step that does not is given up after
//! [`STEP_STOP_TIMEOUT`]), so the run's record has the step's real end and
//! the run still ends before its client's `STOP_TIMEOUT`.
//!
//! The lock ([`RunLock`]): a run that took the lock itself releases it in
//! `stopped()`, after its last step has ended (or was given up and had the
//! rest of its cleanup time) and before it sends `Finished`, so a client
//! that sees the run's end finds the lock free. When an administrator
//! revokes it ([`LockRevoked`]), the run drops the grant (the lock frees
//! itself), cancels, and answers once it has finished: the lock is never
//! free under a running step. A run under its caller's lock releases
//! nothing; its caller does.
//!
//! What it reports ([`RunNotice`], stamped with its task id): each step's
//! start, the step's own output (with backpressure: a command's output
//! waits until the client took it), transfer progress, batch results, a
//! pause, and each step's end with the last [`OUTPUT_TAIL`] bytes of its
//! output; then one `Finished` with the [`RunOutcome`].

pub mod launch;
pub mod machine;
mod outcome;
#[cfg(test)]
mod scripted;
#[cfg(test)]
mod tests;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, ResponseFuture, SpawnHandle,
};

pub use self::launch::{SshSteps, StepClients, StepLauncher};
use self::machine::{Cancelling, RunMachine, Waits};
pub use self::outcome::{RunOutcome, RunStatus, StepStatus, OUTPUT_TAIL};
use super::plan::{Action, PlannedStep};
use crate::batch::plan::BatchSummary;
use crate::batch::run::{BatchMessage, BatchNotice};
use crate::error::{AppError, ErrorCode};
use crate::ids::RunId;
use crate::lock::{Grant, LockRevoked, Release, SessionLockActor, REVOKE_TIMEOUT};
use crate::task::{Notifier, Reporter, Stop, TaskEvent, TaskHandle, TaskId, TaskMessage, CLEANUP_TIMEOUT};
use crate::terminal::shell::{Completion, ShellMessage};
use crate::transfer::{TransferMessage, TransferOutcome, TransferProgress};

/// How long a cancelled step may take to end before it is given up: its
/// task's own cleanup bound (plus a little), below the client's
/// `STOP_TIMEOUT`.
pub const STEP_STOP_TIMEOUT: Duration = Duration::from_millis(CLEANUP_TIMEOUT.as_millis() as u64 + 500);

/// How a run holds the session lock.
pub enum RunLock {
    /// It took the lock itself: it releases `grant` when it ends.
    Own {
        /// The lock.
        lock: Addr<SessionLockActor>,
        /// Its grant.
        grant: Grant,
    },
    /// It works under its caller's grant, as the caller's task: the caller
    /// releases the lock once the run ended.
    Callers(Grant),
}

/// Everything a run needs.
pub struct RunRequest {
    /// The run's id (made by the caller).
    pub run_id: RunId,
    /// What to do, in order.
    pub steps: Vec<PlannedStep>,
    /// Starts each step's task.
    pub launcher: Rc<dyn StepLauncher>,
    /// How the run holds the lock.
    pub lock: RunLock,
}

/// What the step's task said at its end.
#[derive(Debug)]
pub enum StepOutcome {
    /// A command step's completion.
    Command(Completion),
    /// A transfer step's outcome.
    Transfer(TransferOutcome),
    /// A batch step's summary.
    Batch(BatchSummary),
    /// A pause answered by this user.
    Confirmed {
        /// Who confirmed.
        by: Arc<str>,
    },
    /// Nothing: the step did not start (a busy transfer gate), was a pause
    /// that was cancelled or expired, or its task was given up.
    None,
}

/// One step's end.
#[derive(Debug)]
pub struct StepReport {
    /// Which step.
    pub step: usize,
    /// How it ended.
    pub status: StepStatus,
    /// How long it took.
    pub duration: Duration,
    /// A command step's exit status.
    pub exit_status: Option<u32>,
    /// Why it failed or was cancelled, when there is a code for it.
    pub error: Option<AppError>,
    /// The step's task's own end.
    pub outcome: StepOutcome,
    /// The last [`OUTPUT_TAIL`] bytes of its output.
    pub output_tail: String,
}

/// What a run reports on the way.
#[derive(Debug)]
pub enum RunNotice {
    /// Step `step` starts.
    StepStarted {
        /// Which step.
        step: usize,
    },
    /// A command step's output.
    Output {
        /// Which step.
        step: usize,
        /// Decoded text.
        data: String,
    },
    /// A transfer step's progress.
    TransferProgress {
        /// Which step.
        step: usize,
        /// Where it is.
        progress: TransferProgress,
    },
    /// One command of a batch step finished.
    BatchResult {
        /// Which step.
        step: usize,
        /// Its result.
        result: BatchNotice,
    },
    /// A pause step waits for a confirmation.
    Paused {
        /// Which step.
        step: usize,
        /// What to check.
        message: String,
        /// How long it waits before the run is cancelled.
        timeout: Duration,
    },
    /// A step ended.
    StepFinished(StepReport),
}

/// What a run sends its client.
pub type RunMessage = TaskMessage<RunNotice, RunOutcome>;

/// The run's reporter.
pub type RunReporter = Reporter<RunNotice, RunOutcome>;

/// Answers the pause the run waits at; the step's index, or 50015 when it
/// waits at none.
#[derive(Debug, Message)]
#[rtype(result = "Result<usize, AppError>")]
pub struct Confirm {
    /// Who confirms (recorded with the step).
    pub by: Arc<str>,
}

/// The actor. See the module docs.
pub struct WorkflowRunActor {
    run_id: RunId,
    steps: Vec<PlannedStep>,
    launcher: Rc<dyn StepLauncher>,
    /// The run's own grant, while it holds one (taken by `stopped()` to
    /// release it, or dropped when revoked).
    own_lock: Option<(Addr<SessionLockActor>, Grant)>,
    reporter: Option<RunReporter>,
    notifier: Notifier<RunNotice, RunOutcome>,
    machine: RunMachine,
    /// The current step's task, while it runs.
    task: Option<TaskHandle>,
    /// A pause's expiry, or a stopping step's give-up timer.
    timer: Option<SpawnHandle>,
    /// A cancelled step's task that did not end in time: given up, but the
    /// lock is released only once it ended or had its cleanup time.
    abandoned: Option<TaskHandle>,
}

impl WorkflowRunActor {
    /// A run of `req`, reporting through `reporter` once started.
    pub fn new(req: RunRequest, reporter: RunReporter) -> Self {
        let own_lock = match req.lock {
            RunLock::Own { lock, grant } => Some((lock, grant)),
            RunLock::Callers(_) => None,
        };
        WorkflowRunActor {
            run_id: req.run_id,
            machine: RunMachine::new(req.steps.iter().map(|s| s.continue_on_error).collect()),
            steps: req.steps,
            launcher: req.launcher,
            own_lock,
            notifier: reporter.notifier(),
            reporter: Some(reporter),
            task: None,
            timer: None,
            abandoned: None,
        }
    }

    fn clients(ctx: &mut Context<Self>) -> StepClients {
        StepClients {
            shell: ctx.address().recipient(),
            transfer: ctx.address().recipient(),
            batch: ctx.address().recipient(),
        }
    }

    /// Starts the next step, or ends the run when none is left or it is
    /// ending.
    fn advance(&mut self, ctx: &mut Context<Self>) {
        let Some(step) = self.machine.next_step() else {
            return ctx.stop();
        };
        self.notifier.do_send(RunNotice::StepStarted { step });
        let action = self.steps[step].action.clone();
        log::info!(run_id = self.run_id.to_string().as_str(), step = step, kind = action.kind(); "workflow step started");
        if let Action::Pause { message, timeout_s } = action {
            self.machine.begin(step, Waits::Pause);
            let timeout = Duration::from_secs_f64(timeout_s);
            self.timer = Some(ctx.run_later(timeout, move |act, ctx| act.pause_expired(step, timeout, ctx)));
            self.notifier.do_send(RunNotice::Paused {
                step,
                message,
                timeout,
            });
            return;
        }
        let task_id = TaskId::next();
        let clients = Self::clients(ctx);
        match self.launcher.launch(step, &action, task_id, &clients) {
            Ok(handle) => {
                self.machine.begin(step, Waits::Task(task_id));
                self.task = Some(handle);
            }
            Err(e) => {
                self.machine.begin(step, Waits::Task(task_id));
                self.step_done(StepStatus::Failed, None, Some(e), StepOutcome::None, ctx);
            }
        }
    }

    /// The current step ended: reports it, then goes on or stops.
    fn step_done(
        &mut self,
        status: StepStatus,
        exit_status: Option<u32>,
        error: Option<AppError>,
        outcome: StepOutcome,
        ctx: &mut Context<Self>,
    ) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        self.task = None;
        let Some(ended) = self.machine.end_step(status, error.clone()) else {
            return;
        };
        log::info!(run_id = self.run_id.to_string().as_str(), step = ended.step, status = status_name(status); "workflow step finished");
        crate::metrics::workflow_step(self.steps[ended.step].action.kind(), ended.duration);
        self.notifier.do_send(RunNotice::StepFinished(StepReport {
            step: ended.step,
            status,
            duration: ended.duration,
            exit_status,
            error,
            outcome,
            output_tail: ended.output_tail,
        }));
        self.advance(ctx);
    }

    /// Cancels the run: the current step is stopped (its end then ends the
    /// run; a step that does not end in time is given up) or, for a pause,
    /// ended at once.
    fn cancel(&mut self, why: Option<AppError>, ctx: &mut Context<Self>) {
        match self.machine.cancel(why.clone()) {
            Cancelling::Nothing => {}
            Cancelling::EndRun => ctx.stop(),
            Cancelling::EndPause => self.step_done(StepStatus::Cancelled, None, why, StepOutcome::None, ctx),
            Cancelling::StopTask(task_id) => {
                if let Some(task) = &self.task {
                    let _ = task.stop();
                }
                if let Some(timer) = self.timer.take() {
                    ctx.cancel_future(timer);
                }
                self.timer = Some(ctx.run_later(STEP_STOP_TIMEOUT, move |act, ctx| {
                    if act.machine.is_current_task(task_id) {
                        act.timer = None;
                        act.abandoned = act.task.take();
                        let step = act.machine.current().map_or(0, |(s, _)| s);
                        let e = AppError::with_detail(
                            ErrorCode::TaskCancelTimeout,
                            format!("step {step} did not stop within {STEP_STOP_TIMEOUT:?}; given up"),
                        );
                        act.step_done(StepStatus::Cancelled, None, Some(e), StepOutcome::None, ctx);
                    }
                }));
            }
        }
    }

    fn pause_expired(&mut self, step: usize, timeout: Duration, ctx: &mut Context<Self>) {
        if self.machine.current() == Some((step, Waits::Pause)) {
            self.timer = None;
            let e = AppError::with_detail(
                ErrorCode::WorkflowPauseExpired,
                format!("no confirmation within {timeout:?}"),
            );
            self.cancel(Some(e), ctx);
        }
    }

    /// The current step's task ended with `status`.
    fn task_done(
        &mut self,
        (status, error): (StepStatus, Option<AppError>),
        exit_status: Option<u32>,
        outcome: StepOutcome,
        ctx: &mut Context<Self>,
    ) {
        self.step_done(status, exit_status, error, outcome, ctx);
    }
}

fn status_name(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Succeeded => "succeeded",
        StepStatus::Failed => "failed",
        StepStatus::Cancelled => "cancelled",
    }
}

impl Actor for WorkflowRunActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::info!(run_id = self.run_id.to_string().as_str(), steps = self.steps.len(); "workflow run started");
        self.advance(ctx);
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> actix::Running {
        // Stopped from outside (an arbiter shutting down) with a step still
        // running: that step's task must not outlive the run.
        if let Some(task) = self.task.take() {
            let _ = task.stop();
            self.abandoned.get_or_insert(task);
        }
        actix::Running::Stop
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let outcome = self.machine.outcome();
        log::info!(run_id = self.run_id.to_string().as_str(), status = format!("{:?}", outcome.status).as_str(); "workflow run finished");
        crate::metrics::workflow_run_ended(match outcome.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        });
        let Some(reporter) = self.reporter.take() else {
            return;
        };
        let lock = self.own_lock.take();
        let abandoned = self.abandoned.take();
        // Detached: the lock is released (when this run took it) before the
        // client hears the end, so the end means "free"; a step given up is
        // first given the rest of its cleanup time (never past
        // `REVOKE_TIMEOUT` from the cancel).
        actix::spawn(async move {
            if let Some(task) = abandoned {
                let _ = tokio::time::timeout(REVOKE_TIMEOUT - STEP_STOP_TIMEOUT, task.done().wait()).await;
            }
            if let Some((lock, grant)) = lock {
                let _ = lock.send(Release { grant }).await;
            }
            reporter.finish(outcome, None);
        });
    }
}

impl Handler<Stop> for WorkflowRunActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        self.cancel(None, ctx);
    }
}

impl Handler<Confirm> for WorkflowRunActor {
    type Result = Result<usize, AppError>;

    fn handle(&mut self, msg: Confirm, ctx: &mut Context<Self>) -> Self::Result {
        let step = self.machine.confirm()?;
        log::info!(run_id = self.run_id.to_string().as_str(), step = step, user = &*msg.by; "workflow pause confirmed");
        self.step_done(
            StepStatus::Succeeded,
            None,
            None,
            StepOutcome::Confirmed { by: msg.by },
            ctx,
        );
        Ok(step)
    }
}

impl Handler<LockRevoked> for WorkflowRunActor {
    /// Answered once the run has finished (the lock waits for that).
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: LockRevoked, ctx: &mut Context<Self>) -> Self::Result {
        let done = self.reporter.as_ref().map(Reporter::done);
        if self.own_lock.as_ref().is_some_and(|(_, g)| *g == msg.grant) {
            // Not ours to release any more: the lock frees itself once we
            // answer.
            self.own_lock = None;
            let e = AppError::with_detail(
                ErrorCode::NotSessionOwner,
                "the session lock was taken by an administrator",
            );
            self.cancel(Some(e), ctx);
        }
        Box::pin(async move {
            if let Some(done) = done {
                done.wait().await;
            }
        })
    }
}

impl Handler<ShellMessage> for WorkflowRunActor {
    /// Output is passed on before the shell may send more (backpressure).
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: ShellMessage, ctx: &mut Context<Self>) -> Self::Result {
        if !self.machine.is_current_task(msg.task_id) {
            return Box::pin(async {});
        }
        match msg.event {
            TaskEvent::Notice(data) => {
                self.machine.output(&data);
                let step = self.machine.current().map_or(0, |(s, _)| s);
                let notifier = self.notifier.clone();
                Box::pin(async move {
                    notifier.send(RunNotice::Output { step, data }).await;
                })
            }
            TaskEvent::Finished { outcome, .. } => {
                let expect = match self.machine.current().map(|(s, _)| &self.steps[s].action) {
                    Some(Action::Command { expect_exit, .. }) => expect_exit.clone(),
                    _ => vec![0],
                };
                let judged = launch::judge_command(&outcome, &expect);
                let exit = outcome.exit_status;
                self.task_done(judged, exit, StepOutcome::Command(outcome), ctx);
                Box::pin(async {})
            }
        }
    }
}

impl Handler<TransferMessage> for WorkflowRunActor {
    type Result = ();

    fn handle(&mut self, msg: TransferMessage, ctx: &mut Context<Self>) {
        if !self.machine.is_current_task(msg.task_id) {
            return;
        }
        match msg.event {
            TaskEvent::Notice(progress) => {
                if let Some((step, _)) = self.machine.current() {
                    self.notifier
                        .do_send(RunNotice::TransferProgress { step, progress });
                }
            }
            TaskEvent::Finished { outcome, .. } => {
                if let TransferOutcome::Complete(summary) = &outcome {
                    let names: Vec<&str> = summary.files.iter().map(|f| f.name.as_str()).collect();
                    self.machine.output(&format!(
                        "{} files, {} bytes: {}\n",
                        names.len(),
                        summary.bytes,
                        names.join(" ")
                    ));
                }
                let judged = launch::judge_transfer(&outcome);
                self.task_done(judged, None, StepOutcome::Transfer(outcome), ctx);
            }
        }
    }
}

impl Handler<BatchMessage> for WorkflowRunActor {
    /// Results are passed on before the batch's worker goes on.
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: BatchMessage, ctx: &mut Context<Self>) -> Self::Result {
        if !self.machine.is_current_task(msg.task_id) {
            return Box::pin(async {});
        }
        match msg.event {
            TaskEvent::Notice(result) => {
                self.machine.output(&format!(
                    "[{}] $ {} -> {}\n{}{}",
                    result.server,
                    result.command,
                    result.status.as_str(),
                    result.stdout,
                    result.stderr
                ));
                let step = self.machine.current().map_or(0, |(s, _)| s);
                let notifier = self.notifier.clone();
                Box::pin(async move {
                    notifier.send(RunNotice::BatchResult { step, result }).await;
                })
            }
            TaskEvent::Finished { outcome, .. } => {
                let judged = launch::judge_batch(&outcome);
                self.task_done(judged, None, StepOutcome::Batch(outcome), ctx);
                Box::pin(async {})
            }
        }
    }
}
