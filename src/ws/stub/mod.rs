//! The STUB domain (`/ws/v1/stub`): the session lock, interactive SSH
//! commands and named transfers (SPEC sections 4-7).
//!
//! - [`wire`]: the frames.
//! - [`session`]: `start_session`, `end_session` and a revoked lock.
//! - [`command`]: `ssh_command`, `ssh_input`, `resize`, `cancel` and the
//!   shell's messages.
//! - [`transfer`]: `scp_transfer` and the transfer's messages.
//! - [`workflow`]: `workflow_plan`, `workflow_run`, `workflow_confirm`,
//!   `workflow_watch` and `cancel {run_id}` (runs themselves live in
//!   `crate::workflows`); [`workflow_frames`]: how a run's events are
//!   written as frames.
//!
//! Who owns what: the connection actor owns [`Stub`], and with it the
//! session lock's [`Grant`] (while this connection holds the lock) and the
//! one [`TaskSlot`] of the connection (a command or a transfer). The
//! connection handles one message at a time, so a check of the grant and
//! the start of a task are one atomic step: no task starts without the
//! grant, and none after the grant was dropped.
//!
//! Why the lock is never released under a running task: `end_session` and
//! a revoked lock stop the task and release the lock only once the task's
//! `Finished` came (or it was given up, 50012, and its bounded cleanup
//! had its time); a disconnect hands the task's done signal to the
//! connection, which tells the lock only after it resolved.

mod command;
mod session;
mod transfer;
pub mod wire;
mod workflow;
mod workflow_frames;

use actix::ContextFutureSpawner;
use pinkpage_actors::lock::Grant;
use pinkpage_actors::task::live::LiveTasks;
use pinkpage_actors::task::slot::{Cancel, TaskSlot};
use pinkpage_actors::task::{Done, TaskHandle, TaskId};
use pinkpage_actors::terminal::shell::SshShellActor;
use pinkpage_actors::AppError;

pub use self::wire::StubReply;
use self::wire::StubRequest;
use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::RequestId;
use crate::records::NewAuditEvent;

/// What a connection keeps about its running task.
struct StubTask {
    /// The request that started it, answered by its frames.
    rid: RequestId,
    kind: TaskKind,
}

enum TaskKind {
    /// `ssh_command`.
    Shell {
        /// For input and resizes.
        addr: actix::Addr<SshShellActor>,
        server: String,
        command: String,
    },
    /// `scp_transfer`.
    Transfer { name: String },
    /// `workflow_run` by a connection that holds the lock: the run works
    /// under this connection's lock, so it is this connection's task.
    Workflow,
}

/// Per-connection STUB state. Owned by the connection actor alone.
pub struct Stub {
    /// Held while this connection owns the session lock.
    grant: Option<Grant>,
    /// The highest lock epoch revoked from this connection. A grant's
    /// reply can reach the actor after the revocation of that very grant
    /// (actix handles the mailbox before spawned futures): such a grant is
    /// never adopted.
    revoked_through: u64,
    /// At most one task per connection.
    task: TaskSlot<StubTask>,
    /// Last size from `resize` (80x24 until then).
    pty: (u32, u32),
    /// An `end_session` is stopping the task: new tasks are refused (50008)
    /// until the lock is released, so none starts under a lock about to go.
    ending: bool,
}

impl Default for Stub {
    fn default() -> Self {
        Stub {
            grant: None,
            revoked_through: 0,
            task: TaskSlot::default(),
            pty: (80, 24),
            ending: false,
        }
    }
}

impl Domain for Stub {
    type Request = StubRequest;
    const TYPES: &'static [&'static str] = &[
        "start_session",
        "end_session",
        "ssh_command",
        "ssh_input",
        "resize",
        "cancel",
        "scp_transfer",
        "workflow_plan",
        "workflow_run",
        "workflow_confirm",
        "workflow_watch",
    ];
    const WELCOME: &'static str = "Connected to Stub SSH WebSocket";
    const NAME: &'static str = "stub";
    const PATH: &'static str = "/ws/v1/stub";

    fn handle(conn: &mut WsConnection<Self>, req: StubRequest, rid: RequestId, ctx: &mut WsCtx<Self>) {
        match req {
            StubRequest::StartSession => session::start_session(conn, rid, ctx),
            StubRequest::EndSession => session::end_session(conn, rid, ctx),
            StubRequest::SshCommand {
                server,
                command,
                stop_phrase,
                timeout_s,
                throttle_ms,
            } => command::ssh_command(
                conn,
                command::Params {
                    server,
                    command,
                    stop_phrase,
                    timeout_s,
                    throttle_ms,
                },
                rid,
                ctx,
            ),
            StubRequest::SshInput { data } => command::ssh_input(conn, data, rid, ctx),
            StubRequest::Resize { cols, rows } => command::resize(conn, cols, rows, rid, ctx),
            StubRequest::Cancel { run_id: None } => cancel(conn, rid, ctx),
            StubRequest::Cancel { run_id: Some(run_id) } => workflow::cancel_run(conn, run_id, rid, ctx),
            StubRequest::WorkflowPlan { workflow, params } => {
                workflow::plan(conn, workflow, params, rid, ctx)
            }
            StubRequest::WorkflowRun { workflow, params } => workflow::run(conn, workflow, params, rid, ctx),
            StubRequest::WorkflowConfirm { run_id } => workflow::confirm(conn, run_id, rid, ctx),
            StubRequest::WorkflowWatch { run_id } => workflow::watch(conn, run_id, rid, ctx),
            StubRequest::ScpTransfer { transfer_name } => {
                transfer::scp_transfer(conn, transfer_name, rid, ctx)
            }
        }
    }

    fn stopping(conn: &mut WsConnection<Self>, ctx: &mut WsCtx<Self>) -> Vec<Done> {
        audit_cut_off(conn);
        // The connection tells the lock it is gone only once this resolves,
        // so no command outlives the lock.
        stop_task(conn, ctx).ok().flatten().into_iter().collect()
    }
}

/// The end row of the command or transfer a leaving client cuts off. The
/// task reports its own end to this connection, which is gone by then, so
/// without this row the trail would show a start with no end (and the next
/// daemon's start-up would take it for work a crash interrupted).
fn audit_cut_off(conn: &WsConnection<Stub>) {
    let slot = &conn.domain.task;
    if let Some(task) = slot.handle().and(slot.current()).and_then(|id| slot.info(id)) {
        end_row(conn, task, "disconnected");
    }
}

/// The end row of a command or transfer whose own end will not be heard
/// (its client left, or it was given up with 50012), with `reason`.
fn end_row(conn: &WsConnection<Stub>, task: &StubTask, reason: &str) {
    let event = match &task.kind {
        TaskKind::Shell { server, command, .. } => {
            let mut event = audit(conn, "ssh.command.end");
            event.server = Some(server.clone());
            event.command = Some(command.clone());
            event.detail = Some(serde_json::json!({"reason": reason}));
            event
        }
        TaskKind::Transfer { name } => {
            let mut event = transfer::end_event(conn, name);
            event.detail = Some(serde_json::json!({"transfer": name, "outcome": reason}));
            event
        }
        // a workflow run records its own end (it outlives the connection)
        TaskKind::Workflow => return,
    };
    conn.state.journal.audit(event);
}

impl Stub {
    /// 50008 unless this connection holds the lock and is not ending it.
    fn require_lock(&self) -> Result<(), AppError> {
        if self.ending {
            return Err(AppError::with_detail(
                pinkpage_actors::ErrorCode::ResourceLocked,
                "the session is ending",
            ));
        }
        if self.grant.is_none() {
            return Err(AppError::with_detail(
                pinkpage_actors::ErrorCode::ResourceLocked,
                "this connection does not hold the session lock; send start_session first",
            ));
        }
        Ok(())
    }

    /// Puts a task that was just started in the slot (checked free in the
    /// same step) and in the connection's live tasks (which the lock and
    /// the stall watchdog stop directly); should either refuse it, the
    /// task is stopped again. The live set refuses once the lock was taken
    /// away (its `LockRevoked` may not be handled yet) or the connection
    /// is being dropped.
    fn occupy(
        &mut self,
        live: &LiveTasks,
        task_id: TaskId,
        task: StubTask,
        handle: TaskHandle,
    ) -> Result<(), AppError> {
        if live.track(&handle).is_err() {
            let _ = handle.stop();
            return Err(AppError::with_detail(
                pinkpage_actors::ErrorCode::ResourceLocked,
                "the session lock was taken away",
            ));
        }
        self.task.occupy(task_id, task, handle).map_err(|(e, handle)| {
            let _ = handle.stop();
            e
        })
    }
}

fn audit(conn: &WsConnection<Stub>, action: &str) -> NewAuditEvent {
    conn.audit_event(action)
}

/// `cancel`: stops the running command or transfer. Its own end frame
/// (`ssh_command_complete` / `scp_cancelled`) follows.
fn cancel(conn: &mut WsConnection<Stub>, rid: RequestId, ctx: &mut WsCtx<Stub>) {
    match stop_task(conn, ctx) {
        Ok(_) => {}
        Err(e) => conn.send_error(ctx, &e, &rid),
    }
}

/// Stops the connection's task and arms its give-up timer; the done signal
/// of the task being stopped, if one runs.
fn stop_task(conn: &mut WsConnection<Stub>, ctx: &mut WsCtx<Stub>) -> Result<Option<Done>, AppError> {
    let done = conn.domain.task.handle().map(|h| h.done());
    match conn.domain.task.cancel()? {
        Cancel::StopSent(id) => watch_stop(id, ctx),
        Cancel::AlreadyStopping(_) | Cancel::NotStarted(..) => {}
    }
    Ok(done)
}

/// Arms the give-up timer (50012) of task `id`.
fn watch_stop(id: TaskId, ctx: &mut WsCtx<Stub>) {
    crate::ws::task::watch_stop(
        id,
        |d: &mut Stub| &mut d.task,
        |t: &StubTask| &t.rid,
        end_row,
        ctx,
    );
}

/// Waits (at most `limit`) for `done`, then runs `then` on the connection.
fn after_done(
    conn: &mut WsConnection<Stub>,
    done: Option<Done>,
    limit: std::time::Duration,
    then: impl FnOnce(&mut WsConnection<Stub>, bool, &mut WsCtx<Stub>) + 'static,
    ctx: &mut WsCtx<Stub>,
) {
    use actix::{ActorFutureExt, WrapFuture};
    async move {
        match done {
            Some(done) => tokio::time::timeout(limit, done.wait()).await.is_ok(),
            None => true,
        }
    }
    .into_actor(conn)
    .map(move |in_time, conn, ctx| then(conn, in_time, ctx))
    .spawn(ctx);
}

fn mailbox(e: actix::MailboxError) -> AppError {
    AppError::with_detail(
        pinkpage_actors::ErrorCode::Internal,
        format!("actor unavailable: {e}"),
    )
}

fn flatten<T>(res: Result<Result<T, AppError>, actix::MailboxError>) -> Result<T, AppError> {
    res.map_err(mailbox)?
}
