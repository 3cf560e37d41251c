//! `BatchRunActor`: one batch run (BMX4's `batch_execute`), from the first
//! connection to the last result.
//!
//! What it owns: the run's plan (servers, commands, retry policy, output
//! caps), the cancel signal its per-server workers watch, the workers'
//! join handles, the tally of results, and the gate its workers share
//! (at most [`RUN_OUTPUT_IN_FLIGHT_MAX`] of output held at once). Each server gets one worker
//! task holding ONE connection for the whole run (an exec channel per
//! command, no reconnect per command); the workers of different servers
//! run in parallel.
//!
//! It keeps the task contract (`crate::task`): its client may send
//! [`Stop`], which is `ctx.stop()`; it reports [`BatchMessage`]s stamped
//! with its task id: a notice per command as it finishes (skipped ones
//! too), sent by the worker with backpressure (the worker's next command
//! waits until the client took the result), then exactly one `Finished`
//! with the [`BatchSummary`], always last. It knows nothing of JSON or
//! SQLite; its client (the daemon's recorder) stores what it reports.
//!
//! When it stops: every server's worker has finished, or it is told to
//! stop (cancel, client gone). `stopping()` fires the cancel signal; each
//! worker then ends its remote command with TERM and KILL (commands
//! without a PTY get no SIGHUP when a channel closes: NOTES-russh),
//! disconnects and ends. `stopped()` waits, detached and bounded by
//! [`CLEANUP_TIMEOUT`], for every worker to end, and only then sends
//! `Finished`: a client that saw the end never sees a command of the run
//! still running, and the counts are final (a worker that did not end in
//! time is reported as a 50014 cleanup failure). Results of commands still
//! running at the cancel are not reported; the summary counts them as
//! skipped and says `cancelled`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message};
use futures_util::FutureExt;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::link::{Cancel, LinkFactory};
use super::plan::{BatchPlan, BatchSummary, CommandResult, CommandStatus};
use super::worker::{is_connection_error, run_server, ServerWork};
use crate::error::{AppError, ErrorCode};
use crate::task::{Reporter, Stop, TaskMessage, CLEANUP_TIMEOUT};

/// What a run reports on the way: one command's result. Shared, so the
/// recorder can store it and forward it without copying its output.
pub type BatchNotice = Arc<CommandResult>;

/// What a run sends its client: a notice per command, then one `Finished`
/// carrying the [`BatchSummary`].
pub type BatchMessage = TaskMessage<BatchNotice, BatchSummary>;

/// The run's reporter (the task's half of the contract).
pub type BatchReporter = Reporter<BatchNotice, BatchSummary>;

/// The counts so far, kept by the workers as they report (they and the
/// actor share one arbiter thread, hence `Rc<RefCell>`), read once at the
/// end for the summary.
#[derive(Default)]
struct Tally {
    succeeded: u32,
    failed: u32,
    /// Reported as skipped (those cut off by a cancel are added at the end).
    skipped: u32,
    /// Servers whose first command could not connect, with the error.
    unreachable: Vec<(String, AppError)>,
}

impl Tally {
    fn count(&mut self, result: &CommandResult) {
        let status = match result.status {
            CommandStatus::Succeeded => {
                self.succeeded += 1;
                "succeeded"
            }
            CommandStatus::Failed => {
                self.failed += 1;
                "failed"
            }
            CommandStatus::Skipped => {
                self.skipped += 1;
                "skipped"
            }
        };
        crate::metrics::batch_result(status);
        // The first command of a server that never connected stands for
        // the server: the rest carry the same error.
        if result.index == 0 && result.attempts > 0 {
            if let Some(e) = result.error.as_ref().filter(|e| is_connection_error(e)) {
                self.unreachable.push((result.server.clone(), e.clone()));
            }
        }
    }
}

/// Most output bytes a run holds at once: the kept output of the commands
/// it runs in parallel (each up to `max_stdout + max_stderr`, held from
/// the command's start until its result was stored and passed on). With
/// the default 1 MiB caps, 64 servers run side by side; more servers wait
/// their turn instead of holding 2 MiB each.
pub const RUN_OUTPUT_IN_FLIGHT_MAX: usize = 128 << 20;

/// How many commands of a run with `limits` may run at once (at least
/// one) under [`RUN_OUTPUT_IN_FLIGHT_MAX`].
pub fn commands_in_flight(limits: &crate::ssh::ExecLimits) -> usize {
    let per_command = limits.max_stdout.saturating_add(limits.max_stderr).max(1);
    (RUN_OUTPUT_IN_FLIGHT_MAX / per_command).max(1)
}

/// A worker is done with its server.
#[derive(Message)]
#[rtype(result = "()")]
struct ServerFinished;

/// The actor. See the module docs.
pub struct BatchRunActor {
    plan: BatchPlan,
    links: Rc<dyn LinkFactory>,
    /// Where notices and the end go; taken by `stopped()` to finish.
    reporter: Option<BatchReporter>,
    /// Fired in `stopping()`; dropping it (with the actor) fires it too.
    cancel: watch::Sender<bool>,
    /// Handed to each worker.
    cancel_rx: Cancel,
    started: Instant,
    /// Shared with the workers, which count as they report.
    tally: Rc<RefCell<Tally>>,
    /// The workers, awaited (bounded) before `Finished`. Detached tasks
    /// rather than `ctx.spawn`: on cancel a worker must outlive the actor
    /// long enough to signal its remote command.
    workers: Vec<JoinHandle<()>>,
    /// Workers still running.
    servers_left: usize,
}

impl BatchRunActor {
    /// An actor that will run `plan` with links from `links` and report
    /// through `reporter` once started.
    pub fn new(plan: BatchPlan, links: Rc<dyn LinkFactory>, reporter: BatchReporter) -> Self {
        let (cancel, cancel_rx) = Cancel::new();
        BatchRunActor {
            servers_left: plan.servers.len(),
            plan,
            links,
            reporter: Some(reporter),
            cancel,
            cancel_rx,
            started: Instant::now(),
            tally: Rc::default(),
            workers: Vec::new(),
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
        let Some(reporter) = &self.reporter else {
            return;
        };
        if self.plan.servers.is_empty() {
            ctx.stop();
            return;
        }
        let gate = Rc::new(Semaphore::new(commands_in_flight(&self.plan.limits)));
        for server in &self.plan.servers {
            let mut link = self.links.link(server, self.plan.limits, self.cancel_rx.clone());
            let server = Arc::clone(server);
            let commands = self.plan.commands.clone();
            let policy = self.plan.policy;
            let checks = self.plan.checks.clone();
            let cancel = self.cancel_rx.clone();
            let notifier = reporter.notifier();
            let tally = Rc::clone(&self.tally);
            let run_id = self.plan.run_id.clone();
            let addr = ctx.address();
            let gate = Rc::clone(&gate);
            self.workers.push(actix::spawn(async move {
                let mut report = |mut result: CommandResult| {
                    result.run_id = run_id.clone();
                    tally.borrow_mut().count(&result);
                    let notifier = notifier.clone();
                    // `false` (the client is gone) changes nothing: the
                    // run goes on until it is stopped
                    async move {
                        notifier.send(Arc::new(result)).await;
                    }
                    .boxed_local()
                };
                run_server(
                    &server,
                    link.as_mut(),
                    ServerWork {
                        commands: &commands,
                        policy,
                        checks: &checks,
                    },
                    &cancel,
                    &gate,
                    &mut report,
                )
                .await;
                addr.do_send(ServerFinished);
            }));
        }
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> actix::Running {
        let _ = self.cancel.send(true);
        actix::Running::Stop
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let Some(reporter) = self.reporter.take() else {
            return;
        };
        let workers = std::mem::take(&mut self.workers);
        let cancelled = self.servers_left > 0;
        let total = (self.plan.servers.len() * self.plan.commands.len()) as u32;
        let tally = Rc::clone(&self.tally);
        let run_id = self.plan.run_id.clone();
        let started = self.started;
        actix::spawn(async move {
            let left = workers.len();
            let all = futures_util::future::join_all(workers);
            let cleanup_error = match tokio::time::timeout(CLEANUP_TIMEOUT, all).await {
                Ok(_) => None,
                Err(_) => {
                    let e = AppError::with_detail(
                        ErrorCode::TaskCleanupFailed,
                        format!(
                            "run {run_id}: not every one of {left} server(s) ended its command within {CLEANUP_TIMEOUT:?}"
                        ),
                    );
                    log::error!(error = e.to_string(); "batch run cleanup failed");
                    Some(e)
                }
            };
            let tally = std::mem::take(&mut *tally.borrow_mut());
            let reported = tally.succeeded + tally.failed + tally.skipped;
            let summary = BatchSummary {
                run_id,
                succeeded: tally.succeeded,
                failed: tally.failed,
                skipped: tally.skipped + total.saturating_sub(reported),
                duration_ms: started.elapsed().as_millis() as u64,
                cancelled,
                unreachable: tally.unreachable,
            };
            log::info!(
                run_id = summary.run_id.as_str(),
                succeeded = summary.succeeded,
                failed = summary.failed,
                skipped = summary.skipped,
                cancelled = summary.cancelled,
                duration_ms = summary.duration_ms;
                "batch run finished"
            );
            crate::metrics::batch_run_finished(if summary.cancelled {
                "cancelled"
            } else if summary.failed > 0 {
                "failed"
            } else {
                "completed"
            });
            reporter.finish(summary, cleanup_error);
        });
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

impl Handler<Stop> for BatchRunActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        log::info!(run_id = self.plan.run_id.as_str(); "batch run cancelled");
        ctx.stop();
    }
}

#[cfg(test)]
mod tests;
