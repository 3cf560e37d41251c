//! `BatchRecorderActor`: the one writer of a batch run's record, from its
//! row to its final update. It outlives the client that asked for the
//! run, so a run whose client left is still recorded to the end.
//!
//! What it owns: the run's record (id, who asked, servers, command count),
//! whether its row was written and finished, the counts it stored, and a
//! `Recipient` of the client that renders the run (the WebSocket
//! connection; it may be gone).
//!
//! Who sends it what: the client sends [`CreateRun`] once (the reply says
//! the row is stored, or why not), then hands this actor's `Recipient` to
//! the `BatchRunActor` as the run's client. The run sends it every
//! [`BatchMessage`]: each result is stored and only then passed on to
//! the client, unchanged (same task id); `Finished` is stored as the
//! run's final update (status `cancelled` or `completed`, the run's own
//! counts) with its audit event, and only then passed on, so a client
//! that sees `batch_complete` reads the whole run over REST.
//!
//! Order is the point of this actor, so it handles one message at a time
//! to the end of its store write ([`AtomicResponse`]): the run's mailbox
//! bound then slows the run's workers while SQLite catches up, instead of
//! queueing results in memory.
//!
//! When it stops: after storing `Finished`. Also when nobody can send it
//! anything more (the client dropped it before starting the run, or the
//! run vanished without `Finished`): `stopped()` then finishes a row left
//! `running` as `cancelled` with the counts it stored, so no row stays
//! `running` while the daemon runs.
//!
//! Why the run is finished exactly once: only this actor writes the run's
//! final update, and it does so either on `Finished` (then it stops at
//! once) or in `stopped()` when `Finished` never came. The connection
//! writes nothing; it only renders what this actor passes on.

use std::time::Instant;

use actix::{
    Actor, ActorContext, ActorFutureExt, AtomicResponse, Context, Handler, Message, Recipient, WrapFuture,
};
use pinkpage_actors::batch::plan::{BatchSummary, CommandStatus};
use pinkpage_actors::batch::run::BatchMessage;
use pinkpage_actors::task::{TaskEvent, TaskMessage};
use pinkpage_actors::AppError;

use crate::store::{CreateBatchRun, FinishBatchRun, NewAuditEvent, NewBatchRun, RecordBatchResult, Store};

/// Writes the run's row (status `running`); the run may start once it
/// replies `Ok`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct CreateRun;

/// Where the run's row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    /// Not written (yet, or it could not be).
    Absent,
    /// Written as `running`: this actor must finish it.
    Running,
    /// Finished; nothing more to write.
    Finished,
}

/// The actor. See the module docs.
pub struct BatchRecorderActor {
    store: Store,
    record: NewBatchRun,
    /// Renders the run; a closed recipient (client gone) is fine.
    client: Recipient<BatchMessage>,
    row: Row,
    /// Stored results that succeeded and failed, for a row finished
    /// without the run's summary.
    succeeded: u32,
    failed: u32,
    created: Instant,
}

impl BatchRecorderActor {
    /// A recorder of `record` that passes what it stored on to `client`.
    pub fn new(store: Store, record: NewBatchRun, client: Recipient<BatchMessage>) -> Self {
        BatchRecorderActor {
            store,
            record,
            client,
            row: Row::Absent,
            succeeded: 0,
            failed: 0,
            created: Instant::now(),
        }
    }

    /// The final update and audit event for `summary`.
    fn finish(&self, summary: &BatchSummary) -> (FinishBatchRun, NewAuditEvent) {
        let status = if summary.cancelled {
            "cancelled"
        } else {
            "completed"
        };
        let finish = FinishBatchRun {
            run_id: self.record.run_id.clone(),
            status,
            succeeded: summary.succeeded,
            failed: summary.failed,
            skipped: summary.skipped,
            duration_ms: summary.duration_ms,
        };
        let mut event = NewAuditEvent::new(self.record.actor.clone(), "batch.run");
        if let [one] = self.record.servers.as_slice() {
            event.server = Some(one.clone());
        }
        event.detail = Some(serde_json::json!({
            "run_id": self.record.run_id,
            "servers": self.record.servers,
            "commands": self.record.commands.len(),
            "status": status,
            "succeeded": summary.succeeded,
            "failed": summary.failed,
            "skipped": summary.skipped,
            "duration_ms": summary.duration_ms,
        }));
        (finish, event)
    }
}

/// Stores the final update and its audit event; logs a failure (the run
/// is over either way, and its client must still hear the end).
async fn store_finish(store: Store, finish: FinishBatchRun, event: NewAuditEvent) {
    let run_id = finish.run_id.clone();
    match store.call(finish).await {
        Ok(true) => store.audit(event),
        // only this actor finishes its run, once: a row not `running`
        // means someone else wrote it, which must be looked into
        Ok(false) => log::error!(run_id = run_id.as_str(); "batch run was not running when finished"),
        Err(e) => log::error!(code = e.code.code(), error = e.to_string(); "batch run end not recorded"),
    }
}

impl Actor for BatchRecorderActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        if self.row != Row::Running {
            return;
        }
        // The run never started or vanished without `Finished`: record it
        // cancelled with what was stored.
        let total = (self.record.servers.len() * self.record.commands.len()) as u32;
        let summary = BatchSummary {
            run_id: self.record.run_id.clone(),
            succeeded: self.succeeded,
            failed: self.failed,
            skipped: total.saturating_sub(self.succeeded + self.failed),
            duration_ms: self.created.elapsed().as_millis() as u64,
            cancelled: true,
            unreachable: Vec::new(),
        };
        log::warn!(run_id = self.record.run_id.as_str(); "batch run ended without its summary; recorded cancelled");
        let (finish, event) = self.finish(&summary);
        actix::spawn(store_finish(self.store.clone(), finish, event));
    }
}

impl Handler<CreateRun> for BatchRecorderActor {
    type Result = AtomicResponse<Self, Result<(), AppError>>;

    fn handle(&mut self, _: CreateRun, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let record = self.record.clone();
        AtomicResponse::new(Box::pin(
            async move { store.call(CreateBatchRun(record)).await }
                .into_actor(self)
                .map(|created, act, _| {
                    if created.is_ok() {
                        act.row = Row::Running;
                    }
                    created
                }),
        ))
    }
}

impl Handler<BatchMessage> for BatchRecorderActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: BatchMessage, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let client = self.client.clone();
        let task_id = msg.task_id;
        match msg.event {
            TaskEvent::Notice(result) => {
                match result.status {
                    CommandStatus::Succeeded => self.succeeded += 1,
                    CommandStatus::Failed => self.failed += 1,
                    CommandStatus::Skipped => {}
                }
                AtomicResponse::new(Box::pin(
                    async move {
                        if let Err(e) = store.call(RecordBatchResult(result.clone())).await {
                            log::error!(code = e.code.code(), error = e.to_string(); "batch result not recorded");
                        }
                        // awaited: a client that renders slowly slows the run
                        let _ = client
                            .send(TaskMessage {
                                task_id,
                                event: TaskEvent::Notice(result),
                            })
                            .await;
                    }
                    .into_actor(self),
                ))
            }
            TaskEvent::Finished {
                outcome,
                cleanup_error,
            } => {
                let write = (self.row == Row::Running).then(|| self.finish(&outcome));
                self.row = Row::Finished;
                AtomicResponse::new(Box::pin(
                    async move {
                        if let Some((finish, event)) = write {
                            store_finish(store, finish, event).await;
                        }
                        let _ = client
                            .send(TaskMessage {
                                task_id,
                                event: TaskEvent::Finished {
                                    outcome,
                                    cleanup_error,
                                },
                            })
                            .await;
                    }
                    .into_actor(self)
                    .map(|(), _, ctx: &mut Context<Self>| ctx.stop()),
                ))
            }
        }
    }
}
