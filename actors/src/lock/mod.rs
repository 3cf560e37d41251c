//! `SessionLockActor`: one owner at a time for the multi-step workflow
//! (SSH -> server-to-server copy -> SSH; SPEC section 6).
//!
//! The lock is a grant: [`Acquire`] answers with a [`Grant`] that the
//! owning connection keeps. While it holds the grant, the connection checks
//! "may I run a command / a transfer?" synchronously, on its own state, so
//! there is no round trip to this actor and no window between the check and
//! the start. The grant is cleared by [`Release`] (`end_session`), by
//! [`LockRevoked`] (an administrator's [`ForceRelease`]) and by disconnect
//! ([`ConnectionClosed`]).
//!
//! The lock is released only after the owner's task has finished: the
//! connection sends `Release` / `ConnectionClosed` once its task is done (or
//! was given up, 50012, and its bounded cleanup ran), and `ForceRelease`
//! waits for the owner's answer to `LockRevoked`, which comes once the
//! owner's task is done, for at most [`REVOKE_TIMEOUT`] (a stalled owner
//! cannot keep the lock). So a new owner can start the moment the lock is
//! free, and never beside a command of the old one.
//!
//! A connection's owner also hands the lock its [`LiveTasks`]: a force
//! release closes that set and stops its tasks directly, and releases the
//! lock once they are done, even when the owner's connection is stalled
//! (a client that stopped reading is not polled, so its `LockRevoked`
//! would sit unhandled until the timeout). Closed, the set refuses new
//! tasks, so none can start between the stop and the release.
//!
//! Every change is published to the broadcast registry as a
//! `session_status` event.
//!
//! Why races cannot happen: the actor handles one message at a time and the
//! owner lives only here, so of any number of concurrent `Acquire`s exactly
//! one finds the lock free. Every grant has its own epoch: a release or a
//! revocation that completes late names the epoch it was for and leaves a
//! newer owner alone. `ConnectionClosed` is idempotent (a connection may
//! stop twice, or never have owned the lock).

use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFuture, ActorFutureExt, Addr, Context, Handler, Message, MessageResult, Recipient,
    ResponseActFuture,
};

use crate::broadcast::{BroadcastActor, Event, Publish, SessionStatus, WorkflowRunRef};
use crate::error::{AppError, ErrorCode};
use crate::ids::{ConnectionId, OwnerId};
use crate::task::live::LiveTasks;

/// Longest a [`ForceRelease`] waits for the owner to stop its task: the
/// stop timeout (5 s, 50012) plus the bounded cleanup after it (5 s).
pub const REVOKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Proof of ownership, kept by the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The owner.
    pub owner: OwnerId,
    /// Which taking of the lock this is (never reused).
    pub epoch: u64,
}

/// Who asks for the lock.
pub enum Holder {
    /// A connection (`start_session`), handing over its tasks so a force
    /// release can stop them directly (see the module docs).
    Connection {
        /// The connection.
        id: ConnectionId,
        /// Its tasks.
        tasks: LiveTasks,
    },
    /// A workflow run that takes the lock itself; it answers
    /// `LockRevoked` itself, once its current step ended.
    Run(WorkflowRunRef),
}

impl Holder {
    fn owner(&self) -> OwnerId {
        match self {
            Holder::Connection { id, .. } => OwnerId::Connection(*id),
            Holder::Run(run) => OwnerId::Run(run.run_id),
        }
    }
}

/// Take the lock for `holder`.
#[derive(Message)]
#[rtype(result = "Result<Grant, AppError>")]
pub struct Acquire {
    /// Who asks.
    pub holder: Holder,
    /// The user behind it, shown in `session_status`.
    pub user: Arc<str>,
    /// Told if the lock is taken away by someone else.
    pub revoked: Recipient<LockRevoked>,
}

/// Names (or clears) the workflow run working under `grant`: a connection
/// that held the lock and started a run keeps the lock, and
/// `session_status` names the run while it lasts.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetWorkflowRun {
    /// The grant the run works under; ignored if no longer current.
    pub grant: Grant,
    /// The run, or `None` once it ended.
    pub run: Option<WorkflowRunRef>,
}

/// Give the lock back. Sent by the owner once its task is done.
#[derive(Message)]
#[rtype(result = "Result<SessionStatus, AppError>")]
pub struct Release {
    /// The grant being returned.
    pub grant: Grant,
}

/// A connection stopped and its task is done: release the lock if it held
/// it. Idempotent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConnectionClosed {
    /// The connection that stopped.
    pub id: ConnectionId,
}

/// An administrator takes the lock away from whoever holds it. Answers
/// once the owner's task is done (at most [`REVOKE_TIMEOUT`]).
#[derive(Message)]
#[rtype(result = "Result<SessionStatus, AppError>")]
pub struct ForceRelease;

/// A user takes its own lock back from another of its connections (a
/// second browser tab): the holder is revoked as by [`ForceRelease`], so
/// its task stops and the lock is free once it did. Only a lock that a
/// connection of `user` holds is taken: another user's (or a workflow
/// run's) is refused with 50006; a free lock is 50005. Answers the status
/// before the take-over (who was asked to stop) once the lock is free.
#[derive(Message)]
#[rtype(result = "Result<SessionStatus, AppError>")]
pub struct TakeOver {
    /// Who takes the lock back.
    pub user: Arc<str>,
    /// The connection asking, which may not be the holder (that one ends
    /// its session with `Release`).
    pub by: ConnectionId,
}

/// The current status.
#[derive(Message)]
#[rtype(result = "SessionStatus")]
pub struct GetStatus;

/// Sent to the owner when an administrator takes its lock: drop the grant,
/// stop your task, and answer once it is done.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LockRevoked {
    /// The grant taken away.
    pub grant: Grant,
}

/// The holder, as the lock keeps it.
struct Owner {
    grant: Grant,
    user: Arc<str>,
    /// When the lock was taken (RFC 3339, UTC).
    since: String,
    /// The same moment on the monotonic clock, for the hold time.
    taken: std::time::Instant,
    revoked: Recipient<LockRevoked>,
    /// The workflow run working under the lock, if any.
    workflow_run: Option<WorkflowRunRef>,
    /// The owner's tasks, when it handed them over.
    tasks: Option<LiveTasks>,
}

impl Owner {
    /// Who holds the lock, for a refusal's detail: a person and what
    /// they do, never a connection id (which tells a reader nothing).
    fn held_by(&self) -> String {
        match &self.workflow_run {
            Some(run) => format!(
                "held by {} (workflow {}, run {}), since {}",
                self.user, run.workflow, run.run_id, self.since
            ),
            None => format!("held by {}, since {}", self.user, self.since),
        }
    }
}

/// The lock. See the module docs.
pub struct SessionLockActor {
    /// The holder, if any; owned by this actor alone.
    owner: Option<Owner>,
    /// The epoch of the last grant handed out.
    epoch: u64,
    /// Where status changes are published.
    broadcast: Addr<BroadcastActor>,
}

impl SessionLockActor {
    /// A free lock publishing to `broadcast`.
    pub fn new(broadcast: Addr<BroadcastActor>) -> Self {
        SessionLockActor {
            owner: None,
            epoch: 0,
            broadcast,
        }
    }

    fn status(&self) -> SessionStatus {
        SessionStatus {
            active: self.owner.is_some(),
            owner: self.owner.as_ref().map(|o| o.grant.owner),
            owner_user: self.owner.as_ref().map(|o| o.user.to_string()),
            since: self.owner.as_ref().map(|o| o.since.clone()),
            workflow_run: self.owner.as_ref().and_then(|o| o.workflow_run.clone()),
        }
    }

    fn publish(&self) -> SessionStatus {
        let status = self.status();
        self.broadcast
            .do_send(Publish(Event::SessionStatus(status.clone().into())));
        status
    }

    /// Frees the lock if `grant` is still the current one.
    fn clear(&mut self, grant: Grant, why: &str) -> bool {
        if self.owner.as_ref().is_some_and(|o| o.grant == grant) {
            if let Some(owner) = self.owner.take() {
                crate::metrics::lock_released(owner.taken.elapsed());
            }
            log::info!(owner = grant.owner.to_string().as_str(), reason = why; "session lock released");
            self.publish();
            true
        } else {
            false
        }
    }
}

impl Actor for SessionLockActor {
    type Context = Context<Self>;
}

impl Handler<Acquire> for SessionLockActor {
    type Result = Result<Grant, AppError>;

    fn handle(&mut self, msg: Acquire, _: &mut Context<Self>) -> Self::Result {
        match &self.owner {
            Some(o) if o.grant.owner == msg.holder.owner() => {
                Err(AppError::new(ErrorCode::AlreadySessionOwner))
            }
            Some(o) => Err(AppError::with_detail(
                ErrorCode::SessionAlreadyActive,
                o.held_by(),
            )),
            None => {
                self.epoch += 1;
                let owner = msg.holder.owner();
                let grant = Grant {
                    owner,
                    epoch: self.epoch,
                };
                let (workflow_run, tasks) = match msg.holder {
                    Holder::Connection { tasks, .. } => {
                        // A force release of an earlier grant closed this
                        // owner's task set; it is reopened here, in the
                        // same step as the grant, so a later force release
                        // (closing it again) can never be undone by a late
                        // reopen on the owner's side.
                        tasks.reopen();
                        (None, Some(tasks))
                    }
                    Holder::Run(run) => (Some(run), None),
                };
                self.owner = Some(Owner {
                    grant,
                    user: msg.user.clone(),
                    since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    taken: std::time::Instant::now(),
                    revoked: msg.revoked,
                    workflow_run,
                    tasks,
                });
                log::info!(owner = owner.to_string().as_str(), user = &*msg.user; "session lock acquired");
                self.publish();
                Ok(grant)
            }
        }
    }
}

impl Handler<Release> for SessionLockActor {
    type Result = Result<SessionStatus, AppError>;

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) -> Self::Result {
        if self.clear(msg.grant, "released by its owner") {
            return Ok(self.status());
        }
        match &self.owner {
            None => Err(AppError::new(ErrorCode::NoActiveSession)),
            Some(o) => Err(AppError::with_detail(ErrorCode::NotSessionOwner, o.held_by())),
        }
    }
}

impl Handler<ConnectionClosed> for SessionLockActor {
    type Result = ();

    fn handle(&mut self, msg: ConnectionClosed, _: &mut Context<Self>) {
        if let Some(grant) = self
            .owner
            .as_ref()
            .map(|o| o.grant)
            .filter(|g| g.owner == OwnerId::Connection(msg.id))
        {
            self.clear(grant, "owner disconnected");
        }
    }
}

impl Handler<ForceRelease> for SessionLockActor {
    type Result = ResponseActFuture<Self, Result<SessionStatus, AppError>>;

    fn handle(&mut self, _: ForceRelease, _: &mut Context<Self>) -> Self::Result {
        let Some(owner) = &self.owner else {
            return Box::pin(actix::fut::ready(Err(AppError::new(ErrorCode::NoActiveSession))));
        };
        log::warn!(owner = owner.grant.owner.to_string().as_str(); "session lock being taken by an administrator");
        Box::pin(revoke(owner, "taken by an administrator").map(|_, act, _| Ok(act.status())))
    }
}

impl Handler<TakeOver> for SessionLockActor {
    type Result = ResponseActFuture<Self, Result<SessionStatus, AppError>>;

    fn handle(&mut self, msg: TakeOver, _: &mut Context<Self>) -> Self::Result {
        let refused = |e| Box::pin(actix::fut::ready(Err(e))) as Self::Result;
        let owner = match &self.owner {
            None => return refused(AppError::new(ErrorCode::NoActiveSession)),
            Some(o) if o.grant.owner == OwnerId::Connection(msg.by) => {
                return refused(AppError::with_detail(
                    ErrorCode::AlreadySessionOwner,
                    "this connection holds the lock",
                ))
            }
            Some(o)
                if o.user != msg.user
                    || o.workflow_run.is_some()
                    || !matches!(o.grant.owner, OwnerId::Connection(_)) =>
            {
                return refused(AppError::with_detail(ErrorCode::NotSessionOwner, o.held_by()))
            }
            Some(o) => o,
        };
        let before = self.status();
        log::info!(user = &*msg.user; "session lock taken over from another connection of its user");
        Box::pin(
            revoke(owner, "taken over by its user from another connection").map(move |_, _, _| Ok(before)),
        )
    }
}

/// Takes the lock from `owner`, its current owner: tells it with
/// [`LockRevoked`], stops the tasks it handed over, and frees the lock
/// once it answered or they ended, or after [`REVOKE_TIMEOUT`] (a newer
/// owner by then is left alone: `clear` checks the grant).
fn revoke(owner: &Owner, why: &'static str) -> impl ActorFuture<SessionLockActor, Output = ()> + 'static {
    let grant = owner.grant;
    // The owner answers once its task is done; a stalled or vanished
    // owner is not waited for past the timeout. When it handed over its
    // tasks, they are stopped here too, and their end is enough: the
    // set is closed, so nothing new runs under the old grant.
    let asked = owner.revoked.send(LockRevoked { grant });
    let stopped = owner.tasks.as_ref().map(LiveTasks::close_and_stop);
    let waits_for_tasks = stopped.is_some();
    actix::fut::wrap_future::<_, SessionLockActor>(async move {
        // An owner whose mailbox is closed has gone, but its tasks
        // may still be stopping: then only their end (or the
        // timeout) frees the lock. An owner that handed over no
        // tasks (a workflow run) and is gone has nothing left.
        let answered = async move {
            if asked.await.is_err() && waits_for_tasks {
                std::future::pending::<()>().await;
            }
        };
        let done = async move {
            match stopped {
                Some(dones) => {
                    futures_util::future::join_all(dones.into_iter().map(crate::task::Done::wait)).await;
                }
                None => std::future::pending().await,
            }
        };
        let either = futures_util::future::select(Box::pin(answered), Box::pin(done));
        let _ = tokio::time::timeout(REVOKE_TIMEOUT, either).await;
    })
    .map(move |(), act, _| {
        act.clear(grant, why);
    })
}

impl Handler<SetWorkflowRun> for SessionLockActor {
    type Result = ();

    fn handle(&mut self, msg: SetWorkflowRun, _: &mut Context<Self>) {
        match &mut self.owner {
            Some(o) if o.grant == msg.grant && o.workflow_run != msg.run => {
                o.workflow_run = msg.run;
                self.publish();
            }
            _ => {}
        }
    }
}

impl Handler<GetStatus> for SessionLockActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}

#[cfg(test)]
mod tests;
