//! [`run_captured`]: a command run in shell mode whose output is a result
//! rather than a terminal (BMX4 commands, `diff_command`): the shell-mode
//! counterpart of `SshSession::exec_until`.
//!
//! The output comes from a PTY, so stdout and stderr arrive merged, in the
//! order written: [`ExecOutput::stdout`] holds both and `stderr` stays
//! empty. Lines end in `\n` (`stty -onlcr`), stdin is `/dev/null`, `TERM`
//! is `dumb`. Ending it is closing the channel: sshd hangs up the PTY, and
//! the hang-up reaches the shell and, job control being off, every process
//! of the command (unless one left the terminal's session on purpose).

use std::future::Future;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::lines::{command_lines, probe_lines, Flavour, Token};
use super::markers::{MarkerEvent, MarkerFilter};
use super::{ended_before_start, not_posix, type_command};
use crate::error::{AppError, ErrorCode};
use crate::ssh::{connection_lost, keep_up_to, ExecLimits, ExecOutput, PtyRequest, ShellEvent, SshSession};

/// The terminal a captured command gets: no colours, wide lines.
fn captured_pty() -> PtyRequest {
    PtyRequest {
        term: "dumb".to_owned(),
        cols: 400,
        rows: 50,
    }
}

/// How the exchange ended, before it is turned into a result.
#[derive(Default)]
struct Seen {
    refused: Option<String>,
    ended: Option<Option<u32>>,
    aborted: bool,
    lost: bool,
    shell_status: Option<u32>,
    shell_signal: Option<String>,
}

/// Runs `command` in the login shell of `session`'s server on a PTY and
/// collects its (merged) output, at most `limits.max_stdout` bytes. Like
/// `exec_until`: 22001 after `limits.timeout`, 22000 when `cancel`
/// completes first, 22002 when the login shell cannot run it; a command
/// that runs but fails is `Ok` with its status.
pub async fn run_captured(
    session: &SshSession,
    command: &str,
    limits: ExecLimits,
    cancel: impl Future<Output = ()>,
) -> Result<ExecOutput, AppError> {
    let server = session.server();
    let deadline = limits.timeout.map(|t| Instant::now() + t);
    let timed_out = async move {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(cancel, timed_out);
    let (input, mut output) = session.open_shell(captured_pty()).await?.into_parts();

    let token = Token::random();
    let mut filter = MarkerFilter::new(&token);
    let (ready_tx, ready_rx) = oneshot::channel();
    let mut ready_tx = Some(ready_tx);
    let writer = input.clone();
    // typed while the output is read: the shell echoes what it is given,
    // and an unread channel would stall the writes (NOTES-russh gotcha 1)
    let typing = type_command(
        server,
        probe_lines(&token),
        command_lines(&token, command, Flavour::Captured),
        ready_rx,
        move |bytes| {
            let writer = writer.clone();
            async move { writer.write(bytes).await }
        },
    );
    tokio::pin!(typing);
    let mut typing_done = false;
    let mut out = ExecOutput::default();
    let mut seen = Seen::default();
    let result = loop {
        tokio::select! {
            typed = &mut typing, if !typing_done => {
                typing_done = true;
                if let Err(e) = typed {
                    break Err(e);
                }
            }
            event = output.next_event() => match event {
                Some(ShellEvent::Output(data)) => {
                    let filtered = filter.push(&data);
                    out.stdout_truncated |= keep_up_to(&mut out.stdout, limits.max_stdout, &filtered.output);
                    for event in filtered.events {
                        match event {
                            MarkerEvent::Probed { posix: true, .. } => {
                                if let Some(tx) = ready_tx.take() {
                                    let _ = tx.send(());
                                }
                            }
                            MarkerEvent::Probed { posix: false, shell } => seen.refused = Some(shell),
                            MarkerEvent::Began => {}
                            MarkerEvent::Ended(status) => seen.ended = Some(status),
                            MarkerEvent::Aborted => seen.aborted = true,
                        }
                    }
                    if filter.is_done() {
                        break Ok(());
                    }
                }
                Some(ShellEvent::ExitStatus(status)) => seen.shell_status = Some(status),
                Some(ShellEvent::ExitSignal(signal)) => seen.shell_signal = Some(signal),
                Some(ShellEvent::Eof) => {}
                Some(ShellEvent::Closed) | None => break Ok(()),
                Some(ShellEvent::Lost) => {
                    seen.lost = true;
                    break Ok(());
                }
            },
            _ = &mut timed_out => break Err(AppError::with_detail(
                ErrorCode::SshCommandTimeout,
                format!(
                    "server '{server}': command ran past {:?}; its terminal was closed",
                    limits.timeout.unwrap_or_default()
                ),
            )),
            _ = &mut cancel => break Err(AppError::with_detail(
                ErrorCode::SshCommandFailed,
                format!("server '{server}': cancelled; its terminal was closed"),
            )),
        }
    };
    // closing hangs up the PTY: whatever still runs there ends (never
    // wait() after close(): NOTES-russh gotcha 2)
    let _ = input.close().await;
    result?;
    let held = filter.finish();
    if let Some(shell) = seen.refused {
        return Err(not_posix(server, &shell));
    }
    if let Some(status) = seen.ended {
        out.exit_status = status;
        return Ok(out);
    }
    if seen.aborted {
        // the shell abandoned the line: no status to report
        return Ok(out);
    }
    if seen.lost {
        return Err(connection_lost(server));
    }
    if !filter.began() {
        return Err(ended_before_start(server, seen.shell_status));
    }
    // the shell itself ended mid-command (killed, `set -e`): its status
    out.stdout_truncated |= keep_up_to(&mut out.stdout, limits.max_stdout, &held);
    out.exit_status = seen.shell_status;
    out.exit_signal = seen.shell_signal;
    Ok(out)
}
