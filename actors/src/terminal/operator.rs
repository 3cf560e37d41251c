//! `OperatorTerminal`: one operator's own interactive shell on one server,
//! outside the session lock, that outlives the WebSocket that opened it.
//! Its messages and events are in `super::messages`.
//!
//! (Over 450 lines: the output path, the followers' cursors and the two
//! clocks change the same state and read best side by side.)
//!
//! What it owns: its own SSH session (one per terminal: russh re-opens a
//! channel's window when data arrives, not when it is read, so a terminal
//! that stops reading to pause its remote program would stall every other
//! channel on a shared connection; NOTES-russh gotcha 1), the PTY channel,
//! the output pipeline (throttle, decoding; `\r` redraws kept), its
//! [`PtyFeed`] (the scrollback ring and the read-only watchers), the
//! attached connections ("followers") and the idle and detach clocks. It
//! is the only writer of all of them; the actor handles one message at a
//! time, so an attach, a flush and a detach never interleave.
//!
//! Output path: the pump reads the channel into the pipeline; each flush
//! is pushed into the feed (the ring), and every follower is sent what it
//! has not had, one message in flight each, from the ring. The ring is the
//! only buffer: it never evicts what an attached follower has not been
//! sent, and when it is full of such output the pump waits
//! ([`Flushed`]'s answer), so the channel is not read and SSH flow control
//! pauses the remote program. Never silent loss: a client slow to read
//! slows its terminal (as STUB's do); a watcher is never waited for.
//!
//! Detached (no follower): the terminal keeps reading into its ring for
//! `detach` and keeps what the last follower may not have received (a
//! quarter of the ring before what it was sent, [`DETACH_GUARD_SHARE`]);
//! once the ring is full of output nobody has seen, reading stops. An
//! attach with `since` gets exactly the output from `since` on, or from
//! the oldest byte held with `cut` set. The detach clock expiring closes
//! the remote shell (54006).
//!
//! Ends: the owner closes it, the shell exits (after attached followers
//! got the last output; a detached one waits for an attach or its detach
//! clock), the idle clock (54005), access withdrawn (10010), the daemon
//! stopping (30004). Every follower gets [`TerminalEvent::Closed`], every
//! watcher its end; the channel and the session are closed after, bounded
//! by [`CLEANUP_TIMEOUT`] (closing a PTY channel makes sshd hang up the
//! PTY, which kills what runs on it).

use crate::policy::line::LineGuard;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, ResponseFuture,
    WrapFuture,
};
use futures_util::StreamExt;
use tokio::sync::oneshot;

use super::channel::{data_of, enqueue, input_queue, write_queued, InputOp};
use super::idle::{IdleClock, IdleStep, DEFAULT_WARN_BEFORE};
pub use super::messages::{
    Attach, Attached, Close, CloseReason, Detach, DropUser, Follow, Input, Resize, TerminalEnded,
    TerminalEvent, TerminalRequest,
};
use super::output::{pump, OutputPipeline, PumpEnd};
use super::seat::{attached, TerminalSeat, TerminalStats};
use crate::error::{AppError, ErrorCode};
use crate::ids::{ConnectionId, TerminalId};
use crate::pty::book::PtyRegistration;
use crate::pty::feed::PtyFeed;
use crate::pty::record::{recorded, Recorder, RecordingEnd};
use crate::pty::MAX_FRAME_BYTES;
use crate::server::{CommandMode, ServerSpec};
use crate::ssh::{self, PtyRequest, SshOptions, SshSession};
use crate::task::CLEANUP_TIMEOUT;

/// The share of the ring a detached terminal keeps from before what its
/// last follower was sent (frames still on their way when the socket
/// dropped): a quarter.
pub const DETACH_GUARD_SHARE: usize = 4;

/// How long a terminal whose shell exited waits for its attached
/// followers to take the last output before it closes anyway.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(10);

/// One flush of output from the pump; answered once the ring has room for
/// the next (the pump waits for the answer: that is the backpressure).
struct Flushed(String);

impl Message for Flushed {
    type Result = bool;
}

struct Follower {
    follow: Follow,
    /// The next offset to send it.
    cursor: u64,
    /// Whether a message to it is on its way.
    sending: bool,
    /// Changes on every attach of the same connection, so the answer to a
    /// message sent before a re-attach does not move the new cursor.
    epoch: u64,
}

/// The actor. See the module docs.
pub struct OperatorTerminal {
    terminal_id: TerminalId,
    server: Arc<ServerSpec>,
    ssh: Arc<SshOptions>,
    command: String,
    pty: PtyRequest,
    throttle: Duration,
    /// Held for the book; dropped with the actor.
    _seat: TerminalSeat,
    stats: Arc<TerminalStats>,
    registration: PtyRegistration,
    feed: Arc<PtyFeed>,
    /// Its recording: fed by the pump, ended in `stopped`.
    recorder: Option<Recorder>,
    followers: HashMap<ConnectionId, Follower>,
    next_epoch: u64,
    /// What a detached terminal keeps (see the module docs).
    detached_keep: u64,
    /// Bumped on every detach and attach; a detach clock of an older
    /// generation does nothing.
    detach_generation: u64,
    detach: Duration,
    idle: IdleClock,
    /// The pump waits for this while the ring is full.
    room_waiter: Option<oneshot::Sender<bool>>,
    /// Set once the shell's output ended: the terminal closes when its
    /// followers have it all.
    exited: Option<(CloseReason, Option<AppError>)>,
    session: Option<Arc<SshSession>>,
    input: Option<ssh::ShellInput>,
    input_tx: tokio::sync::mpsc::Sender<InputOp>,
    input_rx: Option<tokio::sync::mpsc::Receiver<InputOp>>,
    /// How it ended; the first reason set wins.
    closing: Option<(CloseReason, Option<AppError>)>,
    /// Told once the cleanup is done.
    done: Vec<oneshot::Sender<()>>,
    opener: Option<Follow>,
    on_ended: Option<Recipient<TerminalEnded>>,
    /// The exit status the server sent, set by the pump's stream.
    exit_status: std::rc::Rc<std::cell::Cell<Option<u32>>>,
    /// Under command rules: the line being typed (one for all typists:
    /// they type into the same shell line).
    guard: Option<LineGuard>,
}

impl OperatorTerminal {
    /// A terminal that will open `request` once started.
    pub fn new(request: TerminalRequest) -> Self {
        let (input_tx, input_rx) = input_queue();
        let feed = request.registration.feed().clone();
        OperatorTerminal {
            terminal_id: request.seat.terminal_id(),
            server: request.server,
            ssh: request.ssh,
            command: request.command,
            pty: request.pty,
            throttle: request.throttle,
            _seat: request.seat,
            stats: request.stats,
            registration: request.registration,
            recorder: request.recorder,
            feed,
            followers: HashMap::new(),
            next_epoch: 1,
            detached_keep: 0,
            detach_generation: 0,
            detach: request.detach,
            idle: IdleClock::new(request.idle, DEFAULT_WARN_BEFORE, tokio::time::Instant::now()),
            room_waiter: None,
            exited: None,
            session: None,
            input: None,
            input_tx,
            input_rx: Some(input_rx),
            closing: None,
            done: Vec::new(),
            opener: Some(request.opener),
            on_ended: request.on_ended,
            exit_status: std::rc::Rc::default(),
            guard: request.typed_lines.map(LineGuard::new),
        }
    }

    fn log_fields(&self) -> (String, &str) {
        (self.terminal_id.to_string(), self.server.name.as_str())
    }

    fn close(&mut self, reason: CloseReason, error: Option<AppError>, ctx: &mut Context<Self>) {
        if self.closing.is_none() {
            self.closing = Some((reason, error));
        }
        ctx.stop();
    }

    /// The lowest offset some reader still needs: the slowest follower's
    /// cursor, or what a detached terminal keeps.
    fn keep_from(&self) -> u64 {
        self.followers
            .values()
            .map(|f| f.cursor)
            .min()
            .unwrap_or(self.detached_keep)
    }

    fn follow(&mut self, follow: Follow, cursor: u64) {
        let epoch = self.next_epoch;
        self.next_epoch += 1;
        let conn = follow.conn;
        if self
            .followers
            .insert(
                conn,
                Follower {
                    follow,
                    cursor,
                    sending: false,
                    epoch,
                },
            )
            .is_none()
        {
            attached(&self.stats, 1);
        }
        self.detach_generation += 1;
    }

    fn unfollow(&mut self, conn: ConnectionId, ctx: &mut Context<Self>) {
        let Some(gone) = self.followers.remove(&conn) else {
            return;
        };
        attached(&self.stats, -1);
        if !self.followers.is_empty() {
            return self.progress(ctx);
        }
        // the last one: keep what it may not have received, and start the
        // detach clock
        let guard = (self.feed.capacity() / DETACH_GUARD_SHARE) as u64;
        self.detached_keep = gone.cursor.saturating_sub(guard);
        self.detach_generation += 1;
        let generation = self.detach_generation;
        let (id, server) = self.log_fields();
        log::info!(terminal_id = id.as_str(), server = server, user = &*gone.follow.user; "terminal detached");
        ctx.run_later(self.detach, move |act, ctx| {
            if act.detach_generation == generation && act.followers.is_empty() {
                let err = AppError::with_detail(
                    ErrorCode::TerminalDetachExpired,
                    format!("detached for {:?}; the remote shell was closed", act.detach),
                );
                act.close(CloseReason::DetachExpired, Some(err), ctx);
            }
        });
        self.progress(ctx);
    }

    /// Sends each follower what it has not had (one message in flight
    /// each), wakes the pump when the ring has room, and closes an exited
    /// terminal once its followers have everything.
    fn progress(&mut self, ctx: &mut Context<Self>) {
        let terminal_id = self.terminal_id;
        let mut sends = Vec::new();
        for (conn, f) in self.followers.iter_mut() {
            if f.sending {
                continue;
            }
            let Some(slice) = self.feed.read(f.cursor, MAX_FRAME_BYTES) else {
                continue;
            };
            f.sending = true;
            let next = slice.from + slice.text.len() as u64;
            let event = TerminalEvent::Output {
                terminal_id,
                offset: slice.from,
                data: slice.text,
            };
            sends.push((*conn, f.epoch, next, f.follow.sink.send(event)));
        }
        for (conn, epoch, next, send) in sends {
            ctx.spawn(send.into_actor(self).map(move |res, act, ctx| {
                let Some(f) = act.followers.get_mut(&conn).filter(|f| f.epoch == epoch) else {
                    return;
                };
                f.sending = false;
                match res {
                    Ok(()) => {
                        f.cursor = next;
                        act.progress(ctx);
                    }
                    // its connection is gone
                    Err(_) => act.unfollow(conn, ctx),
                }
            }));
        }
        if self.room_waiter.is_some() && self.feed.has_room(self.keep_from()) {
            if let Some(tx) = self.room_waiter.take() {
                let _ = tx.send(true);
            }
        }
        if self.exited.is_some() && !self.followers.is_empty() {
            let end = self.feed.end();
            if self.followers.values().all(|f| f.cursor >= end) {
                let (reason, error) = self.exited.take().unwrap_or((CloseReason::Exit, None));
                self.close(reason, error, ctx);
            }
        }
    }

    fn check_typist(&self, conn: ConnectionId) -> Result<(), AppError> {
        match self.followers.get(&conn) {
            Some(f) if f.follow.can_type => Ok(()),
            Some(_) => Err(AppError::with_detail(
                ErrorCode::WatchOnly,
                "this connection may watch this terminal but not type in it",
            )),
            None => Err(AppError::with_detail(
                ErrorCode::WatchOnly,
                "this connection is not attached to the terminal; send terminal_attach first",
            )),
        }
    }

    fn queue(&self, op: InputOp) -> Result<(), AppError> {
        enqueue(&self.input_tx, op)
    }

    fn arm_idle(&mut self, ctx: &mut Context<Self>) {
        let now = tokio::time::Instant::now();
        match self.idle.step(now) {
            IdleStep::WaitUntil(at) => {
                ctx.run_later(at.saturating_duration_since(now), |act, ctx| act.arm_idle(ctx));
            }
            IdleStep::Warn(closes_in) => {
                for f in self.followers.values() {
                    f.follow.sink.do_send(TerminalEvent::IdleWarning {
                        terminal_id: self.terminal_id,
                        closes_in,
                    });
                }
                self.arm_idle(ctx);
            }
            IdleStep::Close => {
                let err = AppError::with_detail(
                    ErrorCode::TerminalIdle,
                    "no input and no output for the idle time; the remote shell was closed",
                );
                self.close(CloseReason::Idle, Some(err), ctx);
            }
        }
    }

    fn active(&mut self) {
        self.idle.active(tokio::time::Instant::now());
        self.stats.active();
    }

    /// Connected and the PTY is open: the writer and the pump.
    fn running(&mut self, session: SshSession, channel: ssh::ShellChannel, ctx: &mut Context<Self>) {
        let (input, output) = channel.into_parts();
        self.session = Some(Arc::new(session));
        self.input = Some(input.clone());
        if let Some(opener) = self.opener.take() {
            opener.sink.do_send(TerminalEvent::Opened {
                terminal_id: self.terminal_id,
                pty_id: self.registration.pty_id(),
            });
            self.follow(opener, 0);
        }
        // a command on a server in shell mode is typed into the shell
        if self.server.command_mode == CommandMode::Shell && !self.command.is_empty() {
            let _ = self.queue(InputOp::Write(format!("{}\n", self.command)));
        }
        let Some(mut rx) = self.input_rx.take() else {
            return;
        };
        ctx.spawn(
            async move { write_queued(&input, &mut rx).await }
                .into_actor(self)
                .map(|failed, act, ctx| {
                    if let Some(e) = failed {
                        act.close(CloseReason::Error, Some(e), ctx);
                    }
                }),
        );
        let lost = std::rc::Rc::new(std::cell::Cell::new(false));
        let lost_seen = lost.clone();
        let counted = crate::metrics::output_bytes("terminal");
        let source = data_of(output, self.exit_status.clone(), lost)
            .inspect(move |data| counted.increment(data.len() as u64));
        // recorded as it came (before decoding and the throttle)
        let source = recorded(source.boxed_local(), self.recorder.clone());
        let capacity = self.feed.capacity();
        let mut pipeline = OutputPipeline::new(self.server.encoding, self.throttle, None)
            .keeping_redraws()
            .with_max_pending(capacity);
        let me = ctx.address();
        ctx.spawn(
            async move {
                pump(&mut pipeline, source, |text| {
                    let me = me.clone();
                    async move { me.send(Flushed(text)).await.unwrap_or(false) }
                })
                .await
            }
            .into_actor(self)
            .map(move |end, act, ctx| {
                let exit = if lost_seen.get() {
                    (CloseReason::Error, Some(ssh::connection_lost(&act.server.name)))
                } else {
                    (CloseReason::Exit, None)
                };
                match end {
                    PumpEnd::SinkClosed => act.close(CloseReason::Closed, None, ctx),
                    _ => {
                        act.exited = Some(exit);
                        ctx.run_later(DRAIN_AFTER_EXIT, |act, ctx| {
                            if let Some((reason, error)) = act.exited.take() {
                                if !act.followers.is_empty() {
                                    act.close(reason, error, ctx);
                                } else {
                                    act.exited = Some((reason, error));
                                }
                            }
                        });
                        act.progress(ctx);
                    }
                }
            }),
        );
        self.arm_idle(ctx);
    }
}

impl Actor for OperatorTerminal {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (id, server) = self.log_fields();
        log::info!(terminal_id = id.as_str(), server = server; "terminal opening");
        crate::metrics::command_started("terminal");
        let server = self.server.clone();
        let opts = self.ssh.clone();
        let pty = self.pty.clone();
        let command = (!self.command.is_empty() && self.server.command_mode == CommandMode::Exec)
            .then(|| self.command.clone());
        ctx.spawn(
            async move {
                let session = ssh::connect(&server, &opts).await?;
                match session.open_pty(pty, command.as_deref()).await {
                    Ok(channel) => Ok((session, channel)),
                    Err(e) => {
                        let _ = session.disconnect().await;
                        Err(e)
                    }
                }
            }
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok((session, channel)) => act.running(session, channel, ctx),
                Err(e) => {
                    // the opener hears it as the answer to its open
                    if let Some(opener) = act.opener.take() {
                        opener.sink.do_send(TerminalEvent::Closed {
                            terminal_id: act.terminal_id,
                            reason: CloseReason::Error,
                            error: Some(e.clone()),
                            bytes: 0,
                            exit_status: None,
                        });
                    }
                    act.close(CloseReason::Error, Some(e), ctx);
                }
            }),
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let (reason, error) = self.closing.take().unwrap_or((CloseReason::Closed, None));
        let bytes = self.feed.end();
        let (id, server) = self.log_fields();
        log::info!(terminal_id = id.as_str(), server = server, reason = reason.as_str(), bytes = bytes; "terminal closed");
        crate::metrics::command_finished("terminal", reason.as_str());
        for (_, f) in self.followers.drain() {
            f.follow.sink.do_send(TerminalEvent::Closed {
                terminal_id: self.terminal_id,
                reason,
                error: error.clone(),
                bytes,
                exit_status: self.exit_status.get(),
            });
        }
        self.stats.attached.store(0, std::sync::atomic::Ordering::Relaxed);
        self.feed.end_all();
        if let Some(recorder) = self.recorder.take() {
            recorder.end(RecordingEnd {
                reason: reason.as_str().to_owned(),
                exit_status: self.exit_status.get(),
            });
        }
        if let Some(to) = self.on_ended.take() {
            to.do_send(TerminalEnded {
                terminal_id: self.terminal_id,
                pty_id: self.registration.pty_id(),
                owner: self.registration.info().user.clone(),
                server: self.server.name.clone(),
                reason,
                error: error.clone(),
                bytes,
            });
        }
        if let Some(tx) = self.room_waiter.take() {
            let _ = tx.send(false);
        }
        // Close the channel, then the session: sshd hangs up the PTY and
        // what ran on it dies. Detached, since the actor is gone.
        let input = self.input.take();
        let session = self.session.take();
        let done = std::mem::take(&mut self.done);
        let server = self.server.name.clone();
        actix::spawn(async move {
            let cleanup = async {
                if let Some(input) = input {
                    let _ = input.close().await;
                }
                if let Some(session) = session {
                    let _ = session.disconnect().await;
                }
            };
            if tokio::time::timeout(CLEANUP_TIMEOUT, cleanup).await.is_err() {
                log::error!(server = server.as_str(); "terminal cleanup: no disconnect within the cleanup timeout");
            }
            for tx in done {
                let _ = tx.send(());
            }
        });
    }
}

impl Handler<Flushed> for OperatorTerminal {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, Flushed(text): Flushed, ctx: &mut Context<Self>) -> Self::Result {
        self.feed.push(&text, self.keep_from());
        self.active();
        self.progress(ctx);
        if self.feed.has_room(self.keep_from()) {
            return Box::pin(std::future::ready(true));
        }
        // full of output a reader still needs: the pump waits, and the
        // channel is not read until a follower takes some
        let (tx, rx) = oneshot::channel();
        self.room_waiter = Some(tx);
        Box::pin(async move { rx.await.unwrap_or(false) })
    }
}

impl Handler<Attach> for OperatorTerminal {
    type Result = Result<Attached, AppError>;

    fn handle(&mut self, msg: Attach, ctx: &mut Context<Self>) -> Self::Result {
        if self.opener.is_some() {
            return Err(AppError::with_detail(
                ErrorCode::UnknownTerminal,
                "the terminal is still opening",
            ));
        }
        let start = self.feed.start();
        let end = self.feed.end();
        let since = msg.since.unwrap_or(start).min(end);
        let from = since.max(start);
        let cut = since < start;
        let (id, server) = self.log_fields();
        log::info!(terminal_id = id.as_str(), server = server, user = &*msg.follow.user, from = from, cut = cut; "terminal attached");
        let at = Attached { from, cut, end };
        msg.follow.sink.do_send(TerminalEvent::Attached {
            terminal_id: self.terminal_id,
            at,
        });
        self.follow(msg.follow, from);
        self.progress(ctx);
        Ok(at)
    }
}

impl Handler<Detach> for OperatorTerminal {
    type Result = ();

    fn handle(&mut self, msg: Detach, ctx: &mut Context<Self>) {
        self.unfollow(msg.conn, ctx);
    }
}

impl Handler<Input> for OperatorTerminal {
    type Result = Result<(), AppError>;

    fn handle(&mut self, msg: Input, _: &mut Context<Self>) -> Self::Result {
        self.check_typist(msg.conn)?;
        self.active();
        if let Some(recorder) = &self.recorder {
            recorder.input(&msg.data);
        }
        let Some(guard) = &mut self.guard else {
            return self.queue(InputOp::Write(msg.data));
        };
        // the keystrokes go on at once; a refused line's Enter does not.
        // One line for all typists (they type into one shell line), each
        // Enter judged as the one who pressed it.
        let passed = guard.pass_as(&msg.data, msg.typed_lines.as_ref());
        self.queue(InputOp::Write(passed.write))?;
        passed.refused.map_or(Ok(()), Err)
    }
}

impl Handler<Resize> for OperatorTerminal {
    type Result = Result<(), AppError>;

    fn handle(&mut self, msg: Resize, _: &mut Context<Self>) -> Self::Result {
        self.check_typist(msg.conn)?;
        self.pty.cols = msg.cols;
        self.pty.rows = msg.rows;
        if let Some(recorder) = &self.recorder {
            recorder.resize(msg.cols, msg.rows);
        }
        self.queue(InputOp::Resize(msg.cols, msg.rows))
    }
}

impl Handler<Close> for OperatorTerminal {
    type Result = ();

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) {
        self.done.extend(msg.done);
        self.close(msg.reason, msg.error, ctx);
    }
}

impl Handler<DropUser> for OperatorTerminal {
    type Result = ();

    fn handle(&mut self, msg: DropUser, ctx: &mut Context<Self>) {
        let theirs: Vec<ConnectionId> = self
            .followers
            .iter()
            .filter(|(_, f)| *f.follow.user == msg.user)
            .map(|(conn, _)| *conn)
            .collect();
        for conn in theirs {
            if let Some(f) = self.followers.get(&conn) {
                f.follow.sink.do_send(TerminalEvent::Detached {
                    terminal_id: self.terminal_id,
                    error: msg.error.clone(),
                });
            }
            self.unfollow(conn, ctx);
        }
        self.feed.withdraw_user(&msg.user);
    }
}
