//! What happens to a STUB connection's task around its edges: stopping it
//! (and giving it up, 50012), waiting for its end, and the audit rows of
//! an end that nobody will hear (its client left, or it was given up).

use actix::ContextFutureSpawner;
use pinkpage_actors::task::slot::Cancel;
use pinkpage_actors::task::{Done, TaskId};
use pinkpage_actors::AppError;

use super::state::{Stub, StubTask, TaskKind};
use crate::records::NewAuditEvent;
use crate::ws::connection::{WsConnection, WsCtx};
use crate::ws::protocol::RequestId;

/// The end row of the command or transfer a leaving client cuts off. The
/// task reports its own end to this connection, which is gone by then, so
/// without this row the trail would show a start with no end (and the next
/// daemon's start-up would take it for work a crash interrupted).
pub(super) fn audit_cut_off(conn: &WsConnection<Stub>) {
    let slot = &conn.domain.task;
    if let Some(task) = slot.handle().and(slot.current()).and_then(|id| slot.info(id)) {
        end_row(conn, task, "disconnected");
    }
}

/// The end row of a command or transfer whose own end will not be heard
/// (its client left, or it was given up with 50012), with `reason`.
fn end_row(conn: &WsConnection<Stub>, task: &StubTask, reason: &str) {
    let (outcome, code) = crate::ws::task::cut_off_outcome(reason);
    let event = match &task.kind {
        TaskKind::Shell { server, command, .. } => {
            let mut event = audit(conn, "ssh.command.end");
            event.server = Some(server.clone());
            event.command = Some(command.clone());
            event.detail = Some(serde_json::json!({"reason": reason}));
            event.ended(outcome, code);
            event
        }
        TaskKind::Transfer { name } => {
            let mut event = transfer_end(conn, name);
            event.detail = Some(serde_json::json!({"transfer": name, "outcome": reason}));
            event.ended(outcome, code);
            event
        }
        // a workflow run records its own end (it outlives the connection)
        TaskKind::Workflow => return,
    };
    conn.state.journal.audit(event);
}

pub(super) fn audit(conn: &WsConnection<Stub>, action: &str) -> NewAuditEvent {
    conn.audit_event(action)
}

/// `cancel`: stops the running command or transfer. Its own end frame
/// (`ssh_command_complete` / `scp_cancelled`) follows.
pub(super) fn cancel(conn: &mut WsConnection<Stub>, rid: RequestId, ctx: &mut WsCtx<Stub>) {
    match stop_task(conn, ctx) {
        Ok(_) => {}
        Err(e) => conn.send_error(ctx, &e, &rid),
    }
}

/// Stops the connection's task and arms its give-up timer; the done signal
/// of the task being stopped, if one runs.
pub(super) fn stop_task(
    conn: &mut WsConnection<Stub>,
    ctx: &mut WsCtx<Stub>,
) -> Result<Option<Done>, AppError> {
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
pub(super) fn after_done(
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

/// The `transfer.end` audit row of transfer `name` (on its source server),
/// for its outcome to be added to.
pub(super) fn transfer_end(conn: &WsConnection<Stub>, name: &str) -> NewAuditEvent {
    let mut event = audit(conn, "transfer.end").on(name);
    event.server = conn
        .state
        .settings()
        .transfers
        .get(name)
        .map(|s| s.source_server.clone());
    event
}
