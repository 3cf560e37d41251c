//! `DiffJobActor`: one DIFF job of a WebSocket client, run as a task that
//! keeps the task contract (`pinkpage_actors::task`).
//!
//! What it owns: the cancel signal of its job. The job itself runs in a
//! detached future that owns the [`Reporter`], because a `diff_command`
//! must be allowed to wind down when stopped (its commands run without a
//! PTY and are signalled TERM, then KILL, when the cancel signal goes);
//! dropping it mid-way would leave them running.
//!
//! - `Stop` means `ctx.stop()`; `stopped()` drops the cancel signal.
//! - The job's future then ends: a `diff_command` once its commands were
//!   signalled (given at most [`CLEANUP_TIMEOUT`], else 50014), a file or
//!   directory diff at once (it holds no remote process; its SFTP sessions
//!   belong to the client's pool).
//! - Exactly one `Finished` follows, from that future, with the reply
//!   (`Some`) or nothing (`None`: stopped before it was done).
//! - When the job ends by itself, the future tells the actor, which stops.

use std::sync::Arc;

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};
use pinkpage_actors::diff::budget::Reservation;
use pinkpage_actors::diff::remote::DiffError;
use pinkpage_actors::files::pool::SftpPool;
use pinkpage_actors::ssh::SshOptions;
use pinkpage_actors::task::{Reporter, Stop, TaskMessage, CLEANUP_TIMEOUT};
use pinkpage_actors::{AppError, ErrorCode};
use tokio::sync::{oneshot, watch};

use super::job::DiffJob;
use super::requests::DiffReply;

/// How a diff job ended: its reply or error, or `None` when it was stopped
/// before it was done.
pub type DiffOutcome = Option<Result<DiffReply, DiffError>>;

/// What a diff job tells its client: no notices, one `Finished`.
pub type DiffMessage = TaskMessage<(), DiffOutcome>;

/// What a diff job needs to run.
pub struct DiffJobRequest {
    /// The validated job.
    pub job: DiffJob,
    /// The client's SFTP sessions.
    pub pool: SftpPool,
    /// How to connect.
    pub ssh: Arc<SshOptions>,
    /// The client, for the log.
    pub who: String,
    /// The job's share of the diff budget, given back when the job's
    /// future ends (with this request), whatever way it ends.
    pub reservation: Reservation,
    /// Waited on before the job runs: a `diff_command` held for review.
    pub held: Option<pinkpage_actors::policy::Gate>,
}

/// The actor. See the module docs.
pub struct DiffJobActor {
    /// Until started.
    request: Option<(DiffJobRequest, Reporter<(), DiffOutcome>)>,
    /// Dropped to stop the job.
    cancel: Option<watch::Sender<()>>,
}

impl DiffJobActor {
    /// An actor that will run `request` and report through `reporter`.
    pub fn new(request: DiffJobRequest, reporter: Reporter<(), DiffOutcome>) -> Self {
        DiffJobActor {
            request: Some((request, reporter)),
            cancel: None,
        }
    }
}

impl Actor for DiffJobActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some((req, reporter)) = self.request.take() else {
            return ctx.stop();
        };
        let (cancel_tx, cancel_rx) = watch::channel(());
        self.cancel = Some(cancel_tx);
        let (ended_tx, ended_rx) = oneshot::channel::<()>();
        // Detached: it must outlive the actor when stopped (see the module
        // docs), and it is the one that finishes the task.
        actix::spawn(run(req, reporter, cancel_rx, ended_tx));
        ctx.spawn(ended_rx.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // the job sees its cancel signal go
        self.cancel.take();
    }
}

impl Handler<Stop> for DiffJobActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Runs the job until it ends or is cancelled, then finishes the task.
async fn run(
    req: DiffJobRequest,
    reporter: Reporter<(), DiffOutcome>,
    cancel: watch::Receiver<()>,
    ended: oneshot::Sender<()>,
) {
    let mut req = req;
    if let Some(held) = req.held.take() {
        let mut stopped = cancel.clone();
        let answer = tokio::select! {
            answer = held => Some(answer),
            _ = async { while stopped.changed().await.is_ok() {} } => None,
        };
        // rejected, timed out or cancelled while held: nothing ran
        let unrun = match answer {
            Some(Ok(())) => None,
            Some(Err(error)) => Some(Some(Err(DiffError {
                side: None,
                status: None,
                too_large: false,
                error,
            }))),
            None => Some(None),
        };
        if let Some(outcome) = unrun {
            drop(req.reservation);
            reporter.finish(outcome, None);
            let _ = ended.send(());
            return;
        }
    }
    let winds_down = matches!(req.job, DiffJob::Command { .. });
    let mut stopped = cancel.clone();
    let job = req.job.run(&req.pool, &req.ssh, cancel, &req.who);
    let (outcome, cleanup_error) = {
        tokio::pin!(job);
        tokio::select! {
            res = &mut job => (Some(res), None),
            _ = async { while stopped.changed().await.is_ok() {} } => {
                if !winds_down {
                    (None, None)
                } else {
                    match tokio::time::timeout(CLEANUP_TIMEOUT, &mut job).await {
                        Ok(_) => (None, None),
                        Err(_) => (
                            None,
                            Some(AppError::with_detail(
                                ErrorCode::TaskCleanupFailed,
                                format!("diff_command did not end within {CLEANUP_TIMEOUT:?} of its cancel"),
                            )),
                        ),
                    }
                }
            }
        }
    };
    // the job's future is gone: its bytes go back before its client hears
    // of the end, so a client that saw the end can start the next diff
    drop(req.reservation);
    reporter.finish(outcome, cleanup_error);
    let _ = ended.send(());
}
