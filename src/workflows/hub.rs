//! `WorkflowHub`: the runs in flight. One actor for the daemon.
//!
//! What it owns: for each run in flight, who started it (to decide who may
//! confirm or cancel it: the same user or an administrator), the
//! connections watching it, its plan (to name servers in frames), and the
//! sending half of its writer, the one task that writes the run's rows in
//! the order they happened. Runs come in through [`StartRun`] and leave on
//! their `Finished`; nothing else adds or removes them, and the hub handles
//! one message at a time, so a confirmation or a cancel either finds the
//! run in flight or gets 10004.
//!
//! Starting a run ([`launch`]): the hub is told of the run ([`Register`]:
//! `workflow_started` to the caller, the run's first row queued on its
//! writer, the lock annotated when the run works under its caller's lock)
//! before the run's actor starts, so the hub knows the run before its
//! first notice and the caller sees `workflow_started` before any frame of
//! the run. A run that takes the lock itself ([`StartRun`]) takes it first
//! (50004 when someone else holds it); a connection that holds the lock
//! launches its run synchronously, as its own task.
//!
//! Frames reach each watcher through its own ordered feed (`super::feed`):
//! the hub answers the run's output notice once the starter's feed is
//! below its high water mark, and the run answers its command's output
//! only then (backpressure); other watchers never slow a run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient, ResponseActFuture,
    ResponseFuture, WrapFuture,
};
use pinkpage_actors::access::{Need, Principal};
use pinkpage_actors::broadcast::{BroadcastActor, Event, Join, WorkflowRunRef};
use pinkpage_actors::files::temp_files::TempFiles;
use pinkpage_actors::lock::{Acquire, Grant, SessionLockActor, SetWorkflowRun};
use pinkpage_actors::ssh::SshOptions;
use pinkpage_actors::task::{Pending, TaskEvent, TaskHandle, TaskId};
use pinkpage_actors::transfer::{TransferGate, TransferOutcome};
use pinkpage_actors::workflow::plan::{Action, PlannedStep};
use pinkpage_actors::workflow::run::{
    Confirm, RunMessage, RunNotice, RunRequest, StepOutcome, StepReport, WorkflowRunActor,
};
use pinkpage_actors::{AppError, ConnectionId, ErrorCode};

use super::feed::Feed;
use super::frames::{WorkflowFrame, WorkflowReply};
use super::prepare::Prepared;
use crate::auth::directory::Refusal;
use crate::auth::Identity;
use crate::in_flight::{InFlight, InFlightGuard};
use crate::journal::Journal;
use crate::records::workflow::{RunState, StepState};
use crate::records::{NewAuditEvent, NewWorkflowRun, WorkflowWrite};
use crate::ws::protocol::{Outgoing, RequestId};

/// A connection that is told what a run does.
#[derive(Clone)]
pub struct Watcher {
    /// The connection (a connection watches a run once).
    pub id: ConnectionId,
    /// Where its frames go.
    pub recipient: Recipient<WorkflowFrame>,
    /// The request its frames answer.
    pub rid: RequestId,
}

/// Who asks, for audit rows and the same-user check.
#[derive(Clone)]
pub struct Asker {
    /// The caller.
    pub principal: Principal,
    /// Connection id, or `rest`.
    pub actor: String,
    /// The caller's address.
    pub remote: Option<String>,
}

impl Asker {
    fn audit(&self, action: &str) -> NewAuditEvent {
        NewAuditEvent::new(self.actor.clone(), action).by(Some(&self.principal.user), self.remote.clone())
    }
}

/// Starts a run that takes the session lock itself (50004 when someone
/// else holds it).
#[derive(Message)]
#[rtype(result = "Result<String, AppError>")]
pub struct StartRun {
    /// What to run.
    pub prepared: Prepared,
    /// Who asks.
    pub asker: Asker,
    /// The connection to stream the run to, if any (REST streams nothing).
    pub watcher: Option<Watcher>,
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
}

/// A run about to start, told to the hub before its actor runs (so the
/// hub knows it before its first notice).
#[derive(Message)]
#[rtype(result = "()")]
struct Register {
    run_id: String,
    task_id: TaskId,
    workflow: String,
    params: std::collections::BTreeMap<String, String>,
    steps: Arc<[PlannedStep]>,
    asker: Asker,
    watcher: Option<Watcher>,
    held: Option<Grant>,
    addr: Addr<WorkflowRunActor>,
    handle: TaskHandle,
}

/// Starts `prepared` as run `run_id` on the current arbiter, reporting to
/// `hub`: the hub is told first, then the actor runs. `lock` is the grant
/// the run took itself; `held` the caller's grant it works under instead.
/// Synchronous, so a connection that holds the lock can put the run in its
/// task slot in the same step as its checks.
#[allow(clippy::too_many_arguments)]
pub fn launch(
    hub: &Addr<WorkflowHub>,
    parts: &RunParts,
    run_ctx: Context<WorkflowRunActor>,
    run_id: String,
    prepared: Prepared,
    asker: Asker,
    watcher: Option<Watcher>,
    lock: Option<(Addr<SessionLockActor>, Grant)>,
    held: Option<Grant>,
) -> TaskHandle {
    let task_id = TaskId::next();
    let addr = run_ctx.address();
    let (reporter, handle) = Pending::new(task_id, hub.clone().recipient::<RunMessage>()).split();
    let handle = handle(addr.clone().recipient());
    let steps: Arc<[PlannedStep]> = prepared.steps.clone().into();
    hub.do_send(Register {
        run_id: run_id.clone(),
        task_id,
        workflow: prepared.workflow.name.clone(),
        params: prepared.bound.0.clone(),
        steps,
        asker,
        watcher,
        held,
        addr,
        handle: handle.clone(),
    });
    let request = RunRequest {
        run_id,
        steps: prepared.steps,
        servers: prepared.servers,
        transfers: prepared.transfers,
        ssh: parts.ssh.clone(),
        temp_files: parts.temp_files.clone(),
        gate: parts.gate.clone(),
        throttle: parts.throttle,
        batch_output_cap: parts.batch_output_cap,
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

/// Cancels run `run_id` (its `workflow_complete` follows).
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

/// Queues `frame` on every feed, in order; drops the feeds of connections
/// that are gone or too far behind.
fn tell(feeds: &mut Vec<Feed>, frame: &WorkflowReply<'_>) {
    feeds.retain(|f| f.push(frame.to_text(&f.rid)));
}

/// [`tell`], then resolves once the primary watcher is below its high water
/// mark (backpressure for output).
fn tell_waiting(feeds: &mut Vec<Feed>, frame: &WorkflowReply<'_>) -> ResponseFuture<()> {
    tell(feeds, frame);
    match feeds.iter().find(|f| f.primary) {
        Some(primary) => Box::pin(primary.below_high_water()),
        None => Box::pin(async {}),
    }
}

struct Entry {
    run_id: String,
    workflow: String,
    started_by: Asker,
    steps: Arc<[PlannedStep]>,
    addr: Addr<WorkflowRunActor>,
    handle: TaskHandle,
    /// The connections watching, each through its own ordered feed; the
    /// starter's (if any) is the primary.
    feeds: Vec<Feed>,
    journal: Journal,
    held: Option<Grant>,
    /// The connections whose `workflow_confirm` is in flight, oldest first,
    /// with the request's id: the run takes confirmations in that order, so
    /// the first one's `workflow_confirmed` answers its request.
    confirmers: Vec<(ConnectionId, RequestId)>,
    /// Cancelled because its starter's access changed (once).
    access_cancelled: bool,
    /// Held while the run is in flight: a graceful shutdown waits for it.
    _in_flight: InFlightGuard,
}

impl Entry {
    /// Adds a (non-primary) watcher, once per connection.
    fn watch(&mut self, watcher: Option<Watcher>) {
        if let Some(w) = watcher {
            if !self.feeds.iter().any(|f| f.id == w.id) {
                self.feeds.push(Feed::new(w.id, w.recipient, w.rid, false));
            }
        }
    }

    fn write(&self, write: WorkflowWrite) {
        self.journal.record(write).ignore();
    }

    fn run_ref(&self) -> WorkflowRunRef {
        WorkflowRunRef {
            run_id: self.run_id.clone(),
            workflow: self.workflow.clone(),
        }
    }

    /// The same user, or an administrator (10003 otherwise).
    fn may_be_driven_by(&self, asker: &Asker) -> Result<(), AppError> {
        if asker.principal.user == self.started_by.principal.user || asker.principal.meets(Need::Admin) {
            Ok(())
        } else {
            Err(AppError::with_detail(
                ErrorCode::Forbidden,
                "only the user who started the run, or an administrator, may confirm or cancel it",
            ))
        }
    }
}

/// The hub. See the module docs.
pub struct WorkflowHub {
    journal: Journal,
    lock: Addr<SessionLockActor>,
    parts: RunParts,
    /// To re-check who started each run when access changes.
    identity: Arc<Identity>,
    /// Where access changes are announced.
    broadcast: Addr<BroadcastActor>,
    /// Runs in flight, by run id.
    runs: HashMap<String, Entry>,
    /// What a graceful shutdown waits for; each run holds a guard.
    in_flight: Arc<InFlight>,
    /// Run ids by their task id (the runs' messages carry the task id).
    by_task: HashMap<TaskId, String>,
}

impl WorkflowHub {
    /// A hub with no runs.
    pub fn new(
        journal: Journal,
        lock: Addr<SessionLockActor>,
        parts: RunParts,
        identity: Arc<Identity>,
        broadcast: Addr<BroadcastActor>,
        in_flight: Arc<InFlight>,
    ) -> Self {
        WorkflowHub {
            journal,
            lock,
            parts,
            identity,
            broadcast,
            in_flight,
            runs: HashMap::new(),
            by_task: HashMap::new(),
        }
    }

    fn entry(&mut self, run_id: &str) -> Result<&mut Entry, AppError> {
        self.runs.get_mut(run_id).ok_or_else(|| {
            AppError::with_detail(
                ErrorCode::NotFound,
                format!("no workflow run '{run_id}' is in flight"),
            )
        })
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

    /// On an access change, cancels the runs whose starter's account was
    /// disabled or removed, whose credential was revoked, or who may no
    /// longer run workflows (a lower role). A sign-out or an expired
    /// sign-in session leaves runs alone: they are not tied to one.
    fn handle(&mut self, event: Event, _: &mut Context<Self>) {
        if let Event::ShuttingDown { .. } = event {
            return self.stop_all_runs();
        }
        if !matches!(event, Event::AccessChanged) {
            return;
        }
        for entry in self.runs.values_mut() {
            let why = match self.identity.recheck(&entry.started_by.principal) {
                Ok(now) if now.meets(Need::Operator) => continue,
                Ok(_) => "the user's role no longer allows running workflows",
                Err(Refusal::Revoked) => "the credential that started the run was revoked",
                Err(Refusal::Disabled) => "the user's account was disabled",
                Err(Refusal::NoAccount) => "the user's account no longer exists",
                Err(Refusal::Unknown | Refusal::Expired) => continue,
            };
            if entry.access_cancelled {
                continue;
            }
            entry.access_cancelled = true;
            log::warn!(run_id = entry.run_id.as_str(), user = &*entry.started_by.principal.user, reason = why; "workflow run cancelled: access changed");
            let _ = entry.handle.stop();
            let mut event = NewAuditEvent::new("system", "workflow.cancel");
            event.detail =
                Some(serde_json::json!({"run_id": entry.run_id, "workflow": entry.workflow, "reason": why}));
            self.journal.audit(event);
        }
    }
}

impl WorkflowHub {
    /// The daemon is stopping: every run is cancelled, as by a user (its
    /// current step stopped, its rows written `cancelled`), and audited.
    fn stop_all_runs(&mut self) {
        for entry in self.runs.values() {
            log::warn!(run_id = entry.run_id.as_str(), workflow = entry.workflow.as_str(); "workflow run cancelled: the daemon is shutting down");
            let _ = entry.handle.stop();
            let mut event = NewAuditEvent::new("system", "workflow.cancel");
            event.detail = Some(serde_json::json!({
                "run_id": entry.run_id,
                "workflow": entry.workflow,
                "reason": "the daemon is shutting down",
            }));
            self.journal.audit(event);
        }
    }
}

fn mailbox(e: actix::MailboxError) -> AppError {
    AppError::with_detail(ErrorCode::Internal, format!("actor unavailable: {e}"))
}

impl Handler<StartRun> for WorkflowHub {
    type Result = ResponseActFuture<Self, Result<String, AppError>>;

    fn handle(&mut self, msg: StartRun, _: &mut Context<Self>) -> Self::Result {
        let StartRun {
            prepared,
            asker,
            watcher,
        } = msg;
        let run_id = uuid::Uuid::new_v4().to_string();
        // The run's address exists before the run does, so the lock can be
        // told whom to revoke.
        let run_ctx: Context<WorkflowRunActor> = Context::new();
        let acquire = Acquire {
            // An owner id no connection has: the run owns the lock.
            id: ConnectionId::new(),
            user: asker.principal.user.clone(),
            revoked: run_ctx.address().recipient(),
            workflow_run: Some(WorkflowRunRef {
                run_id: run_id.clone(),
                workflow: prepared.workflow.name.clone(),
            }),
            tasks: None,
        };
        Box::pin(
            self.lock
                .send(acquire)
                .into_actor(self)
                .map(move |res, hub, ctx| {
                    let grant = res.map_err(mailbox)??;
                    let lock = Some((hub.lock.clone(), grant));
                    launch(
                        &ctx.address(),
                        &hub.parts,
                        run_ctx,
                        run_id.clone(),
                        prepared,
                        asker,
                        watcher,
                        lock,
                        None,
                    );
                    Ok(run_id)
                }),
        )
    }
}

impl Handler<Register> for WorkflowHub {
    type Result = ();

    fn handle(&mut self, r: Register, _: &mut Context<Self>) {
        let feeds: Vec<Feed> = r
            .watcher
            .map(|w| Feed::new(w.id, w.recipient, w.rid, true))
            .into_iter()
            .collect();
        for f in &feeds {
            let frame = WorkflowReply::WorkflowStarted {
                run_id: &r.run_id,
                workflow: &r.workflow,
                params: &r.params,
                steps: &r.steps,
            };
            f.push(frame.to_text(&f.rid));
        }
        let journal = self.journal.clone();
        // The first write, so every later one finds its rows.
        journal
            .record(WorkflowWrite::Create(NewWorkflowRun {
                run_id: r.run_id.clone(),
                at: crate::records::now(),
                workflow: r.workflow.clone(),
                actor: r.asker.actor.clone(),
                user: r.asker.principal.user.to_string(),
                remote_addr: r.asker.remote.clone(),
                params: r.params.clone(),
                steps: r.steps.to_vec(),
            }))
            .ignore();
        if let Some(grant) = r.held {
            self.lock.do_send(SetWorkflowRun {
                grant,
                run: Some(WorkflowRunRef {
                    run_id: r.run_id.clone(),
                    workflow: r.workflow.clone(),
                }),
            });
        }
        let mut event = r.asker.audit("workflow.start");
        event.detail = Some(serde_json::json!({
            "run_id": r.run_id,
            "workflow": r.workflow,
            "params": r.params,
            "under_callers_lock": r.held.is_some(),
        }));
        self.journal.audit(event);
        log::info!(
            run_id = r.run_id.as_str(),
            workflow = r.workflow.as_str(),
            user = &*r.asker.principal.user,
            connection_id = r.asker.actor.as_str();
            "workflow run accepted"
        );
        self.by_task.insert(r.task_id, r.run_id.clone());
        self.runs.insert(
            r.run_id.clone(),
            Entry {
                run_id: r.run_id,
                workflow: r.workflow,
                started_by: r.asker,
                steps: r.steps,
                addr: r.addr,
                handle: r.handle,
                feeds,
                journal,
                held: r.held,
                confirmers: Vec::new(),
                access_cancelled: false,
                _in_flight: self.in_flight.enter(),
            },
        );
    }
}

impl Handler<ConfirmRun> for WorkflowHub {
    type Result = ResponseActFuture<Self, Result<usize, AppError>>;

    fn handle(&mut self, msg: ConfirmRun, _: &mut Context<Self>) -> Self::Result {
        let asked = self.entry(&msg.run_id).and_then(|entry| {
            entry.may_be_driven_by(&msg.asker)?;
            if let Some(w) = &msg.watcher {
                entry.confirmers.push((w.id, w.rid.clone()));
            }
            entry.watch(msg.watcher.clone());
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
                        if let (Some(entry), Some(w)) = (hub.runs.get_mut(&msg.run_id), &msg.watcher) {
                            if let Some(i) = entry
                                .confirmers
                                .iter()
                                .position(|(id, rid)| *id == w.id && *rid == w.rid)
                            {
                                entry.confirmers.remove(i);
                            }
                        }
                    }
                    let step = res?;
                    let mut event = msg.asker.audit("workflow.confirm");
                    event.detail = Some(serde_json::json!({"run_id": msg.run_id, "step": step}));
                    hub.journal.audit(event);
                    Ok(step)
                }),
        )
    }
}

impl Handler<CancelRun> for WorkflowHub {
    type Result = Result<(), AppError>;

    fn handle(&mut self, msg: CancelRun, _: &mut Context<Self>) -> Self::Result {
        let entry = self.entry(&msg.run_id)?;
        entry.may_be_driven_by(&msg.asker)?;
        entry.watch(msg.watcher);
        entry.handle.stop().map_err(|_| {
            AppError::with_detail(
                ErrorCode::TaskCancelFailed,
                "the run could not be told to stop; it is gone",
            )
        })?;
        let mut event = msg.asker.audit("workflow.cancel");
        event.detail = Some(serde_json::json!({"run_id": msg.run_id, "workflow": entry.workflow}));
        self.journal.audit(event);
        Ok(())
    }
}

impl Handler<RunMessage> for WorkflowHub {
    /// Output is answered once every watcher took it (backpressure).
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: RunMessage, _: &mut Context<Self>) -> Self::Result {
        let done = || -> ResponseFuture<()> { Box::pin(async {}) };
        let Some(run_id) = self.by_task.get(&msg.task_id).cloned() else {
            return done();
        };
        let Some(entry) = self.runs.get_mut(&run_id) else {
            return done();
        };
        let run_id = run_id.as_str();
        match msg.event {
            TaskEvent::Notice(notice) => match notice {
                RunNotice::StepStarted { step } => {
                    entry.write(WorkflowWrite::StepStarted {
                        run_id: run_id.to_owned(),
                        step,
                        at: crate::records::now(),
                    });
                    step_started(entry, step);
                }
                RunNotice::Output { step, data } => {
                    let server = server_of(&entry.steps, step);
                    return tell_waiting(
                        &mut entry.feeds,
                        &WorkflowReply::SshOutput {
                            run_id,
                            step,
                            server: &server,
                            data: &data,
                        },
                    );
                }
                RunNotice::TransferProgress { step, progress } => {
                    tell(
                        &mut entry.feeds,
                        &WorkflowReply::ScpProgress {
                            run_id,
                            step,
                            transfer_name: &transfer_of(&entry.steps, step),
                            progress: &progress,
                        },
                    );
                }
                RunNotice::BatchResult { step, result } => {
                    return tell_waiting(
                        &mut entry.feeds,
                        &WorkflowReply::BatchCommandResult {
                            run_id,
                            step,
                            server: &result.server,
                            index: result.index,
                            command: &result.command,
                            status: result.status.as_str(),
                            exit_status: result.exit_status,
                            stdout: &result.stdout,
                            stderr: &result.stderr,
                            truncated: result.truncated,
                            attempts: result.attempts,
                            duration_ms: result.duration_ms,
                            error: result.error.as_ref().map(AppError::body),
                        },
                    );
                }
                RunNotice::Paused {
                    step,
                    message,
                    timeout,
                } => {
                    entry.write(WorkflowWrite::Paused {
                        run_id: run_id.to_owned(),
                        step,
                    });
                    tell(
                        &mut entry.feeds,
                        &WorkflowReply::WorkflowPaused {
                            run_id,
                            step,
                            message: &message,
                            timeout_s: timeout.as_secs_f64(),
                        },
                    );
                }
                RunNotice::StepFinished(report) => {
                    let event = step_finished(entry, report);
                    self.journal.audit(event);
                }
            },
            TaskEvent::Finished { outcome, .. } => {
                let error = outcome.error.as_ref().map(AppError::body);
                entry.write(WorkflowWrite::Finished {
                    run_id: run_id.to_owned(),
                    state: RunState::from(outcome.status),
                    error: error.clone(),
                    at: crate::records::now(),
                });
                tell(
                    &mut entry.feeds,
                    &WorkflowReply::WorkflowComplete {
                        run_id,
                        workflow: &entry.workflow,
                        status: outcome.status.as_str(),
                        stopped_at: outcome.stopped_at,
                        error: error.clone(),
                    },
                );
                if let Some(grant) = entry.held {
                    self.lock.do_send(SetWorkflowRun { grant, run: None });
                }
                let mut event = NewAuditEvent::new(format!("workflow:{run_id}"), "workflow.end").by(
                    Some(&entry.started_by.principal.user),
                    entry.started_by.remote.clone(),
                );
                event.detail = Some(serde_json::json!({
                    "run_id": run_id,
                    "workflow": entry.workflow,
                    "status": outcome.status.as_str(),
                    "stopped_at": outcome.stopped_at,
                    "error": error.map(|e| e.code),
                }));
                self.journal.audit(event);
                let run_ref = entry.run_ref();
                log::info!(run_id = run_ref.run_id.as_str(), status = outcome.status.as_str(); "workflow run ended");
                self.by_task.remove(&msg.task_id);
                self.runs.remove(&run_ref.run_id);
            }
        }
        done()
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

/// `workflow_step_started`, then the step's own start frame.
fn step_started(entry: &mut Entry, step: usize) {
    let Some(planned) = entry.steps.get(step) else {
        return;
    };
    let run_id = entry.run_id.as_str();
    tell(
        &mut entry.feeds,
        &WorkflowReply::WorkflowStepStarted {
            run_id,
            step,
            name: &planned.name,
            kind: planned.action.kind(),
        },
    );
    match &planned.action {
        Action::Command { server, .. } => tell(
            &mut entry.feeds,
            &WorkflowReply::SshCommandStarted { run_id, step, server },
        ),
        Action::Transfer {
            transfer,
            source_server,
            destination_server,
            ..
        } => tell(
            &mut entry.feeds,
            &WorkflowReply::ScpTransferStarted {
                run_id,
                step,
                transfer_name: transfer,
                source_server,
                destination_server,
            },
        ),
        Action::Batch { .. } | Action::Pause { .. } => {}
    }
}

/// The step's own end frame, `workflow_step_finished`, its row; returns its
/// audit row.
fn step_finished(entry: &mut Entry, report: StepReport) -> NewAuditEvent {
    let run_id = entry.run_id.as_str();
    let step = report.step;
    let planned = entry.steps.get(step);
    match (&report.outcome, planned.map(|p| &p.action)) {
        (StepOutcome::Command(done), Some(Action::Command { server, .. })) => tell(
            &mut entry.feeds,
            &WorkflowReply::SshCommandComplete {
                run_id,
                step,
                server,
                reason: done.reason.as_str(),
                exit_status: done.exit_status,
            },
        ),
        (
            StepOutcome::Transfer(TransferOutcome::Complete(summary)),
            Some(Action::Transfer { transfer, .. }),
        ) => tell(
            &mut entry.feeds,
            &WorkflowReply::ScpComplete {
                run_id,
                step,
                transfer_name: transfer,
                files: &summary.files,
                bytes: summary.bytes,
                duration_ms: summary.duration.as_millis() as u64,
            },
        ),
        _ => {}
    }
    if let StepOutcome::Confirmed { by } = &report.outcome {
        // Before the step's end, in the run's own order: the confirming
        // connection's answer (its request's id), everyone else's notice.
        let confirmer = (!entry.confirmers.is_empty()).then(|| entry.confirmers.remove(0));
        let frame = WorkflowReply::WorkflowConfirmed { run_id, step, by };
        entry.feeds.retain(|f| {
            let rid = match &confirmer {
                Some((id, rid)) if *id == f.id => rid,
                _ => &f.rid,
            };
            f.push(frame.to_text(rid))
        });
    }
    let error = report.error.as_ref().map(AppError::body);
    let duration_ms = report.duration.as_millis() as u64;
    tell(
        &mut entry.feeds,
        &WorkflowReply::WorkflowStepFinished {
            run_id,
            step,
            status: report.status.as_str(),
            exit_status: report.exit_status,
            duration_ms,
            error: error.clone(),
        },
    );
    let confirmed_by = match &report.outcome {
        StepOutcome::Confirmed { by } => Some(by.to_string()),
        _ => None,
    };
    entry.write(WorkflowWrite::StepFinished {
        run_id: run_id.to_owned(),
        step,
        state: StepState::from(report.status),
        duration_ms,
        exit_status: report.exit_status,
        error: error.clone(),
        output_tail: report.output_tail,
        confirmed_by: confirmed_by.clone(),
    });
    let starter = &entry.started_by;
    let mut event = NewAuditEvent::new(format!("workflow:{run_id}"), "workflow.step")
        .by(Some(&starter.principal.user), starter.remote.clone());
    let mut detail = serde_json::json!({
        "run_id": run_id,
        "workflow": entry.workflow,
        "step": step,
        "status": report.status.as_str(),
        "duration_ms": duration_ms,
        "error": error.map(|e| e.code),
    });
    if let Some(p) = planned {
        detail["name"] = p.name.clone().into();
        detail["kind"] = p.action.kind().into();
        match &p.action {
            Action::Command { server, command, .. } => {
                event.server = Some(server.clone());
                event.command = Some(command.clone());
            }
            Action::Transfer {
                transfer,
                source_server,
                ..
            } => {
                event.server = Some(source_server.clone());
                detail["transfer"] = transfer.clone().into();
            }
            Action::Batch {
                servers, commands, ..
            } => {
                event.command = Some(commands.join("\n"));
                detail["servers"] = servers.clone().into();
            }
            Action::Pause { .. } => {
                detail["confirmed_by"] = confirmed_by.into();
            }
        }
    }
    event.exit_status = report.exit_status.map(i64::from);
    event.detail = Some(detail);
    event
}
