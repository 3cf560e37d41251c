//! `SshShellActor`: one interactive command on a PTY, from connect to the
//! last byte of output (the STUB domain's `ssh_command`).
//!
//! What it owns: its own SSH session (one per command, so backpressure on
//! this channel never stalls anybody else's), the PTY channel, and the
//! output pipeline. Who sends it what: the client that started it sends
//! [`ShellInput`], [`ShellResize`] and [`Stop`]; it reports through its
//! [`Reporter`] ([`ShellMessage`]s: output, then one `Finished`).
//!
//! It keeps the task contract (`crate::task`). When it stops: the command
//! exits, the stop phrase appears, the timeout fires, the client goes away,
//! or it is told to stop. Cancelling *is* stopping: the pump future dies
//! with the actor, and `stopped()` closes the channel and the session
//! (bounded by [`CLEANUP_TIMEOUT`]), which makes sshd hang up the PTY and
//! kill what runs on it (NOTES-russh: closing a PTY channel kills; a TERM
//! signal does not). `Finished` is sent after that, so a client that saw it
//! knows the remote command is gone.
//!
//! Output that was waiting for its throttle slot when the actor is
//! cancelled (at most one throttle interval's worth) is discarded with it;
//! on exit and on the stop phrase everything is flushed first.
//!
//! On a server in shell mode (`crate::shell_mode`) a command is typed into
//! the login shell instead of sent as `exec`: the writer types the probe
//! and command lines before any of the client's input, and the output
//! passes a marker filter before the pipeline, so the stop phrase is looked
//! for in the command's output only (never in the echo of its own text).
//! An empty command is an interactive shell in both modes.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture};
use futures_util::StreamExt;

use bytes::Bytes;
use futures_util::stream::LocalBoxStream;

use crate::error::{AppError, ErrorCode};
use crate::policy::line::{LineGuard, LineJudge};
use crate::policy::Gate;
use crate::pty::book::{PtyRegistration, PtyTag};
use crate::pty::record::{recorded, Recorder, RecordingEnd};
use crate::pty::NOBODY_WAITS;
use crate::server::{CommandMode, ServerSpec};
use crate::shell_mode::lines::{command_lines, probe_lines, Flavour, Token};
use crate::shell_mode::markers::{filter_stream, MarkerEvent, MarkerFilter};
use crate::shell_mode::{ended_before_start, not_posix, type_command};
use crate::ssh::{self, PtyRequest, SshOptions, SshSession};
use crate::task::{Reporter, Stop, TaskMessage, CLEANUP_TIMEOUT};
use crate::terminal::channel::{data_of, enqueue, input_queue, write_queued, InputOp};
use crate::terminal::output::{pump, OutputPipeline, PumpEnd};

/// What to run, where and how.
#[derive(Debug, Clone)]
pub struct ShellRequest {
    /// The server.
    pub server: Arc<ServerSpec>,
    /// How to connect (timeouts, host keys).
    pub ssh: Arc<SshOptions>,
    /// The command; empty for an interactive login shell.
    pub command: String,
    /// Finish (and kill the command) when this text appears in the output.
    pub stop_phrase: Option<String>,
    /// Finish (and kill the command) after this long.
    pub timeout: Option<Duration>,
    /// Output flush interval.
    pub throttle: Duration,
    /// Terminal size and type.
    pub pty: PtyRequest,
    /// How it is listed among the running PTYs (and watched), if at all.
    pub listed: Option<PtyTag>,
    /// For an interactive shell under command rules: the judge of each
    /// typed line (`crate::policy::line`).
    pub typed_lines: Option<LineJudge>,
}

/// Why a command finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The command exited by itself.
    Exit,
    /// The stop phrase appeared.
    StopPhrase,
    /// It ran past its timeout (22001 is sent too).
    Timeout,
    /// It was cancelled (`cancel`, `end_session`, disconnect).
    Cancelled,
    /// It could not run (connect, auth, channel failure; the error is sent).
    Error,
}

impl FinishReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Exit => "exit",
            FinishReason::StopPhrase => "stop_phrase",
            FinishReason::Timeout => "timeout",
            FinishReason::Cancelled => "cancelled",
            FinishReason::Error => "error",
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone)]
pub struct Completion {
    /// Why.
    pub reason: FinishReason,
    /// The exit status, when the command exited.
    pub exit_status: Option<u32>,
    /// The error, for `Timeout` (22001) and `Error`.
    pub error: Option<AppError>,
    /// Output bytes received from the server.
    pub bytes: u64,
}

/// What the shell tells its client: decoded, throttled output, then one
/// `Finished` with the [`Completion`].
pub type ShellMessage = TaskMessage<String, Completion>;

/// Keystrokes for the command (answers to prompts, `\u0003` for Ctrl-C).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct ShellInput(pub String);

/// The client's terminal changed size.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct ShellResize {
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
}

/// What the markers said, in shell mode (`crate::shell_mode::markers`).
#[derive(Debug, Default)]
struct MarkersSeen {
    /// `$SHELL` of a login shell that is not POSIX.
    refused: Option<String>,
    /// The begin marker came: the command runs.
    began: bool,
    /// The end marker came, with the command's status.
    ended: Option<Option<u32>>,
    /// The prompt came back instead of the end marker.
    aborted: bool,
}

/// The actor. See the module docs.
pub struct SshShellActor {
    request: ShellRequest,
    /// Where output and the completion go; taken by `stopped()` to finish.
    reporter: Option<Reporter<String, Completion>>,
    /// The session, once connected; closed in `stopped()`.
    session: Option<Arc<SshSession>>,
    /// The channel's writing half, once open; closed in `stopped()`.
    input: Option<ssh::ShellInput>,
    /// Ordered queue to the writer task. Input sent while connecting waits
    /// here and is written once the PTY is open.
    input_tx: tokio::sync::mpsc::Sender<InputOp>,
    /// The queue's receiving end, until the writer task takes it.
    input_rx: Option<tokio::sync::mpsc::Receiver<InputOp>>,
    /// Why it finished; the first reason set wins.
    reason: Option<FinishReason>,
    /// Error to report with the completion.
    error: Option<AppError>,
    /// The exit status, when the server sent one.
    exit_status: Rc<Cell<Option<u32>>>,
    /// Output bytes received.
    bytes: Rc<Cell<u64>>,
    /// Whether the command began (past any review hold), so its end is
    /// counted only when its start was.
    began: bool,
    /// Set when the session ended under the channel ([`ShellEvent::Lost`](crate::ssh::ShellEvent::Lost)).
    lost: Rc<Cell<bool>>,
    /// In shell mode with a command: what the markers said so far.
    markers: Option<Rc<std::cell::RefCell<MarkersSeen>>>,
    /// Its place among the running PTYs, from the PTY's open to the end.
    listed: Option<PtyRegistration>,
    /// Waited on before anything connects (a command held for review);
    /// taken by `started()`.
    gate: Option<Gate>,
    /// The typed line of an interactive shell under command rules.
    guard: Option<LineGuard>,
}

impl SshShellActor {
    /// An actor that will run `request` and report through `reporter` once
    /// started.
    pub fn new(request: ShellRequest, reporter: Reporter<String, Completion>) -> Self {
        let (input_tx, input_rx) = input_queue();
        let typed = request.server.command_mode == CommandMode::Shell && !request.command.is_empty();
        let guard = request.typed_lines.clone().map(LineGuard::new);
        SshShellActor {
            markers: typed.then(Rc::default),
            input_tx,
            input_rx: Some(input_rx),
            request,
            reporter: Some(reporter),
            session: None,
            input: None,
            reason: None,
            error: None,
            exit_status: Rc::new(Cell::new(None)),
            bytes: Rc::new(Cell::new(0)),
            began: false,
            lost: Rc::new(Cell::new(false)),
            listed: None,
            gate: None,
            guard,
        }
    }

    /// Waits on `gate` before connecting: the command runs once it opens,
    /// and finishes with its error, unrun, if it does not. The command's
    /// timeout counts from the opening.
    pub fn gated(mut self, gate: Gate) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Connects and opens the PTY (after the gate, if any).
    fn begin(&mut self, ctx: &mut Context<Self>) {
        let task_id = self.reporter.as_ref().map(|r| r.task_id().get());
        log::info!(task_id = task_id, server = self.request.server.name.as_str(); "ssh command starting");
        self.began = true;
        crate::metrics::command_started("command");
        if let Some(timeout) = self.request.timeout {
            ctx.run_later(timeout, move |act, ctx| {
                let err = AppError::with_detail(
                    ErrorCode::SshCommandTimeout,
                    format!("server '{}': no end within {timeout:?}", act.request.server.name),
                );
                act.finish(FinishReason::Timeout, Some(err), ctx);
            });
        }
        let request = self.request.clone();
        let typed = self.markers.is_some();
        ctx.spawn(
            async move {
                let session = ssh::connect(&request.server, &request.ssh).await?;
                // shell mode types the command into a shell; otherwise exec
                // it, or an interactive shell for an empty command
                let command = (!request.command.is_empty() && !typed).then_some(request.command.as_str());
                match session.open_pty(request.pty.clone(), command).await {
                    Ok(channel) => Ok((session, channel, request.pty)),
                    Err(e) => {
                        let _ = session.disconnect().await;
                        Err(e)
                    }
                }
            }
            .into_actor(self)
            .map(|result, act, ctx| match result {
                Ok((session, channel, opened)) => {
                    act.running(session, channel, ctx);
                    // a resize that came while connecting
                    if opened != act.request.pty {
                        let _ = act.queue(InputOp::Resize(act.request.pty.cols, act.request.pty.rows));
                    }
                }
                Err(e) => act.finish(FinishReason::Error, Some(e), ctx),
            }),
        );
    }

    fn finish(&mut self, reason: FinishReason, error: Option<AppError>, ctx: &mut Context<Self>) {
        if self.reason.is_none() {
            self.reason = Some(reason);
            self.error = error;
        }
        ctx.stop();
    }

    fn queue(&self, op: InputOp) -> Result<(), AppError> {
        enqueue(&self.input_tx, op)
    }

    /// The PTY's recording, when it is recorded.
    fn recorder(&self) -> Option<Recorder> {
        self.request.listed.as_ref().and_then(|t| t.recorder.clone())
    }

    /// Connected and the PTY is open: start the writer and the pump.
    fn running(&mut self, session: SshSession, channel: ssh::ShellChannel, ctx: &mut Context<Self>) {
        let (input, output) = channel.into_parts();
        self.session = Some(Arc::new(session));
        self.input = Some(input.clone());

        let writer = input;
        let Some(mut rx) = self.input_rx.take() else {
            return;
        };
        // shell mode: the lines to type, and the signal that the shell is
        // ready for the command lines
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let typing = self.markers.is_some().then(|| {
            let token = Token::random();
            let lines = (
                probe_lines(&token),
                command_lines(&token, &self.request.command, Flavour::Terminal),
            );
            (token, lines)
        });
        let (token, lines) = typing.unzip();
        let server = self.request.server.name.clone();
        ctx.spawn(
            async move {
                // before any of the client's input, which waits in `rx`
                if let Some((probe, command)) = lines {
                    let typed = type_command(&server, probe, command, ready_rx, |bytes| {
                        let writer = writer.clone();
                        async move { writer.write(bytes).await }
                    });
                    if let Err(e) = typed.await {
                        return Some(e);
                    }
                }
                write_queued(&writer, &mut rx).await
            }
            .into_actor(self)
            .map(|failed, act, ctx| {
                if let Some(e) = failed {
                    act.finish(FinishReason::Error, Some(e), ctx);
                }
            }),
        );

        let exit_status = self.exit_status.clone();
        let bytes = self.bytes.clone();
        let lost = self.lost.clone();
        let events = data_of(output, exit_status, lost);
        let source: LocalBoxStream<'static, Bytes> = match (token, &self.markers) {
            (Some(token), Some(seen)) => {
                let seen = seen.clone();
                let mut ready_tx = Some(ready_tx);
                let on_event = move |event: MarkerEvent| {
                    let mut seen = seen.borrow_mut();
                    match event {
                        MarkerEvent::Probed { posix: true, .. } => {
                            if let Some(tx) = ready_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                        MarkerEvent::Probed { posix: false, shell } => seen.refused = Some(shell),
                        MarkerEvent::Began => seen.began = true,
                        MarkerEvent::Ended(status) => seen.ended = Some(status),
                        MarkerEvent::Aborted => seen.aborted = true,
                    }
                };
                filter_stream(events, MarkerFilter::new(&token), on_event).boxed_local()
            }
            _ => events.boxed_local(),
        };
        // counted after the markers: in shell mode, the command's output only
        let counted = crate::metrics::output_bytes("command");
        let source = source.inspect(move |data| {
            bytes.set(bytes.get() + data.len() as u64);
            counted.increment(data.len() as u64);
        });
        // recorded as it came (before decoding and the throttle)
        let source = recorded(source.boxed_local(), self.recorder());
        let Some(notify) = self.reporter.as_ref().map(Reporter::notifier) else {
            return;
        };
        self.listed = self.request.listed.as_ref().map(PtyTag::register);
        let feed = self.listed.as_ref().map(|l| l.feed().clone());
        let mut pipeline = OutputPipeline::new(
            self.request.server.encoding,
            self.request.throttle,
            self.request.stop_phrase.clone(),
        );
        ctx.spawn(
            async move {
                pump(&mut pipeline, source, |text| {
                    let notify = notify.clone();
                    // watchers see what the client sees, never waited for
                    if let Some(feed) = &feed {
                        feed.push(&text, NOBODY_WAITS);
                    }
                    // Awaiting the delivery is the backpressure: while the
                    // client's mailbox is full, the channel is not read.
                    async move { notify.send(text).await }
                })
                .await
            }
            .into_actor(self)
            .map(|end, act, ctx| match end {
                PumpEnd::SourceEnded if act.markers.is_some() => act.shell_mode_ended(ctx),
                // the connection went before the command told us how it
                // ended: say so, with the code of a failed connection
                PumpEnd::SourceEnded if act.lost.get() && act.exit_status.get().is_none() => {
                    let err = ssh::connection_lost(&act.request.server.name);
                    act.finish(FinishReason::Error, Some(err), ctx);
                }
                PumpEnd::SourceEnded => act.finish(FinishReason::Exit, None, ctx),
                PumpEnd::StopPhrase => act.finish(FinishReason::StopPhrase, None, ctx),
                PumpEnd::SinkClosed => act.finish(FinishReason::Cancelled, None, ctx),
            }),
        );
    }
}

impl SshShellActor {
    /// Shell mode: the output ended (end marker, refusal, or the channel
    /// went); says how the command ended.
    fn shell_mode_ended(&mut self, ctx: &mut Context<Self>) {
        let Some(seen) = self.markers.clone() else {
            return;
        };
        let seen = seen.borrow();
        let server = self.request.server.name.as_str();
        if let Some(shell) = &seen.refused {
            let err = not_posix(server, shell);
            self.finish(FinishReason::Error, Some(err), ctx);
        } else if let Some(status) = seen.ended {
            // the marker's status, not the shell's (which exits 0 after it)
            self.exit_status.set(status);
            self.finish(FinishReason::Exit, None, ctx);
        } else if seen.aborted {
            // the shell dropped the command line: no status to report
            self.exit_status.set(None);
            self.finish(FinishReason::Exit, None, ctx);
        } else if self.lost.get() {
            let err = ssh::connection_lost(server);
            self.finish(FinishReason::Error, Some(err), ctx);
        } else if !seen.began {
            let err = ended_before_start(server, self.exit_status.get());
            self.finish(FinishReason::Error, Some(err), ctx);
        } else {
            // the shell itself ended mid-command: its status is the answer
            self.finish(FinishReason::Exit, None, ctx);
        }
    }
}

impl Actor for SshShellActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(gate) = self.gate.take() else {
            return self.begin(ctx);
        };
        // held for review: nothing connects until the gate opens; a stop
        // meanwhile drops the gate, which withdraws the request
        ctx.spawn(gate.into_actor(self).map(|opened, act, ctx| match opened {
            Ok(()) => act.begin(ctx),
            Err(e) => act.finish(FinishReason::Error, Some(e), ctx),
        }));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // no longer listed nor watched: its watchers hear it ended
        self.listed.take();
        let completion = Completion {
            reason: self.reason.unwrap_or(FinishReason::Cancelled),
            exit_status: self.exit_status.get(),
            error: self.error.take(),
            bytes: self.bytes.get(),
        };
        // a command that never began (refused or withdrawn while held for
        // review) was never counted as started
        if self.began {
            crate::metrics::command_finished("command", completion.reason.as_str());
        }
        if let Some(recorder) = self.recorder() {
            recorder.end(RecordingEnd {
                reason: completion.reason.as_str().to_owned(),
                exit_status: completion.exit_status,
            });
        }
        log::info!(
            task_id = self.reporter.as_ref().map(|r| r.task_id().get()),
            server = self.request.server.name.as_str(),
            reason = completion.reason.as_str(),
            exit_status = completion.exit_status,
            bytes = completion.bytes;
            "ssh command finished"
        );
        let Some(reporter) = self.reporter.take() else {
            return;
        };
        // Close the channel, then the session: sshd hangs up the PTY and
        // the remote command dies. Detached, since the actor is gone;
        // `Finished` follows it, with its failure if it failed.
        let input = self.input.take();
        let session = self.session.take();
        let server = self.request.server.name.clone();
        actix::spawn(async move {
            let cleanup = async {
                if let Some(input) = input {
                    // closing an already closed channel is not a failure
                    let _ = input.close().await;
                }
                if let Some(session) = session {
                    session.disconnect().await?;
                }
                Ok::<(), AppError>(())
            };
            let failure = match tokio::time::timeout(CLEANUP_TIMEOUT, cleanup).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(AppError::with_detail(
                    ErrorCode::TaskCleanupFailed,
                    format!("server '{server}': {}", e.detail.unwrap_or_default()),
                )),
                Err(_) => Some(AppError::with_detail(
                    ErrorCode::TaskCleanupFailed,
                    format!("server '{server}': no disconnect within {CLEANUP_TIMEOUT:?}"),
                )),
            };
            if let Some(err) = &failure {
                log::error!(code = err.code.code(), error = err.to_string(); "ssh command cleanup failed");
            }
            reporter.finish(completion, failure);
        });
    }
}

impl Handler<ShellInput> for SshShellActor {
    type Result = Result<(), AppError>;

    fn handle(&mut self, ShellInput(text): ShellInput, _: &mut Context<Self>) -> Self::Result {
        if let Some(recorder) = self.recorder() {
            recorder.input(&text);
        }
        let Some(guard) = &mut self.guard else {
            return self.queue(InputOp::Write(text));
        };
        // the keystrokes go on at once; a refused line's Enter does not
        let passed = guard.pass(&text);
        self.queue(InputOp::Write(passed.write))?;
        passed.refused.map_or(Ok(()), Err)
    }
}

impl Handler<ShellResize> for SshShellActor {
    type Result = Result<(), AppError>;

    fn handle(&mut self, msg: ShellResize, _: &mut Context<Self>) -> Self::Result {
        if let Some(recorder) = self.recorder() {
            recorder.resize(msg.cols, msg.rows);
        }
        if self.input.is_none() {
            // Not connected yet: remembered, and applied once the PTY is
            // open if it differs from the size it was opened with.
            self.request.pty.cols = msg.cols;
            self.request.pty.rows = msg.rows;
            return Ok(());
        }
        self.queue(InputOp::Resize(msg.cols, msg.rows))
    }
}

impl Handler<Stop> for SshShellActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        self.finish(FinishReason::Cancelled, None, ctx);
    }
}
