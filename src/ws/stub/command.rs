//! Interactive commands on `/ws/v1/stub`: `ssh_command` runs an
//! `SshShellActor` as the connection's task; `ssh_input` and `resize` go
//! to it; its output and end come back as [`ShellMessage`]s.

use actix::{ActorFutureExt, AsyncContext, ContextFutureSpawner, Handler, WrapFuture};
use pinkpage_actors::pty::book::{PtyKind, PtyTag};
use pinkpage_actors::ssh::PtyRequest;
use pinkpage_actors::task::{Pending, TaskEvent, TaskId};
use pinkpage_actors::terminal::shell::{
    Completion, ShellInput, ShellMessage, ShellRequest, ShellResize, SshShellActor,
};
use pinkpage_actors::{AppError, ErrorCode};

use super::state::{flatten, Stub, StubTask, TaskKind};
use super::tasks::audit;
use super::wire::StubReply;
use crate::request::{ServerRef, ThrottleMs, TimeoutS};
use crate::ws::connection::{WsConnection, WsCtx};
use crate::ws::protocol::RequestId;

/// An `ssh_command` as it came.
pub(super) struct Params {
    pub server: String,
    pub command: String,
    pub stop_phrase: Option<String>,
    pub timeout_s: Option<f64>,
    pub throttle_ms: Option<u64>,
}

/// Checks, in order: no task on this connection (50010); valid timeout and
/// throttle (10001); the session is not ending and this connection holds
/// the lock (50008); the server exists (23000). All synchronous, so the
/// task starts in the same step as the checks.
pub(super) fn ssh_command(conn: &mut WsConnection<Stub>, p: Params, rid: RequestId, ctx: &mut WsCtx<Stub>) {
    if let Err(e) = start(conn, p, &rid, ctx) {
        conn.send_error(ctx, &e, &rid);
    }
}

fn start(
    conn: &mut WsConnection<Stub>,
    p: Params,
    rid: &RequestId,
    ctx: &mut WsCtx<Stub>,
) -> Result<(), AppError> {
    if conn.domain.task.is_busy() {
        return Err(AppError::with_detail(
            ErrorCode::TaskAlreadyRunning,
            "cancel it or wait for ssh_command_complete",
        ));
    }
    let timeout = TimeoutS::parse(p.timeout_s)?;
    let throttle = ThrottleMs::parse(p.throttle_ms, conn.state.settings().throttle)?;
    conn.domain.require_lock()?;
    let server = ServerRef::resolve(&conn.state.settings(), &conn.principal, &p.server)?;
    // the command rules: refused (55000) here, before anything else is
    // made; held (below, once the rest is ready), the task waits in its
    // slot (keeping the lock) until an approver answers. Lines typed into
    // it are judged too (a login shell, or a command that starts one).
    let rules = conn.rules_telling(rid, ctx);
    let verdict = if p.command.is_empty() {
        None
    } else {
        Some(rules.refuse_denied(server.spec(), &p.command)?)
    };
    let typed_lines = rules.typed_lines(server.spec());
    let (cols, rows) = conn.domain.pty;
    let pty = PtyRequest {
        term: "xterm".to_owned(),
        cols,
        rows,
    };
    // recorded before anything runs: a recording that cannot start refuses
    // the command (56001)
    let listed = PtyTag::new(
        &conn.state.ptys,
        PtyKind::Command,
        conn.principal.user.clone(),
        &p.server,
        &p.command,
    )
    .recorded(server.spec(), &pty)?;
    let request = ShellRequest {
        server: server.spec().clone(),
        ssh: conn.state.ssh.clone(),
        command: p.command.clone(),
        stop_phrase: p.stop_phrase,
        timeout: timeout.map(TimeoutS::duration),
        throttle: throttle.duration(),
        pty,
        listed: Some(listed),
        typed_lines,
    };
    let pty_id = request.listed.as_ref().map(|t| t.info.pty_id.to_string());
    // last of the checks: a hold is made only for a command that starts
    let held = match &verdict {
        Some(verdict) => rules.hold_if_reviewed(server.spec(), &p.command, verdict)?,
        None => None,
    };
    // Checked above, start and occupy the slot: one step of this actor.
    let task_id = TaskId::next();
    let (reporter, handle) = Pending::new(task_id, ctx.address().recipient()).split();
    let shell = SshShellActor::new(request, reporter);
    let shell = match held {
        Some(gate) => shell.gated(gate),
        None => shell,
    };
    let addr = actix::Actor::start(shell);
    let task = StubTask {
        rid: rid.clone(),
        kind: TaskKind::Shell {
            addr: addr.clone(),
            server: p.server.clone(),
            command: p.command.clone(),
        },
    };
    conn.domain
        .occupy(&conn.watch.tasks, task_id, task, handle(addr.clone().recipient()))?;
    log::info!(
        connection_id = conn.id.to_string().as_str(),
        task_id = task_id.get(),
        user = &*conn.principal.user,
        server = p.server.as_str();
        "ssh command started"
    );
    let mut event = audit(conn, "ssh.command.start");
    event.server = Some(p.server.clone());
    event.command = Some(p.command);
    event.detail = pty_id.as_ref().map(|id| serde_json::json!({ "pty_id": id }));
    conn.state.journal.audit(event);
    let started = StubReply::SshCommandStarted {
        server: &p.server,
        pty_id: pty_id.as_deref(),
    };
    conn.send(ctx, &started, rid);
    Ok(())
}

fn shell(conn: &WsConnection<Stub>) -> Option<&actix::Addr<SshShellActor>> {
    match conn.domain.task.running() {
        Some((
            _,
            StubTask {
                kind: TaskKind::Shell { addr, .. },
                ..
            },
        )) => Some(addr),
        _ => None,
    }
}

/// Input goes to the running command only while its server is still in
/// this connection's scope: an access change stops the command, and until
/// its stop lands no keystroke of a withdrawn user reaches it.
pub(super) fn ssh_input(conn: &mut WsConnection<Stub>, data: String, rid: RequestId, ctx: &mut WsCtx<Stub>) {
    let Some(addr) = shell(conn) else {
        let e = AppError::with_detail(ErrorCode::NoRunningTask, "no command is running");
        return conn.send_error(ctx, &e, &rid);
    };
    if let Some((
        _,
        StubTask {
            kind: TaskKind::Shell { server, .. },
            ..
        },
    )) = conn.domain.task.running()
    {
        if let Err(e) = conn.judge("ssh_input", &[server]) {
            return conn.send_error(ctx, &e, &rid);
        }
    }
    addr.send(ShellInput(data))
        .into_actor(conn)
        .map(move |res, conn, ctx| {
            if let Err(e) = flatten(res) {
                conn.send_error(ctx, &e, &rid);
            }
        })
        .spawn(ctx);
}

pub(super) fn resize(
    conn: &mut WsConnection<Stub>,
    cols: u32,
    rows: u32,
    rid: RequestId,
    ctx: &mut WsCtx<Stub>,
) {
    if !(1..=1000).contains(&cols) || !(1..=1000).contains(&rows) {
        let e = AppError::with_detail(ErrorCode::Validation, "cols and rows must be between 1 and 1000");
        return conn.send_error(ctx, &e, &rid);
    }
    conn.domain.pty = (cols, rows);
    let Some(addr) = shell(conn) else {
        return conn.send(ctx, &StubReply::Resized { cols, rows }, &rid);
    };
    addr.send(ShellResize { cols, rows })
        .into_actor(conn)
        .map(move |res, conn, ctx| match flatten(res) {
            Ok(()) => conn.send(ctx, &StubReply::Resized { cols, rows }, &rid),
            Err(e) => conn.send_error(ctx, &e, &rid),
        })
        .spawn(ctx);
}

impl Handler<ShellMessage> for WsConnection<Stub> {
    type Result = ();

    fn handle(&mut self, msg: ShellMessage, ctx: &mut WsCtx<Stub>) {
        // Only the current task speaks: output or an end of a task that was
        // given up on (50012) is dropped, never shown as the new one's.
        let Some(StubTask {
            kind: TaskKind::Shell { server, .. },
            ..
        }) = self.domain.task.info(msg.task_id)
        else {
            log::warn!(connection_id = self.id.to_string().as_str(), task_id = msg.task_id.get(); "message of a task no longer current dropped");
            return;
        };
        match msg.event {
            TaskEvent::Notice(text) => {
                let frame = StubReply::SshOutput { server, data: &text };
                self.send(ctx, &frame, &None);
            }
            TaskEvent::Finished {
                outcome,
                cleanup_error,
            } => {
                if let Some((task, cleanup)) = self.domain.task.finished(msg.task_id, cleanup_error) {
                    self.complete(task, outcome, cleanup, ctx);
                }
            }
        }
    }
}

impl WsConnection<Stub> {
    fn complete(
        &mut self,
        task: StubTask,
        done: Completion,
        cleanup: Option<AppError>,
        ctx: &mut WsCtx<Stub>,
    ) {
        let TaskKind::Shell { server, command, .. } = task.kind else {
            return;
        };
        let rid = task.rid;
        if let Some(err) = &done.error {
            self.send_error(ctx, err, &rid);
        }
        self.send(
            ctx,
            &StubReply::SshCommandComplete {
                server: &server,
                reason: done.reason.as_str(),
                exit_status: done.exit_status,
            },
            &rid,
        );
        if let Some(err) = &cleanup {
            self.send_error(ctx, err, &None);
        }
        let mut event = audit(self, "ssh.command.end");
        event.server = Some(server);
        event.command = Some(command);
        event.ended(
            crate::ws::task::outcome_of(done.reason),
            done.error.as_ref().map(|e| e.code.code()),
        );
        event.exit_status = done.exit_status.map(i64::from);
        event.bytes = Some(done.bytes as i64);
        event.detail = Some(serde_json::json!({
            "reason": done.reason.as_str(),
            "error": done.error.map(|e| e.code.code()),
            "cleanup_error": cleanup.map(|e| e.code.code()),
        }));
        self.state.journal.audit(event);
    }
}
