//! `scp_transfer` on `/ws/v1/stub`: runs a named transfer as the
//! connection's task (a `TransferActor`) and turns its messages into
//! `scp_progress` / `scp_complete` / `scp_cancelled` frames.
//!
//! Checks, in order, all synchronous: the connection has no task (a
//! running transfer gives 50009, a running command 50010); the session is
//! not ending and this connection holds the lock (50008); the name is
//! configured (23001); no transfer runs anywhere in the daemon (50009, the
//! [`pinkpage_actors::transfer::TransferGate`]).

use actix::{ActorFutureExt, AsyncContext, ContextFutureSpawner, Handler, WrapFuture};
use pinkpage_actors::task::{Pending, TaskEvent, TaskId};
use pinkpage_actors::transfer::{
    dry_run, FileDone, TransferActor, TransferMessage, TransferOutcome, TransferPlan, TransferProgress,
    TransferRequest,
};
use pinkpage_actors::{AppError, ErrorCode};
use serde::Serialize;

use super::state::{Stub, StubTask, TaskKind};
use super::tasks::{audit, transfer_end};
use crate::records::Outcome;
use crate::request::TransferRef;
use crate::ws::connection::{WsConnection, WsCtx};
use crate::ws::protocol::RequestId;

/// The frames of a transfer (their wire names all start with `scp_`).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TransferReply<'a> {
    /// Accepted; connecting to both servers.
    ScpTransferStarted {
        transfer_name: &'a str,
        source_server: &'a str,
        destination_server: &'a str,
    },
    /// At most ~10 a second.
    ScpProgress {
        transfer_name: &'a str,
        #[serde(flatten)]
        progress: &'a TransferProgress,
    },
    /// Every file is in place.
    ScpComplete {
        transfer_name: &'a str,
        files: &'a [FileDone],
        bytes: u64,
        duration_ms: u64,
    },
    /// A dry run's answer: what the transfer would copy now.
    ScpTransferPlan {
        transfer_name: &'a str,
        source_server: &'a str,
        destination_server: &'a str,
        destination_dir: &'a str,
        #[serde(flatten)]
        plan: &'a TransferPlan,
    },
    /// Stopped by `cancel`, `end_session` or a revoked lock; no partial
    /// file is left.
    ScpCancelled {
        transfer_name: &'a str,
        files_done: usize,
        bytes_done: u64,
    },
}

/// `scp_transfer_plan`: the dry run of a named transfer (what it would
/// copy, which destination files it would replace), answered as
/// `scp_transfer_plan`. Runs beside anything else on the connection (it
/// needs no lock and takes no transfer slot) as one of its operations
/// (10008 past the cap), bounded by the engine's dry-run timeout.
pub(super) fn scp_transfer_plan(
    conn: &mut WsConnection<Stub>,
    transfer_name: String,
    rid: RequestId,
    ctx: &mut WsCtx<Stub>,
) {
    let ends = match TransferRef::resolve(&conn.state.settings(), &conn.principal, &transfer_name) {
        Ok(ends) => ends,
        Err(e) => return conn.send_error(ctx, &e, &rid),
    };
    let Some(guard) = conn.operation_or_refuse(&rid, ctx) else {
        return;
    };
    let ssh = conn.state.ssh.clone();
    async move {
        let plan = dry_run(&ends.spec, ends.source, ends.destination, ssh).await;
        drop(guard);
        (ends.spec, plan)
    }
    .into_actor(conn)
    .map(move |(spec, plan), conn, ctx| match plan {
        Ok(plan) => conn.send(
            ctx,
            &TransferReply::ScpTransferPlan {
                transfer_name: &spec.name,
                source_server: &spec.source_server,
                destination_server: &spec.destination_server,
                destination_dir: &spec.destination_dir,
                plan: &plan,
            },
            &rid,
        ),
        Err(e) => conn.send_error(ctx, &e, &rid),
    })
    .spawn(ctx);
}

pub(super) fn scp_transfer(
    conn: &mut WsConnection<Stub>,
    transfer_name: String,
    rid: RequestId,
    ctx: &mut WsCtx<Stub>,
) {
    if let Err(e) = start(conn, &transfer_name, &rid, ctx) {
        conn.send_error(ctx, &e, &rid);
    }
}

fn start(
    conn: &mut WsConnection<Stub>,
    name: &str,
    rid: &RequestId,
    ctx: &mut WsCtx<Stub>,
) -> Result<(), AppError> {
    if let Some(current) = conn.domain.task.current() {
        let transfer = matches!(
            conn.domain.task.info(current),
            Some(StubTask {
                kind: TaskKind::Transfer { .. },
                ..
            })
        );
        return Err(if transfer {
            AppError::with_detail(
                ErrorCode::TransferAlreadyRunning,
                "a transfer is running on this connection",
            )
        } else {
            AppError::with_detail(
                ErrorCode::TaskAlreadyRunning,
                "cancel it or wait for ssh_command_complete",
            )
        });
    }
    conn.domain.require_lock()?;
    let TransferRef {
        spec,
        source,
        destination,
    } = TransferRef::resolve(&conn.state.settings(), &conn.principal, name)?;
    let permit = conn.state.transfers.try_acquire(name)?;
    let request = TransferRequest {
        spec: spec.clone(),
        source,
        destination,
        ssh: conn.state.ssh.clone(),
        temp_files: conn.state.temp_files.clone(),
        permit,
    };
    let task_id = TaskId::next();
    let (reporter, handle) = Pending::new(task_id, ctx.address().recipient()).split();
    let addr = TransferActor::spawn(request, reporter);
    let task = StubTask {
        rid: rid.clone(),
        kind: TaskKind::Transfer {
            name: name.to_owned(),
        },
    };
    conn.domain
        .occupy(&conn.watch.tasks, task_id, task, handle(addr.recipient()))?;
    log::info!(
        connection_id = conn.id.to_string().as_str(),
        task_id = task_id.get(),
        user = &*conn.principal.user,
        transfer = name;
        "transfer started"
    );
    let mut event = audit(conn, "transfer.start").on(name);
    event.server = Some(spec.source_server.clone());
    event.detail = Some(serde_json::json!({
        "transfer": name,
        "source_glob": spec.source_glob,
        "destination_server": spec.destination_server,
        "destination_dir": spec.destination_dir,
    }));
    conn.state.journal.audit(event);
    conn.send(
        ctx,
        &TransferReply::ScpTransferStarted {
            transfer_name: name,
            source_server: &spec.source_server,
            destination_server: &spec.destination_server,
        },
        rid,
    );
    Ok(())
}

impl Handler<TransferMessage> for WsConnection<Stub> {
    type Result = ();

    fn handle(&mut self, msg: TransferMessage, ctx: &mut WsCtx<Stub>) {
        // Only the current task speaks (see `command`).
        let Some(StubTask {
            kind: TaskKind::Transfer { name },
            ..
        }) = self.domain.task.info(msg.task_id)
        else {
            return;
        };
        match msg.event {
            TaskEvent::Notice(progress) => {
                let frame = TransferReply::ScpProgress {
                    transfer_name: name,
                    progress: &progress,
                };
                self.send(ctx, &frame, &None);
            }
            TaskEvent::Finished {
                outcome,
                cleanup_error,
            } => {
                if let Some((task, cleanup)) = self.domain.task.finished(msg.task_id, cleanup_error) {
                    if let Some(err) = &cleanup {
                        self.send_error(ctx, err, &None);
                    }
                    self.transfer_finished(task, outcome, ctx);
                }
            }
        }
    }
}

impl WsConnection<Stub> {
    fn transfer_finished(&mut self, task: StubTask, outcome: TransferOutcome, ctx: &mut WsCtx<Stub>) {
        let TaskKind::Transfer { name } = task.kind else {
            return;
        };
        let name = name.as_str();
        let rid = task.rid;
        let mut event = transfer_end(self, name);
        match &outcome {
            TransferOutcome::Complete(summary) => {
                self.send(
                    ctx,
                    &TransferReply::ScpComplete {
                        transfer_name: name,
                        files: &summary.files,
                        bytes: summary.bytes,
                        duration_ms: summary.duration.as_millis() as u64,
                    },
                    &rid,
                );
                event.bytes = Some(summary.bytes as i64);
                event.detail = Some(serde_json::json!({
                    "transfer": name,
                    "outcome": "complete",
                    "files": summary.files.iter().map(|f| &f.name).collect::<Vec<_>>(),
                    "duration_ms": summary.duration.as_millis() as u64,
                }));
            }
            TransferOutcome::Failed(err) => {
                self.send_error(ctx, err, &rid);
                event.ended(Outcome::Failed, Some(err.code.code()));
                event.detail = Some(serde_json::json!({
                    "transfer": name,
                    "outcome": "failed",
                    "error": err.code.code(),
                    "cause": err.detail,
                }));
            }
            TransferOutcome::Cancelled { progress } => {
                let (files_done, bytes_done) =
                    progress.as_ref().map_or((0, 0), |p| (p.files_done, p.bytes_done));
                self.send(
                    ctx,
                    &TransferReply::ScpCancelled {
                        transfer_name: name,
                        files_done,
                        bytes_done,
                    },
                    &rid,
                );
                event.bytes = Some(bytes_done as i64);
                event.ended(Outcome::Cancelled, None);
                event.detail = Some(serde_json::json!({
                    "transfer": name,
                    "outcome": "cancelled",
                    "files_done": files_done,
                }));
            }
        }
        self.state.journal.audit(event);
    }
}
