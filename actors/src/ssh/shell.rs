//! [`SshSession::open_shell`]: an interactive login shell on a PTY.
//!
//! The shell comes in two halves so input and output can live in different
//! tasks: [`ShellInput`] (cheap to clone: keystrokes, resize, Ctrl-C,
//! close) and [`ShellOutput`] (the ordered events: output, exit, close).
//!
//! **Drain [`ShellOutput`] continuously**, in a task of its own, and apply
//! any slow-client policy on your side of it: russh reopens the SSH window
//! when a packet arrives, not when it is read, so an unread shell stalls
//! every channel of the session once its queue (100 messages) is full. A
//! busy PTY delivers ~22,000 messages of ~4.4 KB a second: coalesce before
//! building WebSocket frames.
//!
//! What ends the remote shell: [`ShellInput::close`], dropping the session
//! or [`SshSession::disconnect`] (sshd hangs up the pty, killing what runs
//! in it); [`ShellInput::interrupt`] kills the foreground command only. A
//! TERM signal or EOF does not end bash.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};

use super::exec::{connection_lost, request_failed, signal_name};
use super::session::SshSession;
use crate::error::{AppError, ErrorCode};

/// How long the server gets to grant the PTY and the shell.
const SHELL_START_TIMEOUT: Duration = Duration::from_secs(10);

/// The terminal a shell runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtyRequest {
    /// `TERM` for the remote side (`xterm-256color`).
    pub term: String,
    /// Width in character cells.
    pub cols: u32,
    /// Height in character cells.
    pub rows: u32,
}

/// Something that happened on a shell, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellEvent {
    /// Terminal output (stdout and stderr share the PTY).
    Output(Bytes),
    /// The shell exited with this status.
    ExitStatus(u32),
    /// The shell was ended by this signal (`HUP`, `KILL`, ...).
    ExitSignal(String),
    /// The server will send no more output.
    Eof,
    /// The channel is closed; nothing follows.
    Closed,
    /// The session ended before the server closed the channel: the
    /// connection dropped, or the server stopped answering keepalives
    /// (`SshOptions::keepalive`). Nothing follows, and whatever ran there
    /// ended without telling us how.
    Lost,
}

/// An interactive shell: both halves together. Split it with
/// [`ShellChannel::into_parts`] to read and write from different tasks.
#[derive(Debug)]
pub struct ShellChannel {
    input: ShellInput,
    output: ShellOutput,
}

impl ShellChannel {
    /// The writing half (keystrokes, resize, close).
    pub fn input(&self) -> &ShellInput {
        &self.input
    }

    /// The next event; see [`ShellOutput::next_event`].
    pub async fn next_event(&mut self) -> Option<ShellEvent> {
        self.output.next_event().await
    }

    /// Splits into the writing and the reading half.
    pub fn into_parts(self) -> (ShellInput, ShellOutput) {
        (self.input, self.output)
    }
}

/// The writing half of a shell; clones share the channel.
#[derive(Debug, Clone)]
pub struct ShellInput {
    half: Arc<ChannelWriteHalf<Msg>>,
    /// The server name, for error details.
    server: Arc<str>,
}

impl ShellInput {
    fn failed(&self, what: &str, e: russh::Error) -> AppError {
        AppError::with_detail(
            ErrorCode::SshCommandFailed,
            format!("server '{}': shell {what} failed: {e}", self.server),
        )
    }

    /// Sends keystrokes (or pasted text) to the shell. Waits while the
    /// server's window is full.
    pub async fn write(&self, data: impl Into<Bytes>) -> Result<(), AppError> {
        self.half
            .data_bytes(data.into())
            .await
            .map_err(|e| self.failed("write", e))
    }

    /// Tells the remote PTY its new size (`window-change`).
    pub async fn resize(&self, cols: u32, rows: u32) -> Result<(), AppError> {
        self.half
            .window_change(cols, rows, 0, 0)
            .await
            .map_err(|e| self.failed("resize", e))
    }

    /// Sends Ctrl-C, which the PTY turns into SIGINT for the foreground
    /// command; the shell itself survives.
    pub async fn interrupt(&self) -> Result<(), AppError> {
        self.write(Bytes::from_static(b"\x03")).await
    }

    /// Closes the channel; sshd hangs up the PTY, which ends the shell and
    /// what runs in it. [`ShellOutput`] then ends; keep draining it, but
    /// expect no [`ShellEvent::Closed`] if the server never answers.
    pub async fn close(&self) -> Result<(), AppError> {
        self.half.close().await.map_err(|e| self.failed("close", e))
    }
}

/// The reading half of a shell. Drain it continuously (see the module
/// documentation).
#[derive(Debug)]
pub struct ShellOutput {
    half: ChannelReadHalf,
    /// Output that arrived while we waited for the shell to be granted.
    early: std::collections::VecDeque<ShellEvent>,
    /// Set once [`ShellEvent::Closed`] has been handed out.
    closed: bool,
}

impl ShellOutput {
    /// The next event, or `None` once [`ShellEvent::Closed`] or
    /// [`ShellEvent::Lost`] has been returned. Cancel-safe: dropping the
    /// future loses nothing.
    pub async fn next_event(&mut self) -> Option<ShellEvent> {
        if let Some(event) = self.early.pop_front() {
            return Some(event);
        }
        if self.closed {
            return None;
        }
        loop {
            let event = match self.half.wait().await {
                None => ShellEvent::Lost,
                Some(ChannelMsg::Close) => ShellEvent::Closed,
                Some(msg) => match translate(msg) {
                    Some(event) => event,
                    None => continue,
                },
            };
            if matches!(event, ShellEvent::Closed | ShellEvent::Lost) {
                self.closed = true;
            }
            return Some(event);
        }
    }

    /// The events as a `Stream`, ending after [`ShellEvent::Closed`].
    pub fn into_stream(self) -> impl Stream<Item = ShellEvent> + Send + Unpin {
        Box::pin(futures_util::stream::unfold(self, |mut output| async move {
            output.next_event().await.map(|event| (event, output))
        }))
    }
}

/// The shell's view of a channel message; `None` for protocol chatter.
fn translate(msg: ChannelMsg) -> Option<ShellEvent> {
    match msg {
        ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => Some(ShellEvent::Output(data)),
        ChannelMsg::ExitStatus { exit_status } => Some(ShellEvent::ExitStatus(exit_status)),
        ChannelMsg::ExitSignal { signal_name: sig, .. } => Some(ShellEvent::ExitSignal(signal_name(&sig))),
        ChannelMsg::Eof => Some(ShellEvent::Eof),
        ChannelMsg::Close => Some(ShellEvent::Closed),
        _ => None,
    }
}

impl SshSession {
    /// Opens a login shell on a PTY of the given size and returns once the
    /// server has granted both. Errors are [`ErrorCode::SshCommandFailed`].
    pub async fn open_shell(&self, pty: PtyRequest) -> Result<ShellChannel, AppError> {
        self.open_pty(pty, None).await
    }

    /// Opens a PTY and runs `command` on it through the user's login shell
    /// (`exec` with a PTY), or an interactive login shell when `command` is
    /// `None`. The command's own exit status ends the channel, so callers
    /// learn how it exited; interactive programs, prompts, Ctrl-C and
    /// `stty size` work as in a terminal.
    pub async fn open_pty(&self, pty: PtyRequest, command: Option<&str>) -> Result<ShellChannel, AppError> {
        let server: Arc<str> = Arc::from(self.server());
        let failed = |what: String| {
            AppError::with_detail(ErrorCode::SshCommandFailed, format!("server '{server}': {what}"))
        };
        let channel = self
            .handle()
            .channel_open_session()
            .await
            .map_err(|e| request_failed(self, "cannot open a channel", e))?;
        channel
            .request_pty(true, &pty.term, pty.cols, pty.rows, 0, 0, &[])
            .await
            .map_err(|e| request_failed(self, "cannot request a pty", e))?;
        match command {
            Some(command) => channel
                .exec(true, command)
                .await
                .map_err(|e| request_failed(self, "cannot run the command", e))?,
            None => channel
                .request_shell(true)
                .await
                .map_err(|e| request_failed(self, "cannot request a shell", e))?,
        }
        let (read, write) = channel.split();
        let mut output = ShellOutput {
            half: read,
            early: Default::default(),
            closed: false,
        };
        // want_reply does not wait (NOTES gotcha 4): the two answers arrive
        // on the channel, maybe behind the first output
        let granted = tokio::time::timeout(SHELL_START_TIMEOUT, async {
            let mut answers = 0;
            while answers < 2 {
                match output.half.wait().await {
                    Some(ChannelMsg::Success) => answers += 1,
                    Some(ChannelMsg::Failure) => {
                        let what = if answers == 0 { "pty" } else { "shell" };
                        return Err(failed(format!("the server refused the {what}")));
                    }
                    // the connection died under the start (the server went
                    // silent after running the command, before its two
                    // answers came through): 20000, as for a channel
                    // that dies later; which of the two a dying server
                    // causes is only timing
                    None => return Err(connection_lost(&server)),
                    Some(ChannelMsg::Close) if self.is_closed() => return Err(connection_lost(&server)),
                    Some(ChannelMsg::Close) => {
                        return Err(failed("the channel closed before the shell started".into()))
                    }
                    Some(msg) => output.early.extend(translate(msg)),
                }
            }
            Ok(())
        })
        .await;
        match granted {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                let _ = write.close().await;
                return Err(error);
            }
            Err(_) => {
                let _ = write.close().await;
                return Err(failed(format!("no shell within {SHELL_START_TIMEOUT:?}")));
            }
        }
        Ok(ShellChannel {
            input: ShellInput {
                half: Arc::new(write),
                server,
            },
            output,
        })
    }
}
