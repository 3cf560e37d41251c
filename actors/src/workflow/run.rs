//! `WorkflowRunActor`: one workflow run, its steps run in order as the
//! existing task actors (a command step is an `SshShellActor`, a transfer
//! step a `TransferActor`, a batch step a `BatchRunActor`; a pause waits
//! for [`Confirm`]).
//!
//! What it owns: the plan, the index of the next step, the one step task
//! running now (its handle, its output tail, its timers) and, when the run
//! took the session lock itself, the [`Grant`]. Only this actor touches
//! them and it handles one message at a time, so a step's end, a cancel and
//! a confirmation cannot interleave: whichever is handled first decides,
//! the others find the state already moved on (a late confirmation gets
//! 50015, a stale task's messages are ignored by their task id).
//!
//! It keeps the task contract (`crate::task`) towards its client with one
//! refinement: [`Stop`] stops the current step first and the run ends once
//! that step has ended (the step's task finishes within its own
//! `CLEANUP_TIMEOUT`; a step that does not is given up after
//! [`STEP_STOP_TIMEOUT`]), so the run's record has the step's real end and
//! the run still ends before its client's `STOP_TIMEOUT`.
//!
//! The lock: a run that took the lock releases it in `stopped()`, after its
//! last step has ended and before it sends `Finished`, so a client that
//! sees the run's end finds the lock free. When an administrator revokes
//! it ([`LockRevoked`]), the run drops the grant (the lock frees itself),
//! cancels, and answers once it has finished: the lock is never free under
//! a running step.
//!
//! What it reports ([`RunNotice`], stamped with its task id): each step's
//! start, the step's own output (with backpressure: a command's output
//! waits until the client took it), transfer progress, batch results,
//! a pause, and each step's end with the last [`OUTPUT_TAIL`] bytes of its
//! output; then one `Finished` with the [`RunOutcome`].

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, ResponseFuture, SpawnHandle,
};
use tokio::time::Instant;

use super::plan::{Action, PlannedStep};
use crate::batch::link::SshLinkFactory;
use crate::batch::plan::{BatchPlan, BatchSummary, RetryPolicy};
use crate::batch::run::{BatchMessage, BatchNotice, BatchRunActor};
use crate::error::{AppError, ErrorCode};
use crate::files::temp_files::TempFiles;
use crate::lock::{Grant, LockRevoked, Release, SessionLockActor, REVOKE_TIMEOUT};
use crate::server::{ServerSpec, TransferSpec};
use crate::ssh::{ExecLimits, PtyRequest, SshOptions};
use crate::task::{
    Notifier, Pending, Reporter, Stop, TaskEvent, TaskHandle, TaskId, TaskMessage, CLEANUP_TIMEOUT,
};
use crate::terminal::shell::{Completion, FinishReason, ShellMessage, ShellRequest, SshShellActor};
use crate::transfer::{
    TransferActor, TransferGate, TransferMessage, TransferOutcome, TransferProgress, TransferRequest,
};

/// How much of a step's output is kept for its record (the last bytes).
pub const OUTPUT_TAIL: usize = 64 * 1024;

/// How long a cancelled step may take to end before it is given up: its
/// task's own cleanup bound (plus a little), below the client's
/// `STOP_TIMEOUT`.
pub const STEP_STOP_TIMEOUT: Duration = Duration::from_millis(CLEANUP_TIMEOUT.as_millis() as u64 + 500);

/// Everything a run needs.
pub struct RunRequest {
    /// The run's id (made by the caller).
    pub run_id: String,
    /// What to do, in order.
    pub steps: Vec<PlannedStep>,
    /// Every server the plan acts on, already checked against the caller's
    /// scope.
    pub servers: BTreeMap<String, Arc<ServerSpec>>,
    /// Every transfer the plan names.
    pub transfers: BTreeMap<String, Arc<TransferSpec>>,
    /// How to connect.
    pub ssh: Arc<SshOptions>,
    /// Where transfer steps record their temporary files.
    pub temp_files: TempFiles,
    /// One transfer at a time in the daemon (50009).
    pub gate: TransferGate,
    /// Output flush interval of command steps.
    pub throttle: Duration,
    /// Bytes kept of each stream of a batch command.
    pub batch_output_cap: usize,
    /// The lock this run took itself (released when it ends), or `None`
    /// when it works under its caller's lock.
    pub lock: Option<(Addr<SessionLockActor>, Grant)>,
}

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

impl StepStatus {
    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Cancelled => "cancelled",
        }
    }
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

impl RunStatus {
    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
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

/// The step running now.
struct Current {
    step: usize,
    started: Instant,
    /// The step's task; `None` for a pause.
    task: Option<TaskHandle>,
    /// The last bytes of its output.
    tail: String,
    /// A pause's expiry, or a cancelled step's give-up timer.
    timer: Option<SpawnHandle>,
}

impl Current {
    fn push_output(&mut self, text: &str) {
        self.tail.push_str(text);
        if self.tail.len() > 2 * OUTPUT_TAIL {
            let mut cut = self.tail.len() - OUTPUT_TAIL;
            while !self.tail.is_char_boundary(cut) {
                cut += 1;
            }
            self.tail.drain(..cut);
        }
    }

    fn tail(&mut self) -> String {
        let mut tail = std::mem::take(&mut self.tail);
        if tail.len() > OUTPUT_TAIL {
            let mut cut = tail.len() - OUTPUT_TAIL;
            while !tail.is_char_boundary(cut) {
                cut += 1;
            }
            tail.drain(..cut);
        }
        tail
    }
}

/// The actor. See the module docs.
pub struct WorkflowRunActor {
    req: RunRequest,
    reporter: Option<RunReporter>,
    notifier: Notifier<RunNotice, RunOutcome>,
    /// The next step to start.
    next: usize,
    current: Option<Current>,
    /// Why the run is being cancelled, once it is.
    cancelling: Option<Option<AppError>>,
    /// The step whose failure stopped the run, with its error.
    failed: Option<(usize, Option<AppError>)>,
    /// A cancelled step's task that did not end in time: given up, but the
    /// lock is released only once it ended or had its cleanup time.
    abandoned: Option<TaskHandle>,
}

impl WorkflowRunActor {
    /// A run of `req`, reporting through `reporter` once started.
    pub fn new(req: RunRequest, reporter: RunReporter) -> Self {
        WorkflowRunActor {
            notifier: reporter.notifier(),
            reporter: Some(reporter),
            req,
            next: 0,
            current: None,
            cancelling: None,
            failed: None,
            abandoned: None,
        }
    }

    fn run_id(&self) -> &str {
        &self.req.run_id
    }

    /// Starts the next step, or ends the run when none is left or it is
    /// being cancelled.
    fn advance(&mut self, ctx: &mut Context<Self>) {
        if self.cancelling.is_some() || self.next >= self.req.steps.len() {
            return ctx.stop();
        }
        let step = self.next;
        self.next += 1;
        self.notifier.do_send(RunNotice::StepStarted { step });
        let mut current = Current {
            step,
            started: Instant::now(),
            task: None,
            tail: String::new(),
            timer: None,
        };
        let action = self.req.steps[step].action.clone();
        log::info!(run_id = self.run_id(), step = step, kind = action.kind(); "workflow step started");
        match self.start_task(&action, ctx) {
            Ok(Some(handle)) => current.task = Some(handle),
            Ok(None) => {
                let Action::Pause { message, timeout_s } = action else {
                    return;
                };
                let timeout = Duration::from_secs_f64(timeout_s);
                current.timer =
                    Some(ctx.run_later(timeout, move |act, ctx| act.pause_expired(step, timeout, ctx)));
                self.notifier.do_send(RunNotice::Paused {
                    step,
                    message,
                    timeout,
                });
            }
            Err(e) => {
                self.current = Some(current);
                return self.step_done(StepStatus::Failed, None, Some(e), StepOutcome::None, ctx);
            }
        }
        self.current = Some(current);
    }

    /// Starts the step's task; `None` for a pause.
    fn start_task(&self, action: &Action, ctx: &mut Context<Self>) -> Result<Option<TaskHandle>, AppError> {
        let server = |name: &str| {
            self.req.servers.get(name).cloned().ok_or_else(|| {
                AppError::with_detail(ErrorCode::UnknownServer, format!("no server named '{name}'"))
            })
        };
        let task_id = TaskId::next();
        Ok(Some(match action {
            Action::Command {
                server: name,
                command,
                stop_phrase,
                timeout_s,
                ..
            } => {
                let request = ShellRequest {
                    server: server(name)?,
                    ssh: self.req.ssh.clone(),
                    command: command.clone(),
                    stop_phrase: stop_phrase.clone(),
                    timeout: Some(Duration::from_secs_f64(*timeout_s)),
                    throttle: self.req.throttle,
                    pty: PtyRequest {
                        term: "xterm".to_owned(),
                        cols: 200,
                        rows: 50,
                    },
                };
                let (reporter, handle) =
                    Pending::new(task_id, ctx.address().recipient::<ShellMessage>()).split();
                handle(SshShellActor::new(request, reporter).start().recipient())
            }
            Action::Transfer { transfer, .. } => {
                let spec = self.req.transfers.get(transfer).cloned().ok_or_else(|| {
                    AppError::with_detail(
                        ErrorCode::UnknownTransfer,
                        format!("no transfer named '{transfer}'"),
                    )
                })?;
                let request = TransferRequest {
                    source: server(&spec.source_server)?,
                    destination: server(&spec.destination_server)?,
                    permit: self.req.gate.try_acquire(transfer)?,
                    spec,
                    ssh: self.req.ssh.clone(),
                    temp_files: self.req.temp_files.clone(),
                };
                let (reporter, handle) =
                    Pending::new(task_id, ctx.address().recipient::<TransferMessage>()).split();
                handle(TransferActor::spawn(request, reporter).recipient())
            }
            Action::Batch {
                servers,
                commands,
                retries,
                retry_delay_s,
                stop_on_error,
                timeout_s,
            } => {
                let plan = BatchPlan {
                    run_id: self.req.run_id.clone(),
                    servers: servers.iter().map(|s| server(s)).collect::<Result<_, _>>()?,
                    commands: commands.clone(),
                    policy: RetryPolicy {
                        retries: *retries,
                        retry_delay: Duration::from_secs_f64(*retry_delay_s),
                        stop_on_error: *stop_on_error,
                    },
                    limits: ExecLimits {
                        max_stdout: self.req.batch_output_cap,
                        max_stderr: self.req.batch_output_cap,
                        timeout: Some(Duration::from_secs_f64(*timeout_s)),
                    },
                };
                let links = Rc::new(SshLinkFactory {
                    ssh: self.req.ssh.clone(),
                });
                let (reporter, handle) =
                    Pending::new(task_id, ctx.address().recipient::<BatchMessage>()).split();
                handle(BatchRunActor::new(plan, links, reporter).start().recipient())
            }
            Action::Pause { .. } => return Ok(None),
        }))
    }

    /// Whether `task_id` is the current step's task.
    fn is_current(&self, task_id: TaskId) -> bool {
        self.current
            .as_ref()
            .and_then(|c| c.task.as_ref())
            .is_some_and(|t| t.task_id == task_id)
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
        let Some(mut current) = self.current.take() else {
            return;
        };
        if let Some(timer) = current.timer.take() {
            ctx.cancel_future(timer);
        }
        let step = current.step;
        let continue_on_error = self.req.steps[step].continue_on_error;
        log::info!(run_id = self.run_id(), step = step, status = status.as_str(); "workflow step finished");
        self.notifier.do_send(RunNotice::StepFinished(StepReport {
            step,
            status,
            duration: current.started.elapsed(),
            exit_status,
            error: error.clone(),
            outcome,
            output_tail: current.tail(),
        }));
        match status {
            StepStatus::Succeeded => {}
            StepStatus::Failed if continue_on_error => {}
            StepStatus::Failed => {
                self.failed = Some((step, error));
                return ctx.stop();
            }
            StepStatus::Cancelled => {
                if self.cancelling.is_none() {
                    self.cancelling = Some(error);
                }
            }
        }
        self.advance(ctx);
    }

    /// Cancels the run: the current step is stopped (its end then ends the
    /// run) or, for a pause, ended at once.
    fn cancel(&mut self, why: Option<AppError>, ctx: &mut Context<Self>) {
        // Already ending: a failure that stopped the run stays a failure.
        if self.cancelling.is_some() || self.failed.is_some() {
            return;
        }
        self.cancelling = Some(why.clone());
        let Some(current) = self.current.as_mut() else {
            return ctx.stop();
        };
        match &current.task {
            None => self.step_done(StepStatus::Cancelled, None, why, StepOutcome::None, ctx),
            Some(task) => {
                let _ = task.stop();
                let step = current.step;
                current.timer = Some(ctx.run_later(STEP_STOP_TIMEOUT, move |act, ctx| {
                    if act.current.as_ref().is_some_and(|c| c.step == step) {
                        act.abandoned = act.current.as_mut().and_then(|c| c.task.take());
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
        if let Some(current) = self
            .current
            .as_mut()
            .filter(|c| c.step == step && c.task.is_none())
        {
            current.timer = None;
            let e = AppError::with_detail(
                ErrorCode::WorkflowPauseExpired,
                format!("no confirmation within {timeout:?}"),
            );
            self.cancel(Some(e), ctx);
        }
    }
}

impl Actor for WorkflowRunActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::info!(run_id = self.run_id(), steps = self.req.steps.len(); "workflow run started");
        self.advance(ctx);
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> actix::Running {
        // Stopped from outside (an arbiter shutting down) with a step still
        // running: that step's task must not outlive the run.
        if let Some(task) = self.current.as_mut().and_then(|c| c.task.take()) {
            let _ = task.stop();
            self.abandoned.get_or_insert(task);
        }
        actix::Running::Stop
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let outcome = match (&self.cancelling, &self.failed) {
            (Some(why), _) => RunOutcome {
                status: RunStatus::Cancelled,
                stopped_at: self
                    .current
                    .as_ref()
                    .map(|c| c.step)
                    .or(Some(self.next.saturating_sub(1))),
                error: why.clone(),
            },
            (None, Some((step, e))) => RunOutcome {
                status: RunStatus::Failed,
                stopped_at: Some(*step),
                error: e.clone(),
            },
            (None, None) => RunOutcome {
                status: RunStatus::Succeeded,
                stopped_at: None,
                error: None,
            },
        };
        log::info!(run_id = self.run_id(), status = outcome.status.as_str(); "workflow run finished");
        let Some(reporter) = self.reporter.take() else {
            return;
        };
        let lock = self.req.lock.take();
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
        let waiting = self
            .current
            .as_ref()
            .filter(|c| c.task.is_none() && self.cancelling.is_none())
            .map(|c| c.step);
        let Some(step) = waiting else {
            return Err(AppError::with_detail(
                ErrorCode::WorkflowNotPaused,
                "the run is not waiting at a pause",
            ));
        };
        log::info!(run_id = self.run_id(), step = step, user = &*msg.by; "workflow pause confirmed");
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
        if self.req.lock.as_ref().is_some_and(|(_, g)| *g == msg.grant) {
            // Not ours to release any more: the lock frees itself once we
            // answer.
            self.req.lock = None;
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
        if !self.is_current(msg.task_id) {
            return Box::pin(async {});
        }
        match msg.event {
            TaskEvent::Notice(data) => {
                let Some(current) = self.current.as_mut() else {
                    return Box::pin(async {});
                };
                current.push_output(&data);
                let step = current.step;
                let notifier = self.notifier.clone();
                Box::pin(async move {
                    notifier.send(RunNotice::Output { step, data }).await;
                })
            }
            TaskEvent::Finished { outcome, .. } => {
                let (status, error) = self.judge_command(&outcome);
                let exit = outcome.exit_status;
                self.step_done(status, exit, error, StepOutcome::Command(outcome), ctx);
                Box::pin(async {})
            }
        }
    }
}

impl WorkflowRunActor {
    fn judge_command(&self, done: &Completion) -> (StepStatus, Option<AppError>) {
        let expect = match self.current.as_ref().map(|c| &self.req.steps[c.step].action) {
            Some(Action::Command { expect_exit, .. }) => expect_exit.clone(),
            _ => vec![0],
        };
        match done.reason {
            FinishReason::Exit if done.exit_status.is_some_and(|s| expect.contains(&s)) => {
                (StepStatus::Succeeded, None)
            }
            FinishReason::StopPhrase => (StepStatus::Succeeded, None),
            FinishReason::Exit => (
                StepStatus::Failed,
                Some(AppError::with_detail(
                    ErrorCode::SshCommandFailed,
                    format!(
                        "exit status {}, expected one of {expect:?}",
                        done.exit_status.map_or("none".to_owned(), |s| s.to_string())
                    ),
                )),
            ),
            FinishReason::Cancelled => (StepStatus::Cancelled, None),
            FinishReason::Timeout | FinishReason::Error => (StepStatus::Failed, done.error.clone()),
        }
    }
}

impl Handler<TransferMessage> for WorkflowRunActor {
    type Result = ();

    fn handle(&mut self, msg: TransferMessage, ctx: &mut Context<Self>) {
        if !self.is_current(msg.task_id) {
            return;
        }
        match msg.event {
            TaskEvent::Notice(progress) => {
                if let Some(step) = self.current.as_ref().map(|c| c.step) {
                    self.notifier
                        .do_send(RunNotice::TransferProgress { step, progress });
                }
            }
            TaskEvent::Finished { outcome, .. } => {
                let (status, error) = match &outcome {
                    TransferOutcome::Complete(summary) => {
                        if let Some(c) = self.current.as_mut() {
                            let names: Vec<&str> = summary.files.iter().map(|f| f.name.as_str()).collect();
                            c.push_output(&format!(
                                "{} files, {} bytes: {}\n",
                                names.len(),
                                summary.bytes,
                                names.join(" ")
                            ));
                        }
                        (StepStatus::Succeeded, None)
                    }
                    TransferOutcome::Failed(e) => (StepStatus::Failed, Some(e.clone())),
                    TransferOutcome::Cancelled { .. } => (StepStatus::Cancelled, None),
                };
                self.step_done(status, None, error, StepOutcome::Transfer(outcome), ctx);
            }
        }
    }
}

impl Handler<BatchMessage> for WorkflowRunActor {
    /// Results are passed on before the batch's worker goes on.
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: BatchMessage, ctx: &mut Context<Self>) -> Self::Result {
        if !self.is_current(msg.task_id) {
            return Box::pin(async {});
        }
        match msg.event {
            TaskEvent::Notice(result) => {
                let Some(current) = self.current.as_mut() else {
                    return Box::pin(async {});
                };
                current.push_output(&format!(
                    "[{}] $ {} -> {}\n{}{}",
                    result.server,
                    result.command,
                    result.status.as_str(),
                    result.stdout,
                    result.stderr
                ));
                let step = current.step;
                let notifier = self.notifier.clone();
                Box::pin(async move {
                    notifier.send(RunNotice::BatchResult { step, result }).await;
                })
            }
            TaskEvent::Finished { outcome, .. } => {
                let (status, error) = if outcome.cancelled {
                    (StepStatus::Cancelled, None)
                } else if outcome.failed > 0 || outcome.skipped > 0 {
                    let detail = format!(
                        "{} failed, {} skipped, {} succeeded",
                        outcome.failed, outcome.skipped, outcome.succeeded
                    );
                    (
                        StepStatus::Failed,
                        Some(AppError::with_detail(ErrorCode::BatchFailed, detail)),
                    )
                } else {
                    (StepStatus::Succeeded, None)
                };
                self.step_done(status, None, error, StepOutcome::Batch(outcome), ctx);
                Box::pin(async {})
            }
        }
    }
}
