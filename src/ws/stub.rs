//! The STUB domain (`/ws/v1/stub`): the session lock and interactive SSH
//! commands (SPEC sections 4-6).
//!
//! Per connection it owns at most one task (an `SshShellActor`), in
//! [`Stub::task`]. The slot is taken synchronously when a request is
//! accepted, before any awaiting, so two `ssh_command`s racing on one
//! connection cannot both start (the second gets 50010).
//!
//! Only the lock owner may run commands: the lock is checked with the
//! `SessionLockActor` when the command is requested, and the lock actor
//! sends `LockRevoked` if an administrator takes it away later, which stops
//! the task. `end_session` and disconnect stop the task before the lock is
//! released.
//!
//! `scp_transfer` runs a `TransferActor` as the connection's task (see
//! [`transfer`]), so the same slot, stops and 50010 apply to it.

mod transfer;

use std::time::Duration;

use actix::{ActorFutureExt, Addr, AsyncContext, ContextFutureSpawner, Handler, WrapFuture};
use pinkpage_actors::session_lock::{Acquire, CheckOwner, GetStatus, LockRevoked, Release};
use pinkpage_actors::ssh::PtyRequest;
use pinkpage_actors::ssh_shell::{
    Completion, ShellInput, ShellNotice, ShellRequest, ShellResize, SshShellActor, StopShell,
};
use pinkpage_actors::{AppError, ErrorCode};
use serde::{Deserialize, Serialize};

use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::RequestId;
use crate::store::NewAuditEvent;

/// How long a task gets to stop before 50012 is reported.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest `timeout_s` a command may ask for (a day).
const MAX_TIMEOUT_S: f64 = 86_400.0;

/// What a STUB client may send (besides `ping`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StubRequest {
    /// Take the session lock.
    StartSession,
    /// Stop my tasks and release the lock.
    EndSession,
    /// Run a command on a PTY.
    SshCommand {
        /// Server name.
        server: String,
        /// Command line; empty for an interactive login shell.
        command: String,
        /// Finish when this text appears.
        stop_phrase: Option<String>,
        /// Finish after this many seconds.
        timeout_s: Option<f64>,
        /// Flush interval for this command.
        throttle_ms: Option<u64>,
    },
    /// Keystrokes for the running command.
    SshInput {
        /// Text to write (`\u0003` is Ctrl-C).
        data: String,
    },
    /// Terminal size changed.
    Resize {
        /// Columns (1-1000).
        cols: u32,
        /// Rows (1-1000).
        rows: u32,
    },
    /// Stop the running command.
    Cancel,
    /// Run a configured transfer.
    ScpTransfer {
        /// Transfer name.
        transfer_name: String,
    },
}

/// What the STUB domain sends (besides the common frames).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StubReply<'a> {
    /// The lock is yours.
    SessionStarted {
        /// Your connection id.
        owner: String,
    },
    /// The lock is released.
    SessionEnded,
    /// The command was accepted and is connecting.
    SshCommandStarted {
        /// Server name.
        server: &'a str,
    },
    /// Output.
    SshOutput {
        /// Server name.
        server: &'a str,
        /// Decoded text.
        data: &'a str,
    },
    /// The command is over.
    SshCommandComplete {
        /// Server name.
        server: &'a str,
        /// `exit`, `stop_phrase`, `timeout`, `cancelled` or `error`.
        reason: &'a str,
        /// The exit status, when it exited.
        exit_status: Option<u32>,
    },
    /// The terminal size was recorded.
    Resized {
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
}

/// The running task of a connection.
enum Task {
    /// Accepted; waiting for the lock check. The generation lets the check's
    /// reply tell whether this slot is still the one it reserved (a revoked
    /// lock empties it).
    Starting(u64),
    /// A transfer was accepted; waiting for the lock check.
    StartingTransfer(u64),
    /// A transfer is running (`scp_transfer`).
    Transfer(transfer::RunningTransfer),
    /// Running.
    Shell {
        addr: Addr<SshShellActor>,
        server: String,
        command: String,
        /// The request that started it, answered on completion.
        rid: RequestId,
        /// Bumped for every task, so a late 50012 timer can tell whether
        /// the task it watches is still the current one.
        generation: u64,
        /// Set once a stop was requested.
        stopping: bool,
    },
}

/// Per-connection STUB state.
pub struct Stub {
    /// At most one task per connection.
    task: Option<Task>,
    /// Last size from `resize` (80x24 until then).
    pty: (u32, u32),
    /// Counter behind the tasks' generations.
    generation: u64,
    /// An `end_session` is in flight: new tasks are refused (50008) until
    /// the lock is released, so none can start after the release.
    ending: bool,
}

impl Default for Stub {
    fn default() -> Self {
        Stub {
            task: None,
            pty: (80, 24),
            generation: 0,
            ending: false,
        }
    }
}

impl Stub {
    /// A fresh task generation.
    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
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
    ];
    const WELCOME: &'static str = "Connected to Stub SSH WebSocket";

    fn handle(conn: &mut WsConnection<Self>, req: StubRequest, rid: RequestId, ctx: &mut WsCtx<Self>) {
        match req {
            StubRequest::StartSession => start_session(conn, rid, ctx),
            StubRequest::EndSession => end_session(conn, rid, ctx),
            StubRequest::SshCommand {
                server,
                command,
                stop_phrase,
                timeout_s,
                throttle_ms,
            } => ssh_command(
                conn,
                server,
                command,
                stop_phrase,
                timeout_s,
                throttle_ms,
                rid,
                ctx,
            ),
            StubRequest::SshInput { data } => ssh_input(conn, data, rid, ctx),
            StubRequest::Resize { cols, rows } => resize(conn, cols, rows, rid, ctx),
            StubRequest::Cancel => cancel(conn, rid, ctx),
            StubRequest::ScpTransfer { transfer_name } => {
                transfer::scp_transfer(conn, transfer_name, rid, ctx)
            }
        }
    }

    fn stopping(conn: &mut WsConnection<Self>, _: &mut WsCtx<Self>) {
        // The lock is released by the connection after this returns; the
        // shell is stopped first so no command outlives the lock.
        match &conn.domain.task {
            Some(Task::Shell { addr, .. }) => addr.do_send(StopShell),
            Some(Task::Transfer(t)) => t.addr.do_send(transfer::StopTransfer),
            _ => {}
        }
    }
}

fn audit(conn: &WsConnection<Stub>, action: &str) -> NewAuditEvent {
    NewAuditEvent::new(conn.id.to_string(), action)
}

fn start_session(conn: &mut WsConnection<Stub>, rid: RequestId, ctx: &mut WsCtx<Stub>) {
    let msg = Acquire {
        id: conn.id,
        revoked: ctx.address().recipient(),
    };
    conn.state
        .session_lock
        .send(msg)
        .into_actor(conn)
        .map(move |res, conn, ctx| match flatten(res) {
            Ok(_) => {
                conn.state.store.audit(audit(conn, "session.start"));
                conn.send(
                    ctx,
                    &StubReply::SessionStarted {
                        owner: conn.id.to_string(),
                    },
                    &rid,
                );
            }
            Err(e) => conn.send_error(ctx, &e, &rid),
        })
        .spawn(ctx);
}

fn end_session(conn: &mut WsConnection<Stub>, rid: RequestId, ctx: &mut WsCtx<Stub>) {
    // From now until the lock is released, no new task may start on this
    // connection, and one still waiting for its lock check is given up:
    // otherwise it could start after the release.
    conn.domain.ending = true;
    if matches!(
        conn.domain.task,
        Some(Task::Starting(_)) | Some(Task::StartingTransfer(_))
    ) {
        conn.domain.task = None;
    }
    let lock = conn.state.session_lock.clone();
    let id = conn.id;
    let shell = match &conn.domain.task {
        Some(Task::Shell { addr, .. }) => Some(addr.clone()),
        _ => None,
    };
    let running_transfer = match &conn.domain.task {
        Some(Task::Transfer(t)) => Some(t.addr.clone()),
        _ => None,
    };
    async move {
        // Only the owner may end the session: ask before stopping anything.
        let status = lock.send(GetStatus).await.map_err(mailbox)?;
        match status.owner {
            None => return Err(AppError::new(ErrorCode::NoActiveSession)),
            Some(owner) if owner != id => {
                return Err(AppError::with_detail(
                    ErrorCode::NotSessionOwner,
                    format!("held by connection {owner}"),
                ))
            }
            Some(_) => {}
        }
        // Stop the task first: StopShell is answered once the shell is
        // stopping, so no command outlives the lock. Release checks the
        // owner again, so a change in between is still refused correctly.
        if let Some(addr) = shell {
            // wait for the channel and session to close (bounded by the
            // shell's own cleanup timeout), not just for the stop to begin
            if let Ok(closed) = addr.send(StopShell).await {
                let _ = closed.await;
            }
        }
        if let Some(addr) = running_transfer {
            let _ = addr.send(transfer::StopTransfer).await;
        }
        lock.send(Release { id }).await.map_err(mailbox)?
    }
    .into_actor(conn)
    .map(move |res, conn, ctx| {
        conn.domain.ending = false;
        match res {
            Ok(_) => {
                conn.state.store.audit(audit(conn, "session.end"));
                conn.send(ctx, &StubReply::SessionEnded, &rid);
            }
            Err(e) => conn.send_error(ctx, &e, &rid),
        }
    })
    .spawn(ctx);
}

#[allow(clippy::too_many_arguments)]
fn ssh_command(
    conn: &mut WsConnection<Stub>,
    server: String,
    command: String,
    stop_phrase: Option<String>,
    timeout_s: Option<f64>,
    throttle_ms: Option<u64>,
    rid: RequestId,
    ctx: &mut WsCtx<Stub>,
) {
    if conn.domain.task.is_some() {
        return conn.send_error(
            ctx,
            &AppError::with_detail(
                ErrorCode::TaskAlreadyRunning,
                "cancel it or wait for ssh_command_complete",
            ),
            &rid,
        );
    }
    let timeout = match timeout_s {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT_S => Some(Duration::from_secs_f64(s)),
        Some(_) => {
            return conn.send_error(
                ctx,
                &AppError::with_detail(
                    ErrorCode::Validation,
                    format!("timeout_s must be in (0, {MAX_TIMEOUT_S}]"),
                ),
                &rid,
            )
        }
    };
    let throttle = match throttle_ms {
        None => conn.state.settings.throttle,
        Some(ms) if ms <= 60_000 => Duration::from_millis(ms),
        Some(_) => {
            return conn.send_error(
                ctx,
                &AppError::with_detail(ErrorCode::Validation, "throttle_ms must be at most 60000"),
                &rid,
            )
        }
    };
    if conn.domain.ending {
        let e = AppError::with_detail(ErrorCode::ResourceLocked, "the session is ending");
        return conn.send_error(ctx, &e, &rid);
    }
    // Reserve the slot now, before awaiting the lock check.
    let generation = conn.domain.next_generation();
    conn.domain.task = Some(Task::Starting(generation));
    conn.state
        .session_lock
        .send(CheckOwner { id: conn.id })
        .into_actor(conn)
        .map(move |res, conn, ctx| {
            if !matches!(conn.domain.task, Some(Task::Starting(g)) if g == generation) {
                // The lock was taken away while we asked: the slot is gone.
                let e = AppError::with_detail(
                    ErrorCode::ResourceLocked,
                    "the session lock was released while the command was starting",
                );
                return conn.send_error(ctx, &e, &rid);
            }
            if let Err(e) = flatten(res) {
                conn.domain.task = None;
                return conn.send_error(ctx, &e, &rid);
            }
            let Some(spec) = conn.state.settings.server(&server).cloned() else {
                conn.domain.task = None;
                let e =
                    AppError::with_detail(ErrorCode::UnknownServer, format!("no server named '{server}'"));
                return conn.send_error(ctx, &e, &rid);
            };
            let (cols, rows) = conn.domain.pty;
            let request = ShellRequest {
                server: spec,
                ssh: conn.state.ssh.clone(),
                command: command.clone(),
                stop_phrase,
                timeout,
                throttle,
                pty: PtyRequest {
                    term: "xterm".to_owned(),
                    cols,
                    rows,
                },
                task_id: generation,
            };
            let addr = actix::Actor::start(SshShellActor::new(request, ctx.address().recipient()));
            conn.domain.task = Some(Task::Shell {
                addr,
                server: server.clone(),
                command: command.clone(),
                rid: rid.clone(),
                generation,
                stopping: false,
            });
            let mut event = audit(conn, "ssh.command.start");
            event.server = Some(server.clone());
            event.command = Some(command);
            conn.state.store.audit(event);
            conn.send(ctx, &StubReply::SshCommandStarted { server: &server }, &rid);
        })
        .spawn(ctx);
}

fn ssh_input(conn: &mut WsConnection<Stub>, data: String, rid: RequestId, ctx: &mut WsCtx<Stub>) {
    let Some(Task::Shell { addr, .. }) = &conn.domain.task else {
        return conn.send_error(
            ctx,
            &AppError::with_detail(ErrorCode::NoRunningTask, "no command is running"),
            &rid,
        );
    };
    addr.send(ShellInput(data))
        .into_actor(conn)
        .map(move |res, conn, ctx| {
            if let Err(e) = flatten(res) {
                conn.send_error(ctx, &e, &rid);
            }
        })
        .spawn(ctx);
}

fn resize(conn: &mut WsConnection<Stub>, cols: u32, rows: u32, rid: RequestId, ctx: &mut WsCtx<Stub>) {
    if !(1..=1000).contains(&cols) || !(1..=1000).contains(&rows) {
        let e = AppError::with_detail(ErrorCode::Validation, "cols and rows must be between 1 and 1000");
        return conn.send_error(ctx, &e, &rid);
    }
    conn.domain.pty = (cols, rows);
    if let Some(Task::Shell { addr, .. }) = &conn.domain.task {
        addr.send(ShellResize { cols, rows })
            .into_actor(conn)
            .map(move |res, conn, ctx| match flatten(res) {
                Ok(()) => conn.send(ctx, &StubReply::Resized { cols, rows }, &rid),
                Err(e) => conn.send_error(ctx, &e, &rid),
            })
            .spawn(ctx);
    } else {
        conn.send(ctx, &StubReply::Resized { cols, rows }, &rid);
    }
}

fn cancel(conn: &mut WsConnection<Stub>, rid: RequestId, ctx: &mut WsCtx<Stub>) {
    if let Some(Task::Transfer(_)) = &conn.domain.task {
        return transfer::cancel(conn, rid, ctx);
    }
    let Some(Task::Shell {
        addr,
        generation,
        stopping,
        ..
    }) = &mut conn.domain.task
    else {
        return conn.send_error(
            ctx,
            &AppError::with_detail(ErrorCode::NoRunningTask, "no command is running"),
            &rid,
        );
    };
    *stopping = true;
    let generation = *generation;
    addr.send(StopShell)
        .into_actor(conn)
        .map(|res, conn, _| {
            // The shell has stopped on its own just before: its completion
            // is on its way and frees the slot. Not an error for the client.
            if let Err(e) = res {
                log::debug!(connection_id = conn.id.to_string().as_str(), error = e.to_string(); "cancel raced the command's own end");
            }
        })
        .spawn(ctx);
    watch_stop(generation, ctx);
}

/// Reports 50012 if the task is still there `STOP_TIMEOUT` after a stop.
fn watch_stop(generation: u64, ctx: &mut WsCtx<Stub>) {
    ctx.run_later(STOP_TIMEOUT, move |conn, ctx| {
        let current = match &conn.domain.task {
            Some(Task::Shell {
                generation: g, rid, ..
            }) => Some((*g, rid)),
            Some(Task::Transfer(t)) => Some((t.generation, &t.rid)),
            _ => None,
        };
        if let Some((g, rid)) = current {
            if g == generation {
                let rid = rid.clone();
                conn.domain.task = None;
                let err = AppError::with_detail(
                    ErrorCode::TaskCancelTimeout,
                    format!("no stop within {STOP_TIMEOUT:?}"),
                );
                conn.send_error(ctx, &err, &rid);
            }
        }
    });
}

impl Handler<ShellNotice> for WsConnection<Stub> {
    type Result = ();

    fn handle(&mut self, notice: ShellNotice, ctx: &mut WsCtx<Stub>) {
        let server = match &self.domain.task {
            Some(Task::Shell { server, .. }) => server.clone(),
            _ => String::new(),
        };
        match notice {
            ShellNotice::Output(text) => self.send(
                ctx,
                &StubReply::SshOutput {
                    server: &server,
                    data: &text,
                },
                &None,
            ),
            ShellNotice::Complete(done) => self.complete(done, ctx),
            ShellNotice::CleanupFailed(err) => self.send_error(ctx, &err, &None),
        }
    }
}

impl WsConnection<Stub> {
    fn complete(&mut self, done: Completion, ctx: &mut WsCtx<Stub>) {
        // Only the current shell's completion frees the slot: a late one
        // from a task given up on (50012) must not clear a newer task.
        if !matches!(&self.domain.task, Some(Task::Shell { generation, .. }) if *generation == done.task_id) {
            log::warn!(connection_id = self.id.to_string().as_str(), task = done.task_id; "completion of a task no longer current ignored");
            return;
        }
        let Some(Task::Shell {
            server, command, rid, ..
        }) = self.domain.task.take()
        else {
            return;
        };
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
        let mut event = audit(self, "ssh.command.end");
        event.server = Some(server);
        event.command = Some(command);
        event.exit_status = done.exit_status.map(i64::from);
        event.bytes = Some(done.bytes as i64);
        event.detail = Some(serde_json::json!({
            "reason": done.reason.as_str(),
            "error": done.error.map(|e| e.code.code()),
        }));
        self.state.store.audit(event);
    }
}

impl Handler<LockRevoked> for WsConnection<Stub> {
    type Result = ();

    fn handle(&mut self, _: LockRevoked, ctx: &mut WsCtx<Stub>) {
        // A task still waiting for its lock check must not start.
        if matches!(
            self.domain.task,
            Some(Task::Starting(_)) | Some(Task::StartingTransfer(_))
        ) {
            self.domain.task = None;
        }
        if let Some(Task::Shell {
            addr,
            generation,
            stopping,
            ..
        }) = &mut self.domain.task
        {
            *stopping = true;
            addr.do_send(StopShell);
            let generation = *generation;
            watch_stop(generation, ctx);
        }
        if let Some(Task::Transfer(t)) = &mut self.domain.task {
            t.stopping = true;
            t.addr.do_send(transfer::StopTransfer);
            watch_stop(t.generation, ctx);
        }
        self.send(ctx, &StubReply::SessionEnded, &None);
    }
}

fn flatten<T>(res: Result<Result<T, AppError>, actix::MailboxError>) -> Result<T, AppError> {
    res.map_err(mailbox)?
}

fn mailbox(e: actix::MailboxError) -> AppError {
    AppError::with_detail(ErrorCode::Internal, format!("actor unavailable: {e}"))
}
