//! `WorkflowHub`: the runs in flight. One actor for the daemon.
//!
//! What it owns: the runs in flight ([`Runs`], `super::registry`: who
//! started each, where it stands, who watches it). Runs come in through
//! [`launch`] (which tells the hub with `Register` before the run's actor
//! starts) and leave on their `Finished`; nothing else adds or removes
//! them, and the hub handles one message at a time, so a confirmation, a
//! cancel or a watch either finds the run in flight or gets 10004.
//!
//! What it does with a run's notices: records them (`super::history`,
//! through the journal, in the order they happened) and tells the
//! watchers, as typed events (`super::events`) each front door renders.
//! A run's output notice is answered once its starter's feed is below its
//! high water mark, and the run answers its command's output only then
//! (backpressure); other watchers never slow a run.
//!
//! Starting a run ([`launch`]): the hub is told of the run before the
//! run's actor starts, so it knows the run before its first notice and
//! the caller hears `Started` before any event of the run. A run that
//! takes the lock itself ([`StartRun`]) takes it first (50004 when someone
//! else holds it); a connection that holds the lock launches its run
//! synchronously, as its own task.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseActFuture, ResponseFuture,
    WrapFuture,
};
use pinkpage_actors::broadcast::{BroadcastActor, Event, Join, WorkflowRunRef};
use pinkpage_actors::files::temp_files::TempFiles;
use pinkpage_actors::lock::{Acquire, Holder, SessionLockActor, SetWorkflowRun};
use pinkpage_actors::pty::book::PtyBook;
use pinkpage_actors::ssh::SshOptions;
use pinkpage_actors::task::{Pending, TaskEvent, TaskHandle, TaskId};
use pinkpage_actors::transfer::{TransferGate, TransferOutcome};
use pinkpage_actors::workflow::plan::{Action, PlannedStep};
use pinkpage_actors::workflow::run::{
    Confirm, RunLock, RunMessage, RunNotice, RunOutcome, RunRequest, SshSteps, StepLauncher, StepOutcome,
    StepReport, WorkflowRunActor,
};
use pinkpage_actors::{AppError, ConnectionId, ErrorCode, RunId};

use super::events::{RunEvent, Watcher};
use super::history;
use super::prepare::Prepared;
use super::registry::{Asker, Entry, LockHeld, Params, Runs};
use crate::auth::rejudge::{self, Servers};
use crate::auth::Identity;
use crate::in_flight::InFlight;
use crate::journal::Journal;
use crate::records::workflow::StepState;

/// Starts a run that takes the session lock itself (50004 when someone
/// else holds it); replies with the run's id.
#[derive(Message)]
#[rtype(result = "Result<RunId, AppError>")]
pub struct StartRun {
    /// What to run.
    pub prepared: Prepared,
    /// Who asks.
    pub asker: Asker,
    /// The connection to stream the run to, if any (REST streams nothing).
    pub watcher: Option<Watcher>,
}

/// Makes the launcher of a run's steps: the real one reaches servers over
/// SSH ([`RunParts`]); the hub's tests script them.
pub trait StepsFor: Send + Sync + 'static {
    /// The launcher of run `run_id`'s steps of `prepared`, started by
    /// `user`.
    fn launcher(&self, run_id: RunId, prepared: &Prepared, asker: &Asker) -> Rc<dyn StepLauncher>;
}

/// What a run needs from the daemon besides its plan.
#[derive(Clone)]
pub struct RunParts {
    /// How to connect.
    pub ssh: Arc<SshOptions>,
    /// Where transfer steps record their temporary files.
    pub temp_files: TempFiles,
    /// One transfer at a time.
    pub gate: TransferGate,
    /// Output flush interval of command steps.
    pub throttle: Duration,
    /// Bytes kept per stream of a batch command.
    pub batch_output_cap: usize,
    /// Where command steps' PTYs are listed for watchers.
    pub ptys: PtyBook,
    /// The settings now: the command rules are asked again as each step
    /// starts, as a reload last left them.
    pub live: Arc<crate::settings::live::LiveSettings>,
    /// Where a step's held command waits for its approver.
    pub reviews: Arc<crate::reviews::ReviewDesk>,
    /// Where a refused step's audit row goes.
    pub journal: crate::journal::Journal,
}

impl StepsFor for RunParts {
    fn launcher(&self, run_id: RunId, prepared: &Prepared, asker: &Asker) -> Rc<dyn StepLauncher> {
        // not tied to a connection: a held step is told to every
        // connection of the run's user
        let checks = crate::reviews::check::PolicyCheck::new(
            self.live.clone(),
            self.reviews.clone(),
            self.journal.clone(),
            asker.principal.clone(),
            format!("workflow:{run_id}"),
            asker.remote.clone(),
        );
        let user = asker.principal.user.clone();
        Rc::new(SshSteps {
            run_id: run_id.to_string(),
            servers: prepared.servers.clone(),
            transfers: prepared.transfers.clone(),
            ssh: self.ssh.clone(),
            temp_files: self.temp_files.clone(),
            gate: self.gate.clone(),
            throttle: self.throttle,
            batch_output_cap: self.batch_output_cap,
            ptys: Some((self.ptys.clone(), user)),
            checks: pinkpage_actors::policy::Checks::new(Arc::new(checks)),
        })
    }
}

/// A run about to start, told to the hub before its actor runs (so the
/// hub knows it before its first notice).
#[derive(Message)]
#[rtype(result = "()")]
struct Register {
    run_id: RunId,
    task_id: TaskId,
    workflow: String,
    params: Params,
    steps: Arc<[PlannedStep]>,
    asker: Asker,
    watcher: Option<Watcher>,
    lock: LockHeld,
    addr: Addr<WorkflowRunActor>,
    handle: TaskHandle,
}

/// Starts `prepared` as run `run_id` on the current arbiter, its steps
/// launched by `steps`, reporting to `hub`: the hub is told first, then the
/// actor runs. `lock` is how the run holds the session lock. Synchronous,
/// so a connection that holds the lock can put the run in its task slot in
/// the same step as its checks.
#[allow(clippy::too_many_arguments)]
pub fn launch(
    hub: &Addr<WorkflowHub>,
    steps: &dyn StepsFor,
    run_ctx: Context<WorkflowRunActor>,
    run_id: RunId,
    prepared: Prepared,
    asker: Asker,
    watcher: Option<Watcher>,
    lock: RunLock,
) -> TaskHandle {
    let task_id = TaskId::next();
    let launcher = steps.launcher(run_id, &prepared, &asker);
    let addr = run_ctx.address();
    let (reporter, handle) = Pending::new(task_id, hub.clone().recipient::<RunMessage>()).split();
    let handle = handle(addr.clone().recipient());
    hub.do_send(Register {
        run_id,
        task_id,
        workflow: prepared.workflow.name.clone(),
        params: prepared.bound.0.clone(),
        steps: prepared.steps.clone().into(),
        asker,
        watcher,
        lock: match &lock {
            RunLock::Own { .. } => LockHeld::Own,
            RunLock::Callers(grant) => LockHeld::Callers(*grant),
        },
        addr,
        handle: handle.clone(),
    });
    let request = RunRequest {
        run_id,
        launcher,
        steps: prepared.steps,
        lock,
    };
    run_ctx.run(WorkflowRunActor::new(request, reporter));
    handle
}

/// Answers the pause run `run_id` waits at; the step's index.
#[derive(Message)]
#[rtype(result = "Result<usize, AppError>")]
pub struct ConfirmRun {
    /// Which run.
    pub run_id: String,
    /// Who asks.
    pub asker: Asker,
    /// Told the rest of the run, if given.
    pub watcher: Option<Watcher>,
}

/// Cancels run `run_id` (its end follows).
#[derive(Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct CancelRun {
    /// Which run.
    pub run_id: String,
    /// Who asks.
    pub asker: Asker,
    /// Told the rest of the run, if given.
    pub watcher: Option<Watcher>,
}

/// Follows run `run_id`: the watcher is told where it stands
/// ([`RunEvent::State`], the answer to this request), then everything it
/// does (a connection that already watches gets the snapshot only); a run
/// no longer in flight answers 10004 (its history is over REST).
#[derive(Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct WatchRun {
    /// Which run.
    pub run_id: String,
    /// Who asks (the run's user, or an administrator).
    pub asker: Asker,
    /// Who is told.
    pub watcher: Watcher,
}

/// The hub. See the module docs.
pub struct WorkflowHub {
    journal: Journal,
    lock: Addr<SessionLockActor>,
    /// How runs the hub starts itself reach servers.
    steps: Arc<dyn StepsFor>,
    /// To re-check who started each run when access changes.
    identity: Arc<Identity>,
    /// The servers as configured now, to judge runs again on theirs.
    servers: Arc<dyn Servers>,
    /// Where access changes are announced.
    broadcast: Addr<BroadcastActor>,
    /// Runs in flight.
    runs: Runs,
    /// What a graceful shutdown waits for; each run holds a guard.
    in_flight: Arc<InFlight>,
}

impl WorkflowHub {
    /// A hub with no runs.
    pub fn new(
        journal: Journal,
        lock: Addr<SessionLockActor>,
        steps: Arc<dyn StepsFor>,
        identity: Arc<Identity>,
        servers: Arc<dyn Servers>,
        broadcast: Addr<BroadcastActor>,
        in_flight: Arc<InFlight>,
    ) -> Self {
        WorkflowHub {
            journal,
            lock,
            steps,
            identity,
            servers,
            broadcast,
            in_flight,
            runs: Runs::default(),
        }
    }
}

impl Actor for WorkflowHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Told of access changes like a connection, so a run outlives
        // neither its user's account nor the credential that started it.
        self.broadcast.do_send(Join {
            id: ConnectionId::new(),
            recipient: ctx.address().recipient(),
        });
    }
}

impl Handler<Event> for WorkflowHub {
    type Result = ();

    /// On an access change, judges every run in flight again
    /// ([`crate::auth::rejudge`]): its starter's account as it is now (a
    /// disabled or removed account, or a revoked token that started it,
    /// withdraws it; a sign-out does not, runs are not tied to a sign-in)
    /// against what starting a run needs, on every server of its plan. A
    /// run no longer covered is cancelled once, and ends with 10010.
    fn handle(&mut self, event: Event, _: &mut Context<Self>) {
        if let Event::ShuttingDown { .. } = event {
            return self.stop_all_runs();
        }
        if !matches!(event, Event::AccessChanged) {
            return;
        }
        let need = crate::auth::table::message_need("/ws/v1/stub", "workflow_run");
        for entry in self.runs.iter_mut() {
            if entry.withdrawn.is_some() {
                continue;
            }
            let servers = entry.servers();
            let verdict = rejudge::account_now(&self.identity, &entry.started_by.principal)
                .and_then(|now| rejudge::judge(&*self.servers, &now, need, &servers));
            let Err(why) = verdict else {
                continue;
            };
            let reason = why.detail.clone().unwrap_or_default();
            log::warn!(run_id = entry.run_id.to_string().as_str(), user = &*entry.started_by.principal.user, reason = reason.as_str(); "workflow run cancelled: access changed");
            let _ = entry.handle.stop();
            self.journal.audit(history::cancelled(entry, None, Some(&reason)));
            entry.withdrawn = Some(why);
        }
    }
}

impl WorkflowHub {
    /// The daemon is stopping: every run is cancelled, as by a user (its
    /// current step stopped, its rows written `cancelled`), and audited.
    fn stop_all_runs(&mut self) {
        for entry in self.runs.iter_mut() {
            log::warn!(run_id = entry.run_id.to_string().as_str(), workflow = entry.workflow.as_str(); "workflow run cancelled: the daemon is shutting down");
            let _ = entry.handle.stop();
            self.journal.audit(history::cancelled(
                entry,
                None,
                Some("the daemon is shutting down"),
            ));
        }
    }
}

fn mailbox(e: actix::MailboxError) -> AppError {
    AppError::with_detail(ErrorCode::Internal, format!("actor unavailable: {e}"))
}

impl Handler<StartRun> for WorkflowHub {
    type Result = ResponseActFuture<Self, Result<RunId, AppError>>;

    fn handle(&mut self, msg: StartRun, _: &mut Context<Self>) -> Self::Result {
        let StartRun {
            prepared,
            asker,
            watcher,
        } = msg;
        let run_id = RunId::new();
        // The run's address exists before the run does, so the lock can be
        // told whom to revoke.
        let run_ctx: Context<WorkflowRunActor> = Context::new();
        let acquire = Acquire {
            holder: Holder::Run(WorkflowRunRef {
                run_id,
                workflow: prepared.workflow.name.clone(),
            }),
            user: asker.principal.user.clone(),
            revoked: run_ctx.address().recipient(),
        };
        Box::pin(
            self.lock
                .send(acquire)
                .into_actor(self)
                .map(move |res, hub, ctx| {
                    let grant = res.map_err(mailbox)??;
                    let lock = RunLock::Own {
                        lock: hub.lock.clone(),
                        grant,
                    };
                    launch(
                        &ctx.address(),
                        &*hub.steps,
                        run_ctx,
                        run_id,
                        prepared,
                        asker,
                        watcher,
                        lock,
                    );
                    Ok(run_id)
                }),
        )
    }
}

impl Handler<Register> for WorkflowHub {
    type Result = ();

    fn handle(&mut self, r: Register, _: &mut Context<Self>) {
        let mut entry = Entry {
            run_id: r.run_id,
            workflow: r.workflow.clone(),
            started_by: r.asker,
            state: crate::records::workflow::RunState::Running,
            step_states: vec![StepState::Pending; r.steps.len()],
            current_step: None,
            steps: r.steps.clone(),
            addr: r.addr,
            handle: r.handle,
            lock: r.lock,
            feeds: Vec::new(),
            confirmers: Vec::new(),
            withdrawn: None,
            in_flight: self.in_flight.enter(),
        };
        if let Some(w) = r.watcher {
            entry.watch(w, true);
        }
        entry.tell(RunEvent::Started {
            workflow: r.workflow.clone(),
            params: r.params.clone(),
            steps: r.steps,
        });
        let under_callers_lock = matches!(r.lock, LockHeld::Callers(_));
        // The first rows, so every later one finds them.
        let (write, event) = history::started(&entry, &r.params, under_callers_lock);
        self.journal.record(write).ignore();
        self.journal.audit(event);
        if let LockHeld::Callers(grant) = r.lock {
            self.lock.do_send(SetWorkflowRun {
                grant,
                run: Some(WorkflowRunRef {
                    run_id: r.run_id,
                    workflow: r.workflow.clone(),
                }),
            });
        }
        log::info!(
            run_id = r.run_id.to_string().as_str(),
            workflow = r.workflow.as_str(),
            user = &*entry.started_by.principal.user,
            connection_id = entry.started_by.actor.as_str();
            "workflow run accepted"
        );
        self.runs.insert(r.task_id, entry);
    }
}

impl Handler<ConfirmRun> for WorkflowHub {
    type Result = ResponseActFuture<Self, Result<usize, AppError>>;

    fn handle(&mut self, msg: ConfirmRun, _: &mut Context<Self>) -> Self::Result {
        let asked = self.runs.get_mut(&msg.run_id).and_then(|entry| {
            entry.may_be_driven_by(&msg.asker, &*self.servers)?;
            if let Some(w) = &msg.watcher {
                entry.confirmers.push((w.id, w.tag.clone()));
                entry.watch(w.clone(), false);
            }
            Ok(entry.addr.send(Confirm {
                by: msg.asker.principal.user.clone(),
            }))
        });
        let asked = match asked {
            Ok(asked) => asked,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        Box::pin(
            async move { asked.await.map_err(mailbox)? }
                .into_actor(self)
                .map(move |res, hub, _| {
                    if res.is_err() {
                        // not the one the run took: forget it
                        if let (Ok(entry), Some(w)) = (hub.runs.get_mut(&msg.run_id), &msg.watcher) {
                            if let Some(i) = entry
                                .confirmers
                                .iter()
                                .position(|(id, tag)| *id == w.id && *tag == w.tag)
                            {
                                entry.confirmers.remove(i);
                            }
                        }
                    }
                    let step = res?;
                    hub.journal
                        .audit(history::confirmed(&msg.asker, &msg.run_id, step));
                    Ok(step)
                }),
        )
    }
}

impl Handler<CancelRun> for WorkflowHub {
    type Result = Result<(), AppError>;

    fn handle(&mut self, msg: CancelRun, _: &mut Context<Self>) -> Self::Result {
        let entry = self.runs.get_mut(&msg.run_id)?;
        entry.may_be_driven_by(&msg.asker, &*self.servers)?;
        if let Some(w) = msg.watcher {
            entry.watch(w, false);
        }
        entry.handle.stop().map_err(|_| {
            AppError::with_detail(
                ErrorCode::TaskCancelFailed,
                "the run could not be told to stop; it is gone",
            )
        })?;
        self.journal
            .audit(history::cancelled(entry, Some(&msg.asker), None));
        Ok(())
    }
}

impl Handler<WatchRun> for WorkflowHub {
    type Result = Result<(), AppError>;

    fn handle(&mut self, msg: WatchRun, _: &mut Context<Self>) -> Self::Result {
        let entry = self.runs.get_mut(&msg.run_id)?;
        entry.may_be_driven_by(&msg.asker, &*self.servers)?;
        let (id, tag) = (msg.watcher.id, msg.watcher.tag.clone());
        // a connection that already watches only gets the snapshot, as the
        // answer to this request; a new one watches from now on
        entry.watch(msg.watcher, false);
        // the snapshot first, to this watcher alone, then everything after
        let state = Arc::new(RunEvent::State(entry.view()));
        entry
            .feeds
            .retain(|f| f.id != id || f.push_tagged(&state, tag.clone()));
        Ok(())
    }
}

impl Handler<RunMessage> for WorkflowHub {
    /// Output is answered once the starter took it (backpressure).
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: RunMessage, _: &mut Context<Self>) -> Self::Result {
        match msg.event {
            TaskEvent::Notice(notice) => match self.notice(msg.task_id, notice) {
                Some(wait) => Box::pin(wait),
                None => Box::pin(async {}),
            },
            TaskEvent::Finished { outcome, .. } => match self.finished(msg.task_id, outcome) {
                Some(told) => Box::pin(told),
                None => Box::pin(async {}),
            },
        }
    }
}

impl WorkflowHub {
    /// Records a run's end and takes it out of the registry; the returned
    /// future tells the watchers once the history row is settled, so a
    /// client that sees `workflow_complete` and then asks for the history
    /// finds the run there. (A failing store settles as `Waiting` at once:
    /// the end is still told, the row follows when the store recovers.)
    /// The lock forgets the run at once: a caller that starts another
    /// workflow right after the end is not refused by this one.
    fn finished(
        &mut self,
        task_id: TaskId,
        outcome: RunOutcome,
    ) -> Option<impl std::future::Future<Output = ()> + 'static> {
        let mut entry = self.runs.remove(task_id)?;
        let mut outcome = outcome;
        if let Some(why) = &entry.withdrawn {
            // cancelled because access changed: that is why it ended
            outcome.error = Some(why.clone());
        }
        let (write, event) = history::finished(&entry, &outcome);
        let receipt = self.journal.record(write);
        self.journal.audit(event);
        if let LockHeld::Callers(grant) = &entry.lock {
            self.lock.do_send(SetWorkflowRun {
                grant: *grant,
                run: None,
            });
        }
        log::info!(run_id = entry.run_id.to_string().as_str(), status = format!("{:?}", outcome.status).as_str(); "workflow run ended");
        let journal = self.journal.clone();
        Some(async move {
            journal.settled(receipt).await;
            entry.tell(RunEvent::Finished {
                workflow: entry.workflow.clone(),
                state: outcome.status.into(),
                stopped_at: outcome.stopped_at,
                error: outcome.error.clone(),
            });
        })
    }

    /// Records and tells a run's notice; for output, what to wait for
    /// before the run may go on.
    fn notice(
        &mut self,
        task_id: TaskId,
        notice: RunNotice,
    ) -> Option<impl std::future::Future<Output = ()> + 'static> {
        let entry = self.runs.by_task(task_id)?;
        match notice {
            RunNotice::StepStarted { step } => {
                self.journal.record(history::step_started(entry, step)).ignore();
                step_started(entry, step);
            }
            RunNotice::Output { step, data } => {
                let server = server_of(&entry.steps, step);
                entry.tell(RunEvent::Output { step, server, data });
                return entry.primary_drained();
            }
            RunNotice::TransferProgress { step, progress } => {
                let transfer = transfer_of(&entry.steps, step);
                entry.tell(RunEvent::TransferProgress {
                    step,
                    transfer,
                    progress,
                });
            }
            RunNotice::BatchResult { step, result } => {
                entry.tell(RunEvent::BatchResult { step, result });
                return entry.primary_drained();
            }
            RunNotice::Paused {
                step,
                message,
                timeout,
            } => {
                self.journal.record(history::paused(entry, step)).ignore();
                entry.tell(RunEvent::Paused {
                    step,
                    message,
                    timeout,
                });
            }
            RunNotice::StepFinished(report) => {
                let (write, event) = history::step_finished(entry, &report);
                self.journal.record(write).ignore();
                self.journal.audit(event);
                step_finished(entry, report);
            }
        }
        None
    }
}

fn server_of(steps: &[PlannedStep], step: usize) -> String {
    match steps.get(step).map(|s| &s.action) {
        Some(Action::Command { server, .. }) => server.clone(),
        _ => String::new(),
    }
}

fn transfer_of(steps: &[PlannedStep], step: usize) -> String {
    match steps.get(step).map(|s| &s.action) {
        Some(Action::Transfer { transfer, .. }) => transfer.clone(),
        _ => String::new(),
    }
}

/// `StepStarted`, then the step's own start.
fn step_started(entry: &mut Entry, step: usize) {
    let Some(planned) = entry.steps.get(step).cloned() else {
        return;
    };
    entry.tell(RunEvent::StepStarted {
        step,
        name: planned.name.clone(),
        kind: planned.action.kind(),
    });
    match planned.action {
        Action::Command { server, .. } => {
            entry.tell(RunEvent::CommandStarted { step, server });
        }
        Action::Transfer {
            transfer,
            source_server,
            destination_server,
            ..
        } => {
            entry.tell(RunEvent::TransferStarted {
                step,
                transfer,
                source_server,
                destination_server,
            });
        }
        Action::Batch { .. } | Action::Pause { .. } => {}
    }
}

/// The step's own end, a confirmation (before the end, in the run's own
/// order), then `StepFinished`.
fn step_finished(entry: &mut Entry, report: StepReport) {
    let step = report.step;
    let planned = entry.steps.get(step).cloned();
    match (report.outcome, planned.map(|p| p.action)) {
        (StepOutcome::Command(done), Some(Action::Command { server, .. })) => {
            entry.tell(RunEvent::CommandFinished {
                step,
                server,
                reason: done.reason,
                exit_status: done.exit_status,
            });
        }
        (
            StepOutcome::Transfer(TransferOutcome::Complete(summary)),
            Some(Action::Transfer { transfer, .. }),
        ) => {
            entry.tell(RunEvent::TransferFinished {
                step,
                transfer,
                summary,
            });
        }
        (StepOutcome::Confirmed { by }, _) => entry.tell_confirmed(RunEvent::Confirmed { step, by }),
        _ => {}
    }
    entry.tell(RunEvent::StepFinished {
        step,
        state: report.status.into(),
        exit_status: report.exit_status,
        duration_ms: report.duration.as_millis() as u64,
        error: report.error,
    });
}

#[cfg(test)]
mod tests;
