//! Workflows on `/ws/v1/stub`: `workflow_plan`, `workflow_run`,
//! `workflow_confirm`, `workflow_watch` and `cancel {run_id}`. The runs
//! themselves live in `crate::workflows`; this connection is one of their
//! watchers, and renders what it is told as frames (`super::workflow_frames`).
//!
//! `workflow_run`, checked in order: the workflow exists (23002), the
//! values fit (10001), the servers are in scope (10003); then
//! - if this connection holds the session lock, the run works under it, as
//!   this connection's task: 50010 while another task runs, 50008 while the
//!   session is ending. It starts in the same step as those checks, so no
//!   `end_session` can slip between them; ending the session, a revoked
//!   lock or a disconnect cancel it like a command.
//! - otherwise the run takes the lock itself (50004 when someone else holds
//!   it) and is independent of this connection.

use std::collections::BTreeMap;

use actix::{ActorFutureExt, AsyncContext, Context, ContextFutureSpawner, Handler, WrapFuture};
use pinkpage_actors::workflow::run::WorkflowRunActor;
use pinkpage_actors::{AppError, ErrorCode};
use serde_json::Value;

use pinkpage_actors::workflow::run::RunLock;
use pinkpage_actors::RunId;

use super::state::{flatten, Stub, StubTask, TaskKind};
use super::workflow_frames::WorkflowReply;
use crate::workflows::events::{Watched, Watcher};
use crate::workflows::hub::{launch, CancelRun, ConfirmRun, RunParts, StartRun, WatchRun};
use crate::workflows::registry::Asker;
use crate::workflows::{prepare, WorkflowHub};
use crate::ws::connection::{WsConnection, WsCtx};
use crate::ws::protocol::RequestId;

type Params = BTreeMap<String, Value>;

fn asker(conn: &WsConnection<Stub>) -> Asker {
    Asker {
        principal: conn.principal.clone(),
        actor: conn.id.to_string(),
        remote: conn.remote.map(|ip| ip.to_string()),
    }
}

fn watcher(conn: &WsConnection<Stub>, rid: &RequestId, ctx: &mut WsCtx<Stub>) -> Watcher {
    Watcher {
        id: conn.id,
        recipient: ctx.address().recipient(),
        tag: rid.clone(),
    }
}

pub(super) fn plan(
    conn: &mut WsConnection<Stub>,
    workflow: String,
    params: Params,
    rid: RequestId,
    ctx: &mut WsCtx<Stub>,
) {
    match prepare(
        &conn.state.settings(),
        &conn.principal,
        &workflow,
        &params,
        &conn.rules(),
    ) {
        Ok(p) => conn.send(
            ctx,
            &WorkflowReply::WorkflowPlan {
                workflow: &p.workflow.name,
                params: &p.bound.0,
                steps: &p.steps,
            },
            &rid,
        ),
        Err(e) => conn.send_error(ctx, &e, &rid),
    }
}

pub(super) fn run(
    conn: &mut WsConnection<Stub>,
    workflow: String,
    params: Params,
    rid: RequestId,
    ctx: &mut WsCtx<Stub>,
) {
    if let Err(e) = start(conn, &workflow, &params, &rid, ctx) {
        conn.send_error(ctx, &e, &rid);
    }
}

fn start(
    conn: &mut WsConnection<Stub>,
    workflow: &str,
    params: &Params,
    rid: &RequestId,
    ctx: &mut WsCtx<Stub>,
) -> Result<(), AppError> {
    let prepared = prepare(
        &conn.state.settings(),
        &conn.principal,
        workflow,
        params,
        &conn.rules(),
    )?;
    let Some(grant) = conn.domain.grant else {
        // The run takes the lock itself.
        let msg = StartRun {
            prepared,
            asker: asker(conn),
            watcher: Some(watcher(conn, rid, ctx)),
        };
        ask_hub(conn, msg, rid.clone(), ctx);
        return Ok(());
    };
    // Under this connection's lock: its task, started in this step.
    if conn.domain.task.is_busy() {
        return Err(AppError::with_detail(
            ErrorCode::TaskAlreadyRunning,
            "cancel it or wait for it to finish",
        ));
    }
    conn.domain.require_lock()?;
    let state = &conn.state;
    let parts = RunParts {
        ssh: state.ssh.clone(),
        temp_files: state.temp_files.clone(),
        gate: state.transfers.clone(),
        throttle: state.settings().throttle,
        batch_output_cap: state.settings().batch_output_cap,
        ptys: state.ptys.clone(),
        live: state.live.clone(),
        reviews: state.reviews.clone(),
        journal: state.journal.clone(),
    };
    let handle = launch(
        &state.workflows,
        &parts,
        Context::<WorkflowRunActor>::new(),
        RunId::new(),
        prepared,
        asker(conn),
        Some(watcher(conn, rid, ctx)),
        RunLock::Callers(grant),
    );
    let task_id = handle.task_id;
    let done = handle.done();
    let task = StubTask {
        rid: rid.clone(),
        kind: TaskKind::Workflow,
    };
    conn.domain.occupy(&conn.watch.tasks, task_id, task, handle)?;
    // The run's end reaches this connection as frames from the hub; the
    // slot is freed by its done signal.
    async move { done.wait().await }
        .into_actor(conn)
        .map(move |(), conn, _| {
            conn.domain.task.finished(task_id, None);
        })
        .spawn(ctx);
    Ok(())
}

/// Sends `msg` to the hub; only a refusal is answered here: what follows
/// a success comes as the run's frames, in the run's order (for a confirm,
/// `workflow_confirmed` before the pause step's end).
fn ask_hub<M, T>(conn: &mut WsConnection<Stub>, msg: M, rid: RequestId, ctx: &mut WsCtx<Stub>)
where
    M: actix::Message<Result = Result<T, AppError>> + Send + 'static,
    T: Send + 'static,
    WorkflowHub: Handler<M>,
{
    conn.state
        .workflows
        .send(msg)
        .into_actor(conn)
        .map(move |res, conn, ctx| {
            if let Err(e) = flatten(res) {
                conn.send_error(ctx, &e, &rid);
            }
        })
        .spawn(ctx);
}

pub(super) fn confirm(conn: &mut WsConnection<Stub>, run_id: String, rid: RequestId, ctx: &mut WsCtx<Stub>) {
    let msg = ConfirmRun {
        run_id,
        asker: asker(conn),
        watcher: Some(watcher(conn, &rid, ctx)),
    };
    ask_hub(conn, msg, rid, ctx);
}

/// `workflow_watch {run_id}`: `workflow_state` first, then the run's
/// frames, to a connection that did not start it (a reconnecting browser).
pub(super) fn watch(conn: &mut WsConnection<Stub>, run_id: String, rid: RequestId, ctx: &mut WsCtx<Stub>) {
    let msg = WatchRun {
        run_id,
        asker: asker(conn),
        watcher: watcher(conn, &rid, ctx),
    };
    ask_hub(conn, msg, rid, ctx);
}

/// `cancel {run_id}`: the run's `workflow_complete` follows (this
/// connection watches the run from now on).
pub(super) fn cancel_run(
    conn: &mut WsConnection<Stub>,
    run_id: String,
    rid: RequestId,
    ctx: &mut WsCtx<Stub>,
) {
    let msg = CancelRun {
        run_id,
        asker: asker(conn),
        watcher: Some(watcher(conn, &rid, ctx)),
    };
    ask_hub(conn, msg, rid, ctx);
}

impl Handler<Watched> for WsConnection<Stub> {
    type Result = ();

    /// A run's event, written as its frame answering the watcher's tag.
    fn handle(&mut self, w: Watched, ctx: &mut WsCtx<Stub>) {
        self.send(ctx, &WorkflowReply::of(w.run_id, &w.event), &w.tag);
    }
}
