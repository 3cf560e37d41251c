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

mod glob;
mod progress;
mod relay;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, Arbiter, ArbiterHandle, AsyncContext, Context, Handler, WrapFuture,
};
use serde::Serialize;

use crate::error::{AppError, ErrorCode};
use crate::files::temp_files::TempFiles;
use crate::server::{ServerSpec, TransferSpec};
use crate::ssh::SshOptions;
pub use crate::task::CLEANUP_TIMEOUT;
use crate::task::{Reporter, Stop, TaskMessage};

pub use self::glob::{Matcher, SourceGlob};
pub use self::progress::{Throttle, PROGRESS_INTERVAL};
pub use self::relay::{temp_name, CHUNK, CONCURRENT_FILES, QUEUE_CHUNKS};

/// The one-transfer-per-daemon rule (50009). Cloned into every connection.
#[derive(Clone, Default)]
pub struct TransferGate {
    /// The name of the running transfer, if any.
    running: Arc<Mutex<Option<String>>>,
}

impl TransferGate {
    /// Takes the slot for `name`, or 50009 naming the running transfer.
    pub fn try_acquire(&self, name: &str) -> Result<TransferPermit, AppError> {
        let mut running = self.running.lock().expect("gate lock");
        if let Some(other) = running.as_deref() {
            return Err(AppError::with_detail(
                ErrorCode::TransferAlreadyRunning,
                format!("transfer '{other}' is running"),
            ));
        }
        *running = Some(name.to_owned());
        Ok(TransferPermit {
            running: self.running.clone(),
        })
    }

    /// The running transfer's name.
    pub fn running(&self) -> Option<String> {
        self.running.lock().expect("gate lock").clone()
    }
}

/// Holds the daemon's transfer slot until dropped.
pub struct TransferPermit {
    running: Arc<Mutex<Option<String>>>,
}

impl Drop for TransferPermit {
    fn drop(&mut self) {
        *self.running.lock().expect("gate lock") = None;
    }
}

/// What to copy and how to reach both ends.
pub struct TransferRequest {
    /// The named transfer.
    pub spec: Arc<TransferSpec>,
    /// Its source server.
    pub source: Arc<ServerSpec>,
    /// Its destination server.
    pub destination: Arc<ServerSpec>,
    /// How to connect (timeouts, host keys).
    pub ssh: Arc<SshOptions>,
    /// Where the copies' temporary files are recorded (crash recovery).
    pub temp_files: TempFiles,
    /// The daemon's transfer slot, released after cleanup.
    pub permit: TransferPermit,
}

/// Where the copy is (`scp_progress`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TransferProgress {
    /// The file that last moved bytes.
    pub file: String,
    /// Bytes written to the destination so far, all files.
    pub bytes_done: u64,
    /// Bytes of all matched files.
    pub bytes_total: u64,
    /// Files renamed into place.
    pub files_done: usize,
    /// Files matched.
    pub files_total: usize,
}

/// One copied file (`scp_complete.files[]`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileDone {
    /// Its name (the same in source and destination directory).
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// Hex SHA-256, equal on both sides; only when the transfer verifies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A finished transfer.
#[derive(Debug, Clone)]
pub struct TransferSummary {
    /// Every file, by name.
    pub files: Vec<FileDone>,
    /// Their total size.
    pub bytes: u64,
    /// From start (including connecting) to the last rename.
    pub duration: Duration,
}

/// How a transfer ended.
#[derive(Debug, Clone)]
pub enum TransferOutcome {
    /// Every file is in place and verified.
    Complete(TransferSummary),
    /// 24000 / 24001; files renamed before the failure stay, no partial
    /// file does.
    Failed(AppError),
    /// Stopped on request; files renamed before stay, no partial file does.
    Cancelled {
        /// The last progress counters.
        progress: Option<TransferProgress>,
    },
}

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
