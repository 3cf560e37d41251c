//! The BMX4 domain (`/ws/v1/bmx4`): batch command runs (SPEC section 4).
//!
//! Per connection it owns at most one run, in [`Bmx4::run`]: a
//! `BatchRunActor` (the engine) reporting [`BatchEvent`]s back to this
//! connection, which turns them into frames and stores them. The slot is
//! taken synchronously when `batch_execute` is accepted, so a second batch
//! on the same connection gets 50010 even while the first is being
//! recorded.
//!
//! Storage order: the run row is written (and awaited) before the actor
//! starts; results and the final update then go through one writer task
//! per run, in order, and `batch_complete` is sent only once the final
//! update is stored, so a client that reads the run over REST after
//! `batch_complete` sees all of it. The writer is detached from the
//! connection, so a client that disconnects mid-run still leaves a
//! finished (`cancelled`) run behind.
//!
//! `batch_cancel` and disconnect stop the run's actor; the engine then
//! signals the remote commands (TERM, then KILL), since commands without a
//! PTY survive a closed channel.

use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, ContextFutureSpawner, Handler, WrapFuture};
use pinkpage_actors::batch::run::{
    BatchEvent, BatchPlan, BatchRunActor, BatchSummary, CommandResult, RetryPolicy, SshLinkFactory, StopRun,
};
use pinkpage_actors::ssh::ExecLimits;
use pinkpage_actors::{AppError, ErrorBody, ErrorCode};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::{Outgoing, RequestId};
use crate::store::{CreateBatchRun, FinishBatchRun, NewAuditEvent, NewBatchRun, RecordBatchResult, Store};
use pinkpage_actors::task::Done;

/// Most commands in one run.
pub const MAX_COMMANDS: usize = 1000;
/// Longest command line, bytes.
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;
/// Most retries per command.
pub const MAX_RETRIES: u32 = 100;
/// Longest pause between attempts (an hour).
pub const MAX_RETRY_DELAY_MS: u64 = 3_600_000;
/// Longest `timeout_s` (a day).
const MAX_TIMEOUT_S: f64 = 86_400.0;
/// Pause between attempts when the client does not say.
const DEFAULT_RETRY_DELAY_MS: u64 = 1000;

fn default_retry_delay_ms() -> u64 {
    DEFAULT_RETRY_DELAY_MS
}

/// What a BMX4 client may send (besides `ping`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Bmx4Request {
    /// Run commands on one or more servers.
    BatchExecute {
        /// One server name.
        server: Option<String>,
        /// Several server names (may be combined with `server`).
        servers: Option<Vec<String>>,
        /// Command lines, run in order on every server.
        commands: Vec<String>,
        /// Whether a command that still fails after its retries skips the
        /// rest of that server's commands (default false).
        #[serde(default)]
        stop_on_error: bool,
        /// Extra attempts for a failed command (default 0).
        #[serde(default)]
        retries: u32,
        /// Pause between attempts (default 1000).
        #[serde(default = "default_retry_delay_ms")]
        retry_delay_ms: u64,
        /// Per-attempt timeout, seconds (default none).
        timeout_s: Option<f64>,
    },
    /// Stop a running batch.
    BatchCancel {
        /// The run, from `batch_started`.
        run_id: String,
    },
}

/// What the BMX4 domain sends (besides the common frames).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Bmx4Reply<'a> {
    /// The run is recorded and starting.
    BatchStarted {
        /// The run's id (for `batch_cancel` and REST).
        run_id: &'a str,
        /// Server names, deduplicated.
        servers: &'a [String],
        /// Commands per server.
        commands: usize,
    },
    /// One command finished or was skipped.
    BatchCommandResult {
        /// The run.
        run_id: &'a str,
        /// Server name.
        server: &'a str,
        /// Position in the command list (0-based).
        index: usize,
        /// The command line.
        command: &'a str,
        /// `succeeded`, `failed` or `skipped`.
        status: &'a str,
        /// Exit status of the last attempt.
        exit_status: Option<u32>,
        /// Signal that ended the last attempt.
        exit_signal: Option<&'a str>,
        /// Standard output (capped).
        stdout: &'a str,
        /// Standard error (capped).
        stderr: &'a str,
        /// Attempts made.
        attempts: u32,
        /// First attempt's start to last attempt's end, delays included.
        duration_ms: u64,
        /// Whether stdout or stderr was cut at the cap.
        truncated: bool,
        /// Why it failed without an exit status, or why it was skipped.
        error: Option<ErrorBody>,
    },
    /// The run is over and stored.
    BatchComplete {
        /// The run.
        run_id: &'a str,
        /// Commands that succeeded.
        succeeded: u32,
        /// Commands that failed.
        failed: u32,
        /// Commands skipped (also those cut off by a cancel).
        skipped: u32,
        /// Run time.
        duration_ms: u64,
        /// Whether it was cancelled.
        cancelled: bool,
    },
    /// The cancel was accepted; `batch_complete` follows.
    BatchCancelled {
        /// The run.
        run_id: &'a str,
    },
}

/// A store write of the run, done in order by the run's writer task.
enum Write {
    Result(Box<CommandResult>),
    /// The final update, its audit event, and who to tell once stored.
    Finish(Box<(FinishBatchRun, NewAuditEvent)>, Option<oneshot::Sender<()>>),
}

/// The run of a connection.
enum Run {
    /// Accepted; the run row is being written.
    Starting,
    /// The actor runs.
    Running(Box<Running>),
    /// The actor is done; the final update is being stored.
    Finishing,
}

struct Running {
    run_id: String,
    addr: Addr<BatchRunActor>,
    /// The `batch_execute` request, answered by every frame of the run.
    rid: RequestId,
    servers: Vec<String>,
    commands: usize,
    started: Instant,
    writes: mpsc::UnboundedSender<Write>,
    succeeded: u32,
    failed: u32,
    skipped: u32,
}

impl Running {
    /// The final update and audit event for `status` with these counts.
    fn finish(
        &self,
        actor: String,
        summary: &BatchSummary,
        status: &'static str,
    ) -> (FinishBatchRun, NewAuditEvent) {
        let finish = FinishBatchRun {
            run_id: self.run_id.clone(),
            status,
            succeeded: summary.succeeded,
            failed: summary.failed,
            skipped: summary.skipped,
            duration_ms: summary.duration_ms,
        };
        let mut event = NewAuditEvent::new(actor, "batch.run");
        if let [one] = self.servers.as_slice() {
            event.server = Some(one.clone());
        }
        event.detail = Some(serde_json::json!({
            "run_id": self.run_id,
            "servers": self.servers,
            "commands": self.commands,
            "status": status,
            "succeeded": summary.succeeded,
            "failed": summary.failed,
            "skipped": summary.skipped,
            "duration_ms": summary.duration_ms,
        }));
        (finish, event)
    }
}

/// Per-connection BMX4 state.
#[derive(Default)]
pub struct Bmx4 {
    /// At most one run per connection.
    run: Option<Run>,
}

impl Domain for Bmx4 {
    type Request = Bmx4Request;
    const TYPES: &'static [&'static str] = &["batch_execute", "batch_cancel"];
    const WELCOME: &'static str = "Connected to BMX4 WebSocket";
    const NAME: &'static str = "bmx4";

    fn handle(conn: &mut WsConnection<Self>, req: Bmx4Request, rid: RequestId, ctx: &mut WsCtx<Self>) {
        match req {
            Bmx4Request::BatchExecute {
                server,
                servers,
                commands,
                stop_on_error,
                retries,
                retry_delay_ms,
                timeout_s,
            } => {
                let servers = server.into_iter().chain(servers.unwrap_or_default()).collect();
                let request = Validated {
                    servers,
                    commands,
                    policy: RetryPolicy {
                        retries,
                        retry_delay: Duration::from_millis(retry_delay_ms),
                        stop_on_error,
                    },
                    timeout_s,
                };
                batch_execute(conn, request, rid, ctx)
            }
            Bmx4Request::BatchCancel { run_id } => batch_cancel(conn, run_id, rid, ctx),
        }
    }

    fn stopping(conn: &mut WsConnection<Self>, _: &mut WsCtx<Self>) -> Vec<Done> {
        // The client is gone: stop the run (the engine ends the remote
        // commands) and record it cancelled with what was reported.
        if let Some(Run::Running(run)) = conn.domain.run.take() {
            run.addr.do_send(StopRun);
            let summary = BatchSummary {
                run_id: run.run_id.clone(),
                succeeded: run.succeeded,
                failed: run.failed,
                skipped: ((run.servers.len() * run.commands) as u32)
                    .saturating_sub(run.succeeded + run.failed),
                duration_ms: run.started.elapsed().as_millis() as u64,
                cancelled: true,
                unreachable: Vec::new(),
            };
            let (finish, event) = run.finish(conn.id.to_string(), &summary, "cancelled");
            let _ = run.writes.send(Write::Finish(Box::new((finish, event)), None));
        }
        Vec::new()
    }
}

/// A `batch_execute` before validation.
struct Validated {
    servers: Vec<String>,
    commands: Vec<String>,
    policy: RetryPolicy,
    timeout_s: Option<f64>,
}

fn invalid(detail: impl Into<String>) -> AppError {
    AppError::with_detail(ErrorCode::Validation, detail)
}

/// Checks the request against the limits and the configured servers.
fn validate(conn: &WsConnection<Bmx4>, req: &mut Validated) -> Result<Option<Duration>, AppError> {
    let mut seen = std::collections::HashSet::new();
    req.servers.retain(|s| seen.insert(s.clone()));
    if req.servers.is_empty() {
        return Err(invalid("give `server` or `servers`"));
    }
    if let Some(unknown) = req
        .servers
        .iter()
        .find(|s| conn.state.settings.server(s).is_none())
    {
        return Err(AppError::with_detail(
            ErrorCode::UnknownServer,
            format!("no server named '{unknown}'"),
        ));
    }
    if req.commands.is_empty() {
        return Err(invalid("`commands` is empty"));
    }
    if req.commands.len() > MAX_COMMANDS {
        return Err(invalid(format!(
            "{} commands; at most {MAX_COMMANDS} per run",
            req.commands.len()
        )));
    }
    if let Some(i) = req.commands.iter().position(|c| c.len() > MAX_COMMAND_BYTES) {
        return Err(invalid(format!(
            "command {i} is {} bytes; the limit is {MAX_COMMAND_BYTES}",
            req.commands[i].len()
        )));
    }
    if let Some(i) = req.commands.iter().position(|c| c.trim().is_empty()) {
        return Err(invalid(format!("command {i} is empty")));
    }
    if req.policy.retries > MAX_RETRIES {
        return Err(invalid(format!("retries must be at most {MAX_RETRIES}")));
    }
    if req.policy.retry_delay > Duration::from_millis(MAX_RETRY_DELAY_MS) {
        return Err(invalid(format!(
            "retry_delay_ms must be at most {MAX_RETRY_DELAY_MS}"
        )));
    }
    match req.timeout_s {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT_S => Ok(Some(Duration::from_secs_f64(s))),
        Some(_) => Err(invalid(format!("timeout_s must be in (0, {MAX_TIMEOUT_S}]"))),
    }
}

fn batch_execute(conn: &mut WsConnection<Bmx4>, mut req: Validated, rid: RequestId, ctx: &mut WsCtx<Bmx4>) {
    if conn.domain.run.is_some() {
        let e = AppError::with_detail(
            ErrorCode::TaskAlreadyRunning,
            "a batch is running on this connection; cancel it or wait for batch_complete",
        );
        return conn.send_error(ctx, &e, &rid);
    }
    let timeout = match validate(conn, &mut req) {
        Ok(t) => t,
        Err(e) => return conn.send_error(ctx, &e, &rid),
    };
    conn.domain.run = Some(Run::Starting);
    let run_id = uuid::Uuid::new_v4().to_string();
    let record = NewBatchRun {
        run_id: run_id.clone(),
        actor: conn.id.to_string(),
        servers: req.servers.clone(),
        commands: req.commands.clone(),
        stop_on_error: req.policy.stop_on_error,
        retries: req.policy.retries,
        retry_delay_ms: req.policy.retry_delay.as_millis() as u64,
        timeout_s: req.timeout_s,
    };
    let store = conn.state.store.clone();
    async move { store.call(CreateBatchRun(record)).await }
        .into_actor(conn)
        .map(move |created, conn, ctx| {
            if let Err(e) = created {
                conn.domain.run = None;
                let e = AppError::with_detail(
                    ErrorCode::BatchFailed,
                    format!("the run could not be recorded: {}", e.detail.unwrap_or_default()),
                );
                return conn.send_error(ctx, &e, &rid);
            }
            let state = &conn.state;
            let cap = state.settings.batch_output_cap;
            let plan = BatchPlan {
                run_id: run_id.clone(),
                // validated above; the settings never change at run time
                servers: req
                    .servers
                    .iter()
                    .filter_map(|s| state.settings.server(s).cloned())
                    .collect(),
                commands: req.commands,
                policy: req.policy,
                limits: ExecLimits {
                    max_stdout: cap,
                    max_stderr: cap,
                    timeout,
                },
            };
            let links = Rc::new(SshLinkFactory {
                ssh: state.ssh.clone(),
            });
            let commands = plan.commands.len();
            let addr = BatchRunActor::new(plan, links, ctx.address().recipient()).start();
            let writes = spawn_writer(state.store.clone());
            conn.send(
                ctx,
                &Bmx4Reply::BatchStarted {
                    run_id: &run_id,
                    servers: &req.servers,
                    commands,
                },
                &rid,
            );
            conn.domain.run = Some(Run::Running(Box::new(Running {
                run_id,
                addr,
                rid,
                servers: req.servers,
                commands,
                started: Instant::now(),
                writes,
                succeeded: 0,
                failed: 0,
                skipped: 0,
            })));
        })
        .spawn(ctx);
}

/// The run's writer: stores results and the final update in order, and
/// outlives the connection if it must.
fn spawn_writer(store: Store) -> mpsc::UnboundedSender<Write> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Write>();
    actix::spawn(async move {
        while let Some(write) = rx.recv().await {
            match write {
                Write::Result(result) => {
                    if let Err(e) = store.call(RecordBatchResult(result)).await {
                        log::error!(code = e.code.code(), error = e.to_string(); "batch result not recorded");
                    }
                }
                Write::Finish(finish_and_event, done) => {
                    let (finish, event) = *finish_and_event;
                    match store.call(finish).await {
                        Ok(true) => store.audit(event),
                        Ok(false) => {} // already finished by the other path
                        Err(e) => {
                            log::error!(code = e.code.code(), error = e.to_string(); "batch run end not recorded")
                        }
                    }
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
            }
        }
    });
    tx
}

fn batch_cancel(conn: &mut WsConnection<Bmx4>, run_id: String, rid: RequestId, ctx: &mut WsCtx<Bmx4>) {
    let Some(Run::Running(run)) = &conn.domain.run else {
        let e = AppError::with_detail(ErrorCode::NoRunningTask, "no batch is running on this connection");
        return conn.send_error(ctx, &e, &rid);
    };
    if run.run_id != run_id {
        let e = AppError::with_detail(
            ErrorCode::NoRunningTask,
            format!("run '{run_id}' is not running on this connection"),
        );
        return conn.send_error(ctx, &e, &rid);
    }
    run.addr
        .send(StopRun)
        .into_actor(conn)
        // A mailbox error means it stopped on its own meanwhile: either
        // way batch_complete follows and says how the run ended.
        .map(move |_, conn, ctx| conn.send(ctx, &Bmx4Reply::BatchCancelled { run_id: &run_id }, &rid))
        .spawn(ctx);
}

impl Handler<BatchEvent> for WsConnection<Bmx4> {
    type Result = ();

    fn handle(&mut self, event: BatchEvent, ctx: &mut WsCtx<Bmx4>) {
        let Some(Run::Running(run)) = &mut self.domain.run else {
            return;
        };
        match event {
            BatchEvent::Result(r) => {
                if r.run_id != run.run_id {
                    return;
                }
                match r.status {
                    pinkpage_actors::batch::run::CommandStatus::Succeeded => run.succeeded += 1,
                    pinkpage_actors::batch::run::CommandStatus::Failed => run.failed += 1,
                    pinkpage_actors::batch::run::CommandStatus::Skipped => run.skipped += 1,
                }
                let rid = run.rid.clone();
                let frame = Bmx4Reply::BatchCommandResult {
                    run_id: &r.run_id,
                    server: &r.server,
                    index: r.index,
                    command: &r.command,
                    status: r.status.as_str(),
                    exit_status: r.exit_status,
                    exit_signal: r.exit_signal.as_deref(),
                    stdout: &r.stdout,
                    stderr: &r.stderr,
                    attempts: r.attempts,
                    duration_ms: r.duration_ms,
                    truncated: r.truncated,
                    error: r.error.as_ref().map(AppError::body),
                };
                ctx.text(frame.to_text(&rid));
                let _ = run.writes.send(Write::Result(r));
            }
            BatchEvent::Complete(summary) => {
                if summary.run_id != run.run_id {
                    return;
                }
                let Some(Run::Running(run)) = self.domain.run.replace(Run::Finishing) else {
                    return;
                };
                let status = if summary.cancelled {
                    "cancelled"
                } else {
                    "completed"
                };
                let (finish, event) = run.finish(self.id.to_string(), &summary, status);
                let (done_tx, done_rx) = oneshot::channel();
                let _ = run
                    .writes
                    .send(Write::Finish(Box::new((finish, event)), Some(done_tx)));
                done_rx
                    .into_actor(self)
                    .map(move |_, conn, ctx| {
                        conn.domain.run = None;
                        let whole_run_failed =
                            !summary.cancelled && summary.unreachable.len() == run.servers.len();
                        if whole_run_failed {
                            let causes: Vec<String> = summary
                                .unreachable
                                .iter()
                                .map(|(server, e)| format!("{server}: {e}"))
                                .collect();
                            let e = AppError::with_detail(
                                ErrorCode::BatchFailed,
                                format!("no server could be reached: {}", causes.join("; ")),
                            );
                            conn.send_error(ctx, &e, &run.rid);
                        }
                        conn.send(
                            ctx,
                            &Bmx4Reply::BatchComplete {
                                run_id: &summary.run_id,
                                succeeded: summary.succeeded,
                                failed: summary.failed,
                                skipped: summary.skipped,
                                duration_ms: summary.duration_ms,
                                cancelled: summary.cancelled,
                            },
                            &run.rid,
                        );
                    })
                    .spawn(ctx);
            }
        }
    }
}
