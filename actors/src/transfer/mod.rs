//! `TransferActor`: one named server-to-server transfer (SPEC section 7,
//! the STUB domain's `scp_transfer`), relayed by the daemon over SFTP.
//!
//! What it owns: an SSH session and SFTP session to each server, the
//! temporary files it has created on the destination, a [`TransferPermit`]
//! (so only one transfer runs in the daemon), and two threads: its own
//! arbiter (the destination side and the copy loop) and a helper arbiter
//! (the source's SSH session), so the two ends' crypto use two cores.
//! Who sends it what: the connection that started it may send [`Stop`]; it
//! reports [`TransferMessage`]s through its [`Reporter`] (the task
//! contract, `crate::task`): throttled progress, then exactly one
//! `Finished`, whose `cleanup_error` says if a temporary file could not be
//! removed.
//!
//! No shell and no command line is involved: files are listed, read,
//! written, renamed and removed with SFTP requests, so names are carried
//! literally and no secret is ever on a command line.
//!
//! When it stops: the copy finishes or fails, or it is told to stop
//! (`end_session`, `cancel`, disconnect, lock revoked). Cancelling *is*
//! stopping: the copy future dies with the actor, and `stopped()` runs a
//! detached cleanup (bounded by [`CLEANUP_TIMEOUT`]) that removes every
//! temporary file still registered, closes SFTP, disconnects, releases the
//! daemon's transfer slot, and then sends `Finished` and stops both
//! threads. So when a client sees the outcome, no partial file is left.

mod dry_run;
mod glob;
mod plan;
mod progress;
mod relay;

use std::sync::{Arc, Mutex};

use actix::{
    Actor, ActorContext, ActorFutureExt, Arbiter, ArbiterHandle, AsyncContext, Context, Handler, WrapFuture,
};

use crate::error::{AppError, ErrorCode};
pub use crate::task::CLEANUP_TIMEOUT;
use crate::task::{Reporter, Stop, TaskMessage};

pub use self::dry_run::{dry_run, PlannedCopy, TransferPlan, DRY_RUN_TIMEOUT};
pub use self::glob::{Matcher, SourceGlob};
pub use self::plan::{
    FileDone, TransferGate, TransferOutcome, TransferPermit, TransferProgress, TransferRequest,
    TransferSummary,
};
pub use self::progress::{Throttle, PROGRESS_INTERVAL};
pub use self::relay::{temp_name, CHUNK, CONCURRENT_FILES, CONCURRENT_LARGE_FILES, QUEUE_CHUNKS};

/// What the transfer tells its client: progress (throttled to
/// [`PROGRESS_INTERVAL`]), then one `Finished` with the outcome.
pub type TransferMessage = TaskMessage<TransferProgress, TransferOutcome>;

/// The actor. See the module docs.
pub struct TransferActor {
    request: Arc<TransferRequest>,
    /// Where progress and the end go; taken by `stopped()` to finish.
    reporter: Option<Reporter<TransferProgress, TransferOutcome>>,
    /// The source side's thread; stopped after cleanup.
    helper: ArbiterHandle,
    /// Sessions and temporary files to clean up.
    resources: relay::SharedResources,
    /// Set when the copy ended by itself.
    outcome: Option<Result<TransferSummary, AppError>>,
    /// The last progress sent, reported on cancel.
    last_progress: Arc<Mutex<Option<TransferProgress>>>,
}

impl TransferActor {
    /// Starts the transfer on a new thread of its own; it reports through
    /// `reporter`.
    pub fn spawn(
        request: TransferRequest,
        reporter: Reporter<TransferProgress, TransferOutcome>,
    ) -> actix::Addr<TransferActor> {
        let home = Arbiter::new();
        let helper = Arbiter::new().handle();
        TransferActor::start_in_arbiter(&home.handle(), move |_| TransferActor {
            request: Arc::new(request),
            reporter: Some(reporter),
            helper,
            resources: Default::default(),
            outcome: None,
            last_progress: Default::default(),
        })
    }
}

impl Actor for TransferActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let task_id = self.reporter.as_ref().map(|r| r.task_id().get());
        log::info!(task_id = task_id, transfer = self.request.spec.name.as_str(); "transfer starting");
        let request = self.request.clone();
        let resources = self.resources.clone();
        let helper = self.helper.clone();
        let Some(notify) = self.reporter.as_ref().map(Reporter::notifier) else {
            return;
        };
        let last = self.last_progress.clone();
        ctx.spawn(
            async move {
                relay::run(&request, resources, helper, move |p| {
                    *last.lock().expect("progress lock") = Some(p.clone());
                    notify.do_send(p);
                })
                .await
            }
            .into_actor(self)
            .map(|result, act, ctx| {
                act.outcome = Some(result);
                ctx.stop();
            }),
        );
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let outcome = match self.outcome.take() {
            Some(Ok(summary)) => TransferOutcome::Complete(summary),
            Some(Err(e)) => TransferOutcome::Failed(e),
            None => TransferOutcome::Cancelled {
                progress: self.last_progress.lock().expect("progress lock").clone(),
            },
        };
        let name = self.request.spec.name.clone();
        match &outcome {
            TransferOutcome::Complete(s) => log::info!(
                transfer = name.as_str(),
                files = s.files.len(),
                bytes = s.bytes,
                duration_ms = s.duration.as_millis() as u64;
                "transfer complete"
            ),
            TransferOutcome::Failed(e) => log::warn!(
                transfer = name.as_str(), code = e.code.code(), error = e.to_string(); "transfer failed"
            ),
            TransferOutcome::Cancelled { .. } => log::info!(transfer = name.as_str(); "transfer cancelled"),
        }
        crate::metrics::transfer_finished(match &outcome {
            TransferOutcome::Complete(_) => "completed",
            TransferOutcome::Failed(_) => "failed",
            TransferOutcome::Cancelled { .. } => "cancelled",
        });
        let resources = std::mem::take(&mut *self.resources.lock().expect("resources lock"));
        let reporter = self.reporter.take();
        let helper = self.helper.clone();
        let request = self.request.clone();
        // Detached: the actor is gone, the cleanup must still happen. The
        // permit (inside `request`) is released only after it.
        actix::spawn(async move {
            let failure = match tokio::time::timeout(CLEANUP_TIMEOUT, cleanup(resources)).await {
                Ok(Ok(())) => None,
                Ok(Err(detail)) => Some(detail),
                Err(_) => Some(format!("no cleanup within {CLEANUP_TIMEOUT:?}")),
            };
            let failure = failure.map(|detail| {
                let err = AppError::with_detail(
                    ErrorCode::TaskCleanupFailed,
                    format!("transfer '{name}': {detail}"),
                );
                log::error!(code = err.code.code(), error = err.to_string(); "transfer cleanup failed");
                err
            });
            drop(request);
            if let Some(reporter) = reporter {
                reporter.finish(outcome, failure);
            }
            helper.stop();
            Arbiter::current().stop();
        });
    }
}

/// Removes the temporary files still registered, closes SFTP and
/// disconnects both sessions. Every step is tried; the first failure is
/// returned.
async fn cleanup(res: relay::Resources) -> Result<(), String> {
    let mut first_failure = None;
    if let Some(sftp) = &res.destination {
        for (temp, record) in res.temps {
            match sftp.remove_file(temp.as_str()).await {
                Ok(()) => record.done(),
                Err(russh_sftp::client::error::Error::Status(s))
                    if s.status_code == russh_sftp::protocol::StatusCode::NoSuchFile =>
                {
                    record.done()
                }
                // the record, dropped, makes the next connection to the
                // destination remove it
                Err(e) => {
                    first_failure.get_or_insert(format!("cannot remove temporary file '{temp}': {e}"));
                }
            }
        }
    }
    for sftp in &res.sftps {
        let _ = sftp.close().await;
    }
    if let Some(raw) = &res.raw {
        let _ = raw.close_session();
    }
    for session in &res.sessions {
        if let Err(e) = session.disconnect().await {
            first_failure.get_or_insert(e.to_string());
        }
    }
    first_failure.map_or(Ok(()), Err)
}

impl Handler<Stop> for TransferActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_admits_one_transfer_until_its_permit_drops() {
        let gate = TransferGate::default();
        let permit = gate.try_acquire("a").unwrap();
        assert_eq!(gate.running().as_deref(), Some("a"));
        let refused = gate.try_acquire("a").err().unwrap();
        assert_eq!(refused.code, ErrorCode::TransferAlreadyRunning);
        assert!(gate.try_acquire("b").is_err());
        drop(permit);
        assert!(gate.running().is_none());
        assert!(gate.try_acquire("b").is_ok());
    }
}
