//! One server's part of a run: [`run_server`] runs the commands in order
//! through a [`ServerLink`], with the retry, delay and stop-on-error rules.
//! Written against the trait so those rules are unit-tested with paused
//! time and a scripted link (`worker/tests.rs`).

use futures_util::future::LocalBoxFuture;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::link::{Cancel, ServerLink};
use super::plan::{CommandResult, CommandStatus, RetryPolicy};
use crate::error::{AppError, ErrorCode};
use crate::policy::Checks;
use crate::server::ServerSpec;

/// What one server runs, and the rules it runs them by.
#[derive(Clone, Copy)]
pub struct ServerWork<'a> {
    /// The commands, in order.
    pub commands: &'a [String],
    /// Retries and stop-on-error.
    pub policy: RetryPolicy,
    /// The command rules, asked of each command at its turn.
    pub checks: &'a Checks,
}

/// Whether `e` means the server could not be reached at all (so the next
/// commands would fail the same way).
pub(crate) fn is_connection_error(e: &AppError) -> bool {
    matches!(
        e.code,
        ErrorCode::SshConnectionFailed
            | ErrorCode::SshConnectionTimeout
            | ErrorCode::SshHostKeyRejected
            | ErrorCode::SshAuthFailed
    )
}

/// Runs `commands` in order on one server through `link`, reporting each
/// result to `report` as it is known and awaiting the report before the
/// next command (so a client that records slowly slows the run instead of
/// growing a queue).
///
/// A failed attempt (non-zero exit, signal, timeout, connection error) is
/// retried up to `policy.retries` times, `policy.retry_delay` apart. A
/// command that still fails stops the server's run under
/// `policy.stop_on_error`: the rest are reported skipped. When the server
/// cannot be reached (20000-21000 after the retries), the rest are not
/// tried: they are reported with that error, failed (or skipped under
/// `stop_on_error`). On cancel it returns at once, reporting nothing more.
/// The link is closed at the end either way.
///
/// A command runs only with a permit of `gate`, held from its first
/// attempt until its result was reported: the run's servers share one
/// gate, so what a run holds in output at once is bounded by the gate's
/// permits, not by its number of servers.
pub async fn run_server(
    server: &ServerSpec,
    link: &mut dyn ServerLink,
    work: ServerWork<'_>,
    cancel: &Cancel,
    gate: &Semaphore,
    report: &mut dyn FnMut(CommandResult) -> LocalBoxFuture<'static, ()>,
) {
    let ServerWork {
        commands,
        policy,
        checks,
    } = work;
    let mut stopped = false;
    let mut unreachable: Option<AppError> = None;
    for (index, command) in commands.iter().enumerate() {
        if cancel.is_cancelled() {
            break;
        }
        let mut result = CommandResult {
            run_id: String::new(),
            server: server.name.clone(),
            index,
            command: command.clone(),
            status: CommandStatus::Skipped,
            exit_status: None,
            exit_signal: None,
            stdout: String::new(),
            stderr: String::new(),
            truncated: false,
            attempts: 0,
            duration_ms: 0,
            error: None,
        };
        if let Some(e) = &unreachable {
            if !policy.stop_on_error {
                result.status = CommandStatus::Failed;
            }
            result.error = Some(e.clone());
            report(result).await;
            continue;
        }
        if stopped {
            report(result).await;
            continue;
        }
        // the command rules, before any permit is taken: a held command
        // waits without holding a share of the run's output budget
        let held = match checks.check(server, command) {
            Ok(held) => held,
            Err(e) => {
                refused(&mut result, e, policy, &mut stopped);
                report(result).await;
                continue;
            }
        };
        if let Some(released) = held {
            let answer = tokio::select! {
                answer = released => answer,
                _ = cancel.cancelled() => {
                    link.close().await;
                    return;
                }
            };
            if let Err(e) = answer {
                refused(&mut result, e, policy, &mut stopped);
                report(result).await;
                continue;
            }
        }
        // never closed, so only a cancel ends the wait
        let _permit = tokio::select! {
            permit = gate.acquire() => permit.ok(),
            _ = cancel.cancelled() => {
                link.close().await;
                return;
            }
        };
        let started = Instant::now();
        let outcome = loop {
            result.attempts += 1;
            let outcome = link.exec(command).await;
            if cancel.is_cancelled() {
                link.close().await;
                return;
            }
            let ok = matches!(&outcome, Ok(out) if out.exit_status == Some(0));
            if ok || result.attempts > policy.retries {
                break outcome;
            }
            log::debug!(server = server.name.as_str(), index = index, attempt = result.attempts; "batch: attempt failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(policy.retry_delay) => {}
                _ = cancel.cancelled() => {
                    link.close().await;
                    return;
                }
            }
        };
        result.duration_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(out) => {
                let decode = |bytes: &[u8]| server.encoding.decode_without_bom_handling(bytes).0.into_owned();
                result.status = if out.exit_status == Some(0) {
                    CommandStatus::Succeeded
                } else {
                    CommandStatus::Failed
                };
                result.exit_status = out.exit_status;
                result.exit_signal = out.exit_signal;
                result.stdout = decode(&out.stdout);
                result.stderr = decode(&out.stderr);
                result.truncated = out.stdout_truncated || out.stderr_truncated;
            }
            Err(e) => {
                result.status = CommandStatus::Failed;
                if is_connection_error(&e) {
                    unreachable = Some(e.clone());
                }
                result.error = Some(e);
            }
        }
        if result.status == CommandStatus::Failed && policy.stop_on_error {
            stopped = true;
        }
        report(result).await;
    }
    link.close().await;
}

/// A command the rules refused, or its reviewer rejected: failed, unrun
/// (no attempt), and under stop-on-error the rest are skipped.
fn refused(result: &mut CommandResult, e: AppError, policy: RetryPolicy, stopped: &mut bool) {
    result.status = CommandStatus::Failed;
    result.error = Some(e);
    if policy.stop_on_error {
        *stopped = true;
    }
}

#[cfg(test)]
mod tests;
