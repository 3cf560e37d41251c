//! `BatchRunActor`: one batch run (BMX4's `batch_execute`), from the first
//! connection to the last result.
//!
//! What it owns: the run's plan (servers, commands, retry policy, output
//! caps), the cancel signal its per-server workers watch, and the tally of
//! results. Each server gets one worker task holding ONE connection for
//! the whole run (an exec channel per command, no reconnect per command);
//! the workers of different servers run in parallel.
//!
//! Who sends it what: whoever started it (the BMX4 WebSocket connection)
//! may send [`StopRun`]. It sends [`BatchEvent`]s to the `Recipient` it was
//! given: a [`BatchEvent::Result`] per command as it finishes (skipped ones
//! too), then exactly one [`BatchEvent::Complete`], always last. It knows
//! nothing of JSON or SQLite.
//!
//! When it stops: every server's worker has finished, or it is told to
//! stop (cancel, client gone). Cancelling *is* stopping: `stopping()` fires
//! the cancel signal (dropping the actor fires it too), and each worker
//! then ends its remote command with TERM and KILL (commands without a PTY
//! get no SIGHUP when a channel closes: NOTES-russh), disconnects and ends.
//! Results of commands still running at that moment are not reported; the
//! completion counts them as skipped and says `cancelled`.
//!
//! How one command runs lives in [`run_server`], written against the
//! [`ServerLink`] trait so the retry, delay and stop-on-error rules are
//! unit-tested with paused time and a scripted link; the real link is
//! [`SshLinkFactory`].

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message, Recipient};
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::{AppError, ErrorCode};
use crate::server::ServerSpec;
use crate::ssh::{self, ExecLimits, ExecOutput, SshOptions, SshSession};

/// How failed commands are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts after a failed one (0: run once).
    pub retries: u32,
    /// Pause between a failed attempt and the next.
    pub retry_delay: Duration,
    /// Whether a command that still fails after its retries ends the
    /// server's run (the rest are reported skipped).
    pub stop_on_error: bool,
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    /// The run's id, made by the caller; echoed in every event.
    pub run_id: String,
    /// Servers, each run in parallel with the others.
    pub servers: Vec<Arc<ServerSpec>>,
    /// Commands, run in order on every server.
    pub commands: Vec<String>,
    /// Retries and stop-on-error.
    pub policy: RetryPolicy,
    /// Output caps and the per-attempt timeout.
    pub limits: ExecLimits,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    /// Exit status 0 (possibly after retries).
    Succeeded,
    /// Non-zero exit, signal, timeout or error on the last attempt.
    Failed,
    /// Not run: an earlier command failed under `stop_on_error`, or the
    /// server could not be reached.
    Skipped,
}

impl CommandStatus {
    /// The wire and database name.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Succeeded => "succeeded",
            CommandStatus::Failed => "failed",
            CommandStatus::Skipped => "skipped",
        }
    }
}

/// One command on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// The run.
    pub run_id: String,
    /// Server name.
    pub server: String,
    /// Position of the command in the run's list (0-based).
    pub index: usize,
    /// The command line.
    pub command: String,
    /// How it ended.
    pub status: CommandStatus,
    /// Exit status of the last attempt, when it exited.
    pub exit_status: Option<u32>,
    /// Signal that ended the last attempt (`TERM`, ...), if any.
    pub exit_signal: Option<String>,
    /// Standard output of the last attempt, decoded with the server's
    /// encoding (invalid bytes become U+FFFD), at most the cap.
    pub stdout: String,
    /// Standard error of the last attempt, likewise.
    pub stderr: String,
    /// Whether stdout or stderr had more than the cap.
    pub truncated: bool,
    /// Attempts made (0 when skipped).
    pub attempts: u32,
    /// From the first attempt's start to the last one's end, retry delays
    /// included.
    pub duration_ms: u64,
    /// Why the last attempt failed without an exit status (timeout 22001,
    /// connection 20000-21000, ...), or why the command was skipped after a
    /// connection failure.
    pub error: Option<AppError>,
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    /// The run.
    pub run_id: String,
    /// Commands that succeeded (over all servers).
    pub succeeded: u32,
    /// Commands that failed.
    pub failed: u32,
    /// Commands skipped, including those not run because of a cancel.
    pub skipped: u32,
    /// From the actor's start to its end.
    pub duration_ms: u64,
    /// Whether the run was stopped before it finished.
    pub cancelled: bool,
    /// Servers where no command could run because the connection failed
    /// (with the error), for the "whole run could not start" summary.
    pub unreachable: Vec<(String, AppError)>,
}

/// What the run tells its client.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum BatchEvent {
    /// One command finished (or was skipped).
    Result(Box<CommandResult>),
    /// The run is over; nothing follows.
    Complete(BatchSummary),
}

/// Stop the run now (cancel). Replies once the actor is stopping.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopRun;

/// The cancel signal the workers watch: set by the actor, and also seen as
/// set when the actor (the sender) is gone.
#[derive(Debug, Clone)]
pub struct Cancel(watch::Receiver<bool>);

impl Cancel {
    /// A signal and its trigger.
    pub fn new() -> (watch::Sender<bool>, Cancel) {
        let (tx, rx) = watch::channel(false);
        (tx, Cancel(rx))
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Completes when the run is cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.0.clone();
        // An error means the sender is gone: the actor has stopped.
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// One server's connection as [`run_server`] sees it; the real one is made
/// by [`SshLinkFactory`], tests script their own.
pub trait ServerLink {
    /// One attempt at `command`. `Ok` when it ran (any exit status); `Err`
    /// when it could not run, timed out (22001) or was cancelled.
    fn exec<'a>(&'a mut self, command: &'a str) -> LocalBoxFuture<'a, Result<ExecOutput, AppError>>;

    /// Ends the connection; called once when the server's run is over.
    fn close(&mut self) -> LocalBoxFuture<'_, ()>;
}

/// Makes the [`ServerLink`] of each server of a run.
pub trait LinkFactory {
    /// A link to `server` whose commands end when `cancel` fires.
    fn link(&self, server: &Arc<ServerSpec>, limits: ExecLimits, cancel: Cancel) -> Box<dyn ServerLink>;
}

/// Real links: one SSH connection per server, opened at the first attempt
/// and reopened only if it is lost.
#[derive(Debug, Clone)]
pub struct SshLinkFactory {
    /// How to connect.
    pub ssh: Arc<SshOptions>,
}

impl LinkFactory for SshLinkFactory {
    fn link(&self, server: &Arc<ServerSpec>, limits: ExecLimits, cancel: Cancel) -> Box<dyn ServerLink> {
        Box::new(SshLink {
            server: Arc::clone(server),
            ssh: Arc::clone(&self.ssh),
            limits,
            cancel,
            session: None,
        })
    }
}

struct SshLink {
    server: Arc<ServerSpec>,
    ssh: Arc<SshOptions>,
    limits: ExecLimits,
    cancel: Cancel,
    /// Open once the first attempt connected; dropped when it is found
    /// closed, so the next attempt reconnects.
    session: Option<SshSession>,
}

impl ServerLink for SshLink {
    fn exec<'a>(&'a mut self, command: &'a str) -> LocalBoxFuture<'a, Result<ExecOutput, AppError>> {
        async move {
            if self.session.as_ref().is_some_and(SshSession::is_closed) {
                self.session = None;
            }
            let session = match &mut self.session {
                Some(session) => session,
                slot @ None => {
                    let cancel = self.cancel.clone();
                    let connected = tokio::select! {
                        s = ssh::connect(&self.server, &self.ssh) => s?,
                        _ = cancel.cancelled() => return Err(cancelled(&self.server.name)),
                    };
                    slot.insert(connected)
                }
            };
            let cancel = self.cancel.clone();
            let result = session
                .exec_until(command, self.limits, async move { cancel.cancelled().await })
                .await;
            if result.is_err() && session.is_closed() {
                // the connection went down under the command: report the
                // connection, not the channel, and reconnect next time
                self.session = None;
                return result.map_err(|e| {
                    AppError::with_detail(
                        ErrorCode::SshConnectionFailed,
                        e.detail.unwrap_or_else(|| "connection lost".into()),
                    )
                });
            }
            result
        }
        .boxed_local()
    }

    fn close(&mut self) -> LocalBoxFuture<'_, ()> {
        async move {
            if let Some(session) = self.session.take() {
                if let Err(e) = session.disconnect().await {
                    log::warn!(server = self.server.name.as_str(), error = e.to_string(); "batch: disconnect failed");
                }
            }
        }
        .boxed_local()
    }
}

fn cancelled(server: &str) -> AppError {
    AppError::with_detail(
        ErrorCode::SshCommandFailed,
        format!("server '{server}': run cancelled"),
    )
}

/// Whether `e` means the server could not be reached at all (so the next
/// commands would fail the same way).
fn is_connection_error(e: &AppError) -> bool {
    matches!(
        e.code,
        ErrorCode::SshConnectionFailed
            | ErrorCode::SshConnectionTimeout
            | ErrorCode::SshHostKeyRejected
            | ErrorCode::SshAuthFailed
    )
}

/// Runs `commands` in order on one server through `link`, reporting each
/// result to `report` as it is known.
///
/// A failed attempt (non-zero exit, signal, timeout, connection error) is
/// retried up to `policy.retries` times, `policy.retry_delay` apart. A
/// command that still fails stops the server's run under
/// `policy.stop_on_error`: the rest are reported skipped. When the server
/// cannot be reached (20000-21000 after the retries), the rest are not
/// tried: they are reported with that error, failed (or skipped under
/// `stop_on_error`). On cancel it returns at once, reporting nothing more.
/// The link is closed at the end either way.
pub async fn run_server(
    server: &ServerSpec,
    link: &mut dyn ServerLink,
    commands: &[String],
    policy: RetryPolicy,
    cancel: &Cancel,
    report: &mut dyn FnMut(CommandResult),
) {
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
            report(result);
            continue;
        }
        if stopped {
            report(result);
            continue;
        }
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
        report(result);
    }
    link.close().await;
}

/// A result from a worker.
#[derive(Message)]
#[rtype(result = "()")]
struct Report(CommandResult);

/// A worker is done with its server.
#[derive(Message)]
#[rtype(result = "()")]
struct ServerFinished;

/// The actor. See the module docs.
pub struct BatchRunActor {
    plan: BatchPlan,
    links: Rc<dyn LinkFactory>,
    notify: Recipient<BatchEvent>,
    /// Fired in `stopping()`; dropping it (with the actor) fires it too.
    cancel: watch::Sender<bool>,
    /// Handed to each worker.
    cancel_rx: Cancel,
    started: Instant,
    succeeded: u32,
    failed: u32,
    /// Reported as skipped (cancelled ones are added at the end).
    skipped: u32,
    /// Workers still running.
    servers_left: usize,
    /// Servers whose every command failed to connect.
    unreachable: Vec<(String, AppError)>,
}

impl BatchRunActor {
    /// An actor that will run `plan` with links from `links` and report to
    /// `notify` once started.
    pub fn new(plan: BatchPlan, links: Rc<dyn LinkFactory>, notify: Recipient<BatchEvent>) -> Self {
        let (cancel, cancel_rx) = Cancel::new();
        BatchRunActor {
            servers_left: plan.servers.len(),
            plan,
            links,
            notify,
            cancel,
            cancel_rx,
            started: Instant::now(),
            succeeded: 0,
            failed: 0,
            skipped: 0,
            unreachable: Vec::new(),
        }
    }
}

impl Actor for BatchRunActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::info!(
            run_id = self.plan.run_id.as_str(),
            servers = self.plan.servers.len(),
            commands = self.plan.commands.len();
            "batch run starting"
        );
        self.started = Instant::now();
        if self.plan.servers.is_empty() {
            ctx.stop();
            return;
        }
        for server in &self.plan.servers {
            let mut link = self.links.link(server, self.plan.limits, self.cancel_rx.clone());
            let server = Arc::clone(server);
            let commands = self.plan.commands.clone();
            let policy = self.plan.policy;
            let cancel = self.cancel_rx.clone();
            let addr = ctx.address();
            // Detached rather than ctx.spawn: on cancel the worker must
            // outlive the actor long enough to signal its remote command.
            actix::spawn(async move {
                let mut report = |r: CommandResult| addr.do_send(Report(r));
                run_server(&server, link.as_mut(), &commands, policy, &cancel, &mut report).await;
                addr.do_send(ServerFinished);
            });
        }
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> actix::Running {
        let _ = self.cancel.send(true);
        actix::Running::Stop
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let total = (self.plan.servers.len() * self.plan.commands.len()) as u32;
        let reported = self.succeeded + self.failed + self.skipped;
        let cancelled = self.servers_left > 0;
        let summary = BatchSummary {
            run_id: self.plan.run_id.clone(),
            succeeded: self.succeeded,
            failed: self.failed,
            skipped: self.skipped + total.saturating_sub(reported),
            duration_ms: self.started.elapsed().as_millis() as u64,
            cancelled,
            unreachable: std::mem::take(&mut self.unreachable),
        };
        log::info!(
            run_id = self.plan.run_id.as_str(),
            succeeded = summary.succeeded,
            failed = summary.failed,
            skipped = summary.skipped,
            cancelled = summary.cancelled,
            duration_ms = summary.duration_ms;
            "batch run finished"
        );
        self.notify.do_send(BatchEvent::Complete(summary));
    }
}

impl Handler<Report> for BatchRunActor {
    type Result = ();

    fn handle(&mut self, Report(mut result): Report, _: &mut Context<Self>) {
        match result.status {
            CommandStatus::Succeeded => self.succeeded += 1,
            CommandStatus::Failed => self.failed += 1,
            CommandStatus::Skipped => self.skipped += 1,
        }
        // The first command of a server that never connected stands for
        // the server: the rest carry the same error.
        if result.index == 0 && result.attempts > 0 {
            if let Some(e) = result.error.as_ref().filter(|e| is_connection_error(e)) {
                self.unreachable.push((result.server.clone(), e.clone()));
            }
        }
        result.run_id = self.plan.run_id.clone();
        self.notify.do_send(BatchEvent::Result(Box::new(result)));
    }
}

impl Handler<ServerFinished> for BatchRunActor {
    type Result = ();

    fn handle(&mut self, _: ServerFinished, ctx: &mut Context<Self>) {
        self.servers_left = self.servers_left.saturating_sub(1);
        if self.servers_left == 0 {
            ctx.stop();
        }
    }
}

impl Handler<StopRun> for BatchRunActor {
    type Result = ();

    fn handle(&mut self, _: StopRun, ctx: &mut Context<Self>) {
        log::info!(run_id = self.plan.run_id.as_str(); "batch run cancelled");
        ctx.stop();
    }
}

#[cfg(test)]
mod tests;
