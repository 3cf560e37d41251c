//! The STUB domain (`/ws/v1/stub`): the session lock, interactive SSH
//! commands and named transfers (SPEC sections 4-7).
//!
//! - [`wire`]: the frames.
//! - [`session`]: `start_session`, `end_session` and a revoked lock.
//! - [`access`]: what an access change does to the task and the lock.
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

mod access;
mod command;
mod session;
mod state;
mod tasks;
mod transfer;
pub mod wire;
mod workflow;
mod workflow_frames;

use pinkpage_actors::task::Done;

pub use self::state::Stub;
use self::tasks::{audit_cut_off, cancel, stop_task};
pub use self::wire::StubReply;
use self::wire::StubRequest;
use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::RequestId;

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
        "scp_transfer_plan",
        "workflow_plan",
        "workflow_run",
        "workflow_confirm",
        "workflow_watch",
        "command_review",
    ];
    const WELCOME: &'static str = "Connected to Stub SSH WebSocket";
    const NAME: &'static str = "stub";
    const PATH: &'static str = "/ws/v1/stub";

    fn handle(conn: &mut WsConnection<Self>, req: StubRequest, rid: RequestId, ctx: &mut WsCtx<Self>) {
        match req {
            StubRequest::StartSession => session::start_session(conn, rid, ctx),
            StubRequest::EndSession { take_over } => session::end_session(conn, take_over, rid, ctx),
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
            StubRequest::ScpTransferPlan { transfer_name } => {
                transfer::scp_transfer_plan(conn, transfer_name, rid, ctx)
            }
            StubRequest::CommandReview {
                held_id,
                decision,
                comment,
            } => match conn
                .state
                .reviews
                .decide(&held_id, &conn.principal, decision, &comment)
            {
                Ok(_) => conn.send(
                    ctx,
                    &StubReply::CommandReviewed {
                        held_id: &held_id,
                        decision,
                    },
                    &rid,
                ),
                Err(e) => conn.send_error(ctx, &e, &rid),
            },
        }
    }

    fn access_changed(conn: &mut WsConnection<Self>, ctx: &mut WsCtx<Self>) {
        access::access_changed(conn, ctx);
    }

    fn stopping(conn: &mut WsConnection<Self>, ctx: &mut WsCtx<Self>) -> Vec<Done> {
        audit_cut_off(conn);
        // The connection tells the lock it is gone only once this resolves,
        // so no command outlives the lock.
        stop_task(conn, ctx).ok().flatten().into_iter().collect()
    }
}
