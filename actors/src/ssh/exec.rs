//! [`SshSession::exec`]: one command without a PTY, its output capped and
//! its run time bounded.
//!
//! Without a PTY sshd never sends SIGHUP: closing the channel or dropping
//! the session leaves the command running on the server. So on timeout we
//! send TERM, then KILL after [`KILL_GRACE`], and only then close.

use std::time::Duration;

use log::warn;
use russh::client::Msg;
use russh::{Channel, ChannelMsg, Sig};
use tokio::time::Instant;

use super::session::SshSession;
use crate::error::{AppError, ErrorCode};

/// How long a command gets to die after TERM before KILL, and after KILL
/// before we close the channel regardless.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// Bounds on one [`SshSession::exec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecLimits {
    /// Bytes of stdout kept; the rest is read and discarded.
    pub max_stdout: usize,
    /// Bytes of stderr kept; the rest is read and discarded.
    pub max_stderr: usize,
    /// How long the command may run; `None` waits for it forever.
    pub timeout: Option<Duration>,
}

impl Default for ExecLimits {
    /// 1 MiB of each stream, no timeout.
    fn default() -> Self {
        ExecLimits {
            max_stdout: 1 << 20,
            max_stderr: 1 << 20,
            timeout: None,
        }
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit status, when the command exited normally.
    pub exit_status: Option<u32>,
    /// The signal that ended the command (`TERM`, `KILL`, ...), if any.
    pub exit_signal: Option<String>,
    /// Standard output, at most `max_stdout` bytes.
    pub stdout: Vec<u8>,
    /// Standard error, at most `max_stderr` bytes.
    pub stderr: Vec<u8>,
    /// Whether stdout had more than `max_stdout` bytes.
    pub stdout_truncated: bool,
    /// Whether stderr had more than `max_stderr` bytes.
    pub stderr_truncated: bool,
}

/// Appends what fits under `cap` and reports whether anything was dropped.
pub fn keep_up_to(buf: &mut Vec<u8>, cap: usize, data: &[u8]) -> bool {
    let room = cap.saturating_sub(buf.len());
    buf.extend_from_slice(&data[..room.min(data.len())]);
    data.len() > room
}

/// The name of a signal as sshd reports it (`TERM`).
pub(crate) fn signal_name(sig: &Sig) -> String {
    let name = match sig {
        Sig::ABRT => "ABRT",
        Sig::ALRM => "ALRM",
        Sig::FPE => "FPE",
        Sig::HUP => "HUP",
        Sig::ILL => "ILL",
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::PIPE => "PIPE",
        Sig::QUIT => "QUIT",
        Sig::SEGV => "SEGV",
        Sig::TERM => "TERM",
        Sig::USR1 => "USR1",
        Sig::Custom(name) => name,
    };
    name.to_owned()
}

impl SshSession {
    /// Runs `command` (through the login shell, as `ssh host command` does)
    /// without a PTY and collects its output, stdout and stderr apart.
    ///
    /// Output past the caps is still read, so the connection never stalls,
    /// and dropped with the `*_truncated` flag set. When `limits.timeout`
    /// passes, the remote process gets TERM, then KILL after
    /// [`KILL_GRACE`], the channel is closed and the result is
    /// [`ErrorCode::SshCommandTimeout`]. Closing alone would not do: sshd
    /// sends no SIGHUP to commands without a PTY.
    ///
    /// A command that runs but fails is `Ok` with its exit status; `Err`
    /// with [`ErrorCode::SshCommandFailed`] means it could not be run.
    pub async fn exec(&self, command: &str, limits: ExecLimits) -> Result<ExecOutput, AppError> {
        self.exec_until(command, limits, std::future::pending()).await
    }

    /// [`SshSession::exec`] that can be cancelled: when `cancel` completes
    /// first, the remote process gets TERM, then KILL (as on timeout), and
    /// the result is [`ErrorCode::SshCommandFailed`] saying it was
    /// cancelled. Dropping an `exec` future instead would leave the command
    /// running on the server, since a channel without a PTY gets no SIGHUP.
    pub async fn exec_until(
        &self,
        command: &str,
        limits: ExecLimits,
        cancel: impl std::future::Future<Output = ()>,
    ) -> Result<ExecOutput, AppError> {
        let failed = |what: String| {
            AppError::with_detail(
                ErrorCode::SshCommandFailed,
                format!("server '{}': {what}", self.server()),
            )
        };
        tokio::pin!(cancel);
        let deadline = limits.timeout.map(|t| Instant::now() + t);
        let timed_out = async move {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(timed_out);
        // Nothing runs on the server before the exec request, so a cancel
        // while the channel opens needs no signal.
        let mut channel = tokio::select! {
            opened = self.handle().channel_open_session() => {
                opened.map_err(|e| request_failed(self, "cannot open a channel", e))?
            }
            _ = &mut cancel => return Err(failed("cancelled before it started".into())),
        };
        channel
            .exec(true, command)
            .await
            .map_err(|e| request_failed(self, "cannot send the command", e))?;

        let mut out = ExecOutput::default();
        // whether the server closed the channel (as it does after the
        // command's end); the channel ending without that means the
        // session under it went
        let mut closed = false;
        loop {
            let next = tokio::select! {
                next = channel.wait() => next,
                _ = &mut timed_out => {
                    let ended_by = end_remote_command(&mut channel).await;
                    warn!(server = self.server(), ended_by = ended_by; "ssh command timed out");
                    return Err(AppError::with_detail(
                        ErrorCode::SshCommandTimeout,
                        format!(
                            "server '{}': command ran past {:?}; {ended_by}",
                            self.server(),
                            limits.timeout.unwrap_or_default()
                        ),
                    ));
                }
                _ = &mut cancel => {
                    let ended_by = end_remote_command(&mut channel).await;
                    log::info!(server = self.server(), ended_by = ended_by; "ssh command cancelled");
                    return Err(failed(format!("cancelled; {ended_by}")));
                }
            };
            let Some(msg) = next else { break };
            match msg {
                ChannelMsg::Data { data } => {
                    out.stdout_truncated |= keep_up_to(&mut out.stdout, limits.max_stdout, &data);
                }
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    out.stderr_truncated |= keep_up_to(&mut out.stderr, limits.max_stderr, &data);
                }
                ChannelMsg::ExitStatus { exit_status } => out.exit_status = Some(exit_status),
                ChannelMsg::ExitSignal { signal_name: sig, .. } => out.exit_signal = Some(signal_name(&sig)),
                // the only request we made with want_reply is the exec
                ChannelMsg::Failure => return Err(failed("the server refused to run the command".into())),
                ChannelMsg::Close => closed = true,
                _ => {}
            }
        }
        if !closed && out.exit_status.is_none() && out.exit_signal.is_none() {
            // an empty "identical" diff or a "succeeded" batch command
            // must not come out of a connection that died under them
            return Err(connection_lost(self.server()));
        }
        Ok(out)
    }
}

/// 20000 for a command whose session ended under it before it said how it
/// ended (the connection dropped, or the server stopped answering
/// keepalives). Shared by exec and the PTY shell.
/// A request russh could not make on `session` (open a channel, send a
/// command, ask for a PTY): the connection lost (20000) when the session's
/// task is gone, as for a channel that ends without a status (which of the
/// two a dying server causes is only timing); else the command failed
/// (22000) with `what` and the cause.
pub(crate) fn request_failed(session: &SshSession, what: &str, e: russh::Error) -> AppError {
    if matches!(e, russh::Error::SendError) || session.is_closed() {
        log::debug!(server = session.server(), error = e.to_string(); "{what}: the session is gone");
        return connection_lost(session.server());
    }
    AppError::with_detail(
        ErrorCode::SshCommandFailed,
        format!("server '{}': {what}: {e}", session.server()),
    )
}

pub fn connection_lost(server: &str) -> AppError {
    AppError::with_detail(
        ErrorCode::SshConnectionFailed,
        format!(
            "server '{server}': the connection was lost before the command ended (it dropped, or the server stopped answering keepalives)"
        ),
    )
}

/// TERM, then KILL, then close; draining the channel all along. Says how
/// the command ended, for the error detail.
async fn end_remote_command(channel: &mut Channel<Msg>) -> &'static str {
    let mut ended_by = "it did not end after TERM and KILL; channel closed";
    for (sig, outcome) in [
        (Sig::TERM, "ended it with TERM"),
        (Sig::KILL, "ended it with KILL"),
    ] {
        if channel.signal(sig).await.is_err() {
            ended_by = "the channel was already closed";
            break;
        }
        if wait_for_exit(channel, KILL_GRACE).await {
            ended_by = outcome;
            break;
        }
    }
    // never wait() after close() (NOTES-russh gotcha 2)
    let _ = channel.close().await;
    ended_by
}

/// Drains the channel until the command reports its end or `grace` passes.
async fn wait_for_exit(channel: &mut Channel<Msg>, grace: Duration) -> bool {
    let drained = tokio::time::timeout(grace, async {
        while let Some(msg) = channel.wait().await {
            if matches!(msg, ChannelMsg::ExitStatus { .. } | ChannelMsg::ExitSignal { .. }) {
                return;
            }
        }
    });
    drained.await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_beyond_the_cap_is_dropped_and_flagged() {
        let mut buf = Vec::new();
        assert!(!keep_up_to(&mut buf, 5, b"abc"));
        assert!(keep_up_to(&mut buf, 5, b"defg"));
        assert!(keep_up_to(&mut buf, 5, b"h"));
        assert_eq!(buf, b"abcde");
    }

    #[test]
    fn a_zero_cap_keeps_nothing_but_still_notices_output() {
        let mut buf = Vec::new();
        assert!(!keep_up_to(&mut buf, 0, b""));
        assert!(keep_up_to(&mut buf, 0, b"x"));
        assert!(buf.is_empty());
    }

    #[test]
    fn signal_names_are_the_protocol_names() {
        assert_eq!(signal_name(&Sig::TERM), "TERM");
        assert_eq!(signal_name(&Sig::Custom("WINCH".into())), "WINCH");
    }
}
