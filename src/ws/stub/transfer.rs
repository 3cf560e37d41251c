//! `scp_transfer` on `/ws/v1/stub`: runs a named transfer as the
//! connection's task (a `TransferActor`) and turns its notices into
//! `scp_progress` / `scp_complete` frames.
//!
//! Checks, in order: the connection has no task (a running transfer gives
//! 50009, a running command 50010); the caller owns the session lock
//! (50008, asked of the `SessionLockActor` like `ssh_command`); the name is
//! configured (23001); no transfer runs anywhere in the daemon (50009, the
//! [`pinkpage_actors::transfer::TransferGate`]). The slot is reserved
//! before the lock check is awaited, so two racing requests cannot both
//! start.

use actix::{ActorFutureExt, Addr, AsyncContext, ContextFutureSpawner, Handler, WrapFuture};
use pinkpage_actors::session_lock::CheckOwner;
pub(super) use pinkpage_actors::transfer::StopTransfer;
use pinkpage_actors::transfer::{
    FileDone, TransferActor, TransferNotice, TransferOutcome, TransferProgress, TransferRequest,
};
use pinkpage_actors::{AppError, ErrorCode};
use serde::Serialize;

use super::{audit, flatten, watch_stop, Stub, Task};
use crate::ws::connection::{WsConnection, WsCtx};
use crate::ws::protocol::RequestId;

/// The transfer a connection runs.
pub(in crate::ws) struct RunningTransfer {
    /// The actor; stopping it cancels the copy.
    pub addr: Addr<TransferActor>,
    /// The transfer's name.
    pub name: String,
    /// The request that started it, answered on completion.
    pub rid: RequestId,
    /// See `Task::Shell::generation`.
    pub generation: u64,
    /// Set once a stop was requested.
    pub stopping: bool,
}

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
    /// Stopped by `cancel`, `end_session` or a revoked lock; no partial
    /// file is left.
    ScpCancelled {
        transfer_name: &'a str,
        files_done: usize,
        bytes_done: u64,
    },
}

pub(super) fn scp_transfer(
    conn: &mut WsConnection<Stub>,
    transfer_name: String,
    rid: RequestId,
    ctx: &mut WsCtx<Stub>,
) {
    match &conn.domain.task {
        Some(Task::Transfer(_)) | Some(Task::StartingTransfer(_)) => {
            let e = AppError::with_detail(
                ErrorCode::TransferAlreadyRunning,
                "a transfer is running on this connection",
            );
            return conn.send_error(ctx, &e, &rid);
        }
        Some(_) => {
            let e = AppError::with_detail(
                ErrorCode::TaskAlreadyRunning,
                "cancel it or wait for ssh_command_complete",
            );
            return conn.send_error(ctx, &e, &rid);
        }
        None => {}
    }
    if conn.domain.ending {
        let e = AppError::with_detail(ErrorCode::ResourceLocked, "the session is ending");
        return conn.send_error(ctx, &e, &rid);
    }
    let generation = conn.domain.next_generation();
    conn.domain.task = Some(Task::StartingTransfer(generation));
    conn.state
        .session_lock
        .send(CheckOwner { id: conn.id })
        .into_actor(conn)
        .map(move |res, conn, ctx| {
            if !matches!(conn.domain.task, Some(Task::StartingTransfer(g)) if g == generation) {
                // The lock was taken away while we asked: the slot is gone.
                let e = AppError::with_detail(
                    ErrorCode::ResourceLocked,
                    "the session lock was released while the transfer was starting",
                );
                return conn.send_error(ctx, &e, &rid);
            }
            if let Err(e) = flatten(res).and_then(|()| start(conn, &transfer_name, generation, &rid, ctx)) {
                conn.domain.task = None;
                conn.send_error(ctx, &e, &rid);
            }
        })
        .spawn(ctx);
}

/// The lock is ours: look the transfer up, take the daemon's slot, start.
fn start(
    conn: &mut WsConnection<Stub>,
    name: &str,
    generation: u64,
    rid: &RequestId,
    ctx: &mut WsCtx<Stub>,
) -> Result<(), AppError> {
    let settings = &conn.state.settings;
    let spec = settings.transfers.get(name).cloned().ok_or_else(|| {
        AppError::with_detail(ErrorCode::UnknownTransfer, format!("no transfer named '{name}'"))
    })?;
    // Settings checked at startup that both servers exist.
    let server = |n: &str| {
        settings
            .server(n)
            .cloned()
            .ok_or_else(|| AppError::with_detail(ErrorCode::UnknownServer, format!("no server named '{n}'")))
    };
    let (source, destination) = (server(&spec.source_server)?, server(&spec.destination_server)?);
    let permit = conn.state.transfers.try_acquire(name)?;
    let request = TransferRequest {
        spec: spec.clone(),
        source,
        destination,
        ssh: conn.state.ssh.clone(),
        permit,
    };
    let addr = TransferActor::spawn(request, ctx.address().recipient());
    conn.domain.task = Some(Task::Transfer(RunningTransfer {
        addr,
        name: name.to_owned(),
        rid: rid.clone(),
        generation,
        stopping: false,
    }));
    let mut event = audit(conn, "transfer.start");
    event.server = Some(spec.source_server.clone());
    event.detail = Some(serde_json::json!({
        "transfer": name,
        "source_glob": spec.source_glob,
        "destination_server": spec.destination_server,
        "destination_dir": spec.destination_dir,
    }));
    conn.state.store.audit(event);
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

/// `cancel` while a transfer runs: stop it; `scp_cancelled` follows once
/// its temporary files are removed.
pub(super) fn cancel(conn: &mut WsConnection<Stub>, _rid: RequestId, ctx: &mut WsCtx<Stub>) {
    if let Some(Task::Transfer(t)) = &mut conn.domain.task {
        t.stopping = true;
        t.addr.do_send(StopTransfer);
        watch_stop(t.generation, ctx);
    }
}

impl Handler<TransferNotice> for WsConnection<Stub> {
    type Result = ();

    fn handle(&mut self, notice: TransferNotice, ctx: &mut WsCtx<Stub>) {
        let name = match &self.domain.task {
            Some(Task::Transfer(t)) => t.name.clone(),
            _ => String::new(),
        };
        match notice {
            TransferNotice::Progress(progress) => self.send(
                ctx,
                &TransferReply::ScpProgress {
                    transfer_name: &name,
                    progress: &progress,
                },
                &None,
            ),
            TransferNotice::CleanupFailed(err) => self.send_error(ctx, &err, &None),
            TransferNotice::Finished(outcome) => self.transfer_finished(outcome, ctx),
        }
    }
}

impl WsConnection<Stub> {
    fn transfer_finished(&mut self, outcome: TransferOutcome, ctx: &mut WsCtx<Stub>) {
        // Only a running transfer's end frees the slot; a late one (after
        // 50012) must not clear a newer task. A newer transfer cannot be
        // running: the daemon-wide gate is held until this notice is sent.
        if !matches!(self.domain.task, Some(Task::Transfer(_))) {
            return;
        }
        let Some(Task::Transfer(t)) = self.domain.task.take() else {
            return;
        };
        let name = t.name.as_str();
        let mut event = audit(self, "transfer.end");
        event.server = self
            .state
            .settings
            .transfers
            .get(name)
            .map(|s| s.source_server.clone());
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
                    &t.rid,
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
                self.send_error(ctx, err, &t.rid);
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
                    &t.rid,
                );
                event.bytes = Some(bytes_done as i64);
                event.detail = Some(serde_json::json!({
                    "transfer": name,
                    "outcome": "cancelled",
                    "files_done": files_done,
                }));
            }
        }
        self.state.store.audit(event);
    }
}
