//! `BatchRecorderActor`: the one writer of a batch run's record, from its
//! start to its end, through the journal. It outlives the client that
//! asked for the run, so a run whose client left is still recorded to the
//! end.
//!
//! What it owns: the run's record (id, who asked, servers, command count),
//! whether its start was recorded and its end written, the counts it saw,
//! and a `Recipient` of the client that renders the run (the WebSocket
//! connection; it may be gone).
//!
//! Who sends it what: the client sends [`CreateRun`] once (the reply says
//! the run's start is recorded, or why not), then hands this actor's
//! `Recipient` to the `BatchRunActor` as the run's client. The run sends it
//! every [`BatchMessage`]: each result is recorded and, while the store
//! takes writes, passed on to the client only once it is stored; the end
//! likewise, with its audit row, so a client that sees `batch_complete`
//! reads the whole run over REST.
//!
//! Order is the point of this actor, so it handles one message at a time
//! to the end of its wait and hand-over ([`AtomicResponse`], the one place
//! a handler holds the mailbox like `.wait`). The run's workers await each
//! result's delivery, so while the store or the client catch up the
//! workers wait, instead of results queueing in memory.
//!
//! When the store fails (WAVE2: running work goes on): the journal keeps
//! the run's records in order and writes them once the store recovers
//! (`crate::journal`: one bound for all records, a result past it dropped
//! and counted); this actor stops waiting for the store as soon as it is
//! known to fail, so the client still sees every result and the end at
//! once. A result the journal dropped is counted in the run's audit row
//! (`unrecorded_results`).
//!
//! When it stops: after its end is recorded. Also when nobody can send it
//! anything more (the client dropped it before starting the run, or the
//! run vanished without `Finished`): `stopped()` then records the run's
//! end as `cancelled` with the counts it saw, so no run stays `running`
//! while the daemon runs.
//!
//! Why the run ends exactly once: only this actor records the run's end,
//! and it does so either on `Finished` (then it stops at once) or in
//! `stopped()` when `Finished` never came; the store only ends a run still
//! `running`.

use std::time::Instant;

use actix::{
    Actor, ActorContext, ActorFutureExt, AtomicResponse, Context, Handler, Message, Recipient, WrapFuture,
};
use pinkpage_actors::batch::plan::{BatchSummary, CommandStatus};
use pinkpage_actors::batch::run::BatchMessage;
use pinkpage_actors::task::{TaskEvent, TaskMessage};
use pinkpage_actors::{AppError, ErrorCode};

use crate::journal::{Journal, Settled};
use crate::records::{BatchEnd, BatchRunStatus, BatchWrite, NewAuditEvent, NewBatchRun, Outcome};

/// Records the run's start (status `running`); the run may start once it
/// replies `Ok`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct CreateRun;

/// Where the run's record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    /// Not recorded (yet, or it could not be).
    Absent,
    /// Started: this actor must record its end.
    Running,
    /// Its end is recorded; nothing more to write.
    Finished,
}

/// The actor. See the module docs.
pub struct BatchRecorderActor {
    journal: Journal,
    record: NewBatchRun,
    /// Renders the run; a closed recipient (client gone) is fine.
    client: Recipient<BatchMessage>,
    row: Row,
    /// Results seen that succeeded and failed, for an end recorded without
    /// the run's summary.
    succeeded: u32,
    failed: u32,
    /// Results the journal could not keep (its bound was full).
    unrecorded: u32,
    created: Instant,
}

impl BatchRecorderActor {
    /// A recorder of `record` that passes what it recorded on to `client`.
    pub fn new(journal: Journal, record: NewBatchRun, client: Recipient<BatchMessage>) -> Self {
        BatchRecorderActor {
            journal,
            record,
            client,
            row: Row::Absent,
            succeeded: 0,
            failed: 0,
            unrecorded: 0,
            created: Instant::now(),
        }
    }

    /// Records the run's end for `summary` and its audit row; what the
    /// journal says of the end.
    fn record_end(&mut self, summary: &BatchSummary) -> crate::journal::Receipt {
        self.row = Row::Finished;
        let status = if summary.cancelled {
            BatchRunStatus::Cancelled
        } else {
            BatchRunStatus::Completed
        };
        let end = BatchEnd {
            run_id: self.record.run_id.clone(),
            at: crate::records::now(),
            status,
            succeeded: summary.succeeded,
            failed: summary.failed,
            skipped: summary.skipped,
            duration_ms: summary.duration_ms,
        };
        let receipt = self.journal.record(BatchWrite::End(end));
        let mut event = NewAuditEvent::new(self.record.actor.clone(), "batch.run")
            .in_domain("bmx4")
            .on(self.record.run_id.clone())
            .by(self.record.user.as_deref(), self.record.remote_addr.clone());
        let outcome = match status {
            BatchRunStatus::Cancelled => Outcome::Cancelled,
            _ if summary.failed > 0 => Outcome::Failed,
            _ => Outcome::Ok,
        };
        event.ended(outcome, None);
        if let [one] = self.record.servers.as_slice() {
            event.server = Some(one.clone());
        }
        let mut detail = serde_json::json!({
            "run_id": self.record.run_id,
            "servers": self.record.servers,
            "commands": self.record.commands.len(),
            "status": status.as_str(),
            "succeeded": summary.succeeded,
            "failed": summary.failed,
            "skipped": summary.skipped,
            "duration_ms": summary.duration_ms,
        });
        if self.unrecorded > 0 {
            detail["unrecorded_results"] = self.unrecorded.into();
        }
        event.detail = Some(detail);
        self.journal.audit(event);
        receipt
    }
}

impl Actor for BatchRecorderActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        if self.row != Row::Running {
            return;
        }
        // The run never started or vanished without `Finished`: record it
        // cancelled with what was seen.
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
        self.record_end(&summary).ignore();
    }
}

impl Handler<CreateRun> for BatchRecorderActor {
    type Result = AtomicResponse<Self, Result<(), AppError>>;

    fn handle(&mut self, _: CreateRun, _: &mut Context<Self>) -> Self::Result {
        let journal = self.journal.clone();
        let receipt = journal.record(BatchWrite::Create(self.record.clone()));
        AtomicResponse::new(Box::pin(
            async move { journal.settled(receipt).await }
                .into_actor(self)
                .map(|settled, act, _| match settled {
                    // A start the store could not take yet waits in the
                    // journal, ahead of the run's results: the run goes on
                    // like any work that was already admitted.
                    Settled::Written(_) | Settled::Waiting => {
                        act.row = Row::Running;
                        Ok(())
                    }
                    Settled::Rejected(why) => Err(AppError::with_detail(ErrorCode::Database, why)),
                    Settled::Dropped => Err(AppError::with_detail(
                        ErrorCode::Database,
                        "the journal has no room for new records",
                    )),
                }),
        ))
    }
}

impl Handler<BatchMessage> for BatchRecorderActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: BatchMessage, _: &mut Context<Self>) -> Self::Result {
        let journal = self.journal.clone();
        let client = self.client.clone();
        let task_id = msg.task_id;
        match msg.event {
            TaskEvent::Notice(result) => {
                match result.status {
                    CommandStatus::Succeeded => self.succeeded += 1,
                    CommandStatus::Failed => self.failed += 1,
                    CommandStatus::Skipped => {}
                }
                let receipt = journal.record(BatchWrite::Result(result.clone()));
                AtomicResponse::new(Box::pin(
                    async move {
                        let settled = journal.settled(receipt).await;
                        // awaited: a client that renders slowly slows the run
                        let _ = client
                            .send(TaskMessage {
                                task_id,
                                event: TaskEvent::Notice(result),
                            })
                            .await;
                        settled
                    }
                    .into_actor(self)
                    .map(|settled, act, _| {
                        if settled == Settled::Dropped {
                            act.unrecorded += 1;
                        }
                    }),
                ))
            }
            TaskEvent::Finished {
                outcome,
                cleanup_error,
            } => {
                let receipt = (self.row == Row::Running).then(|| self.record_end(&outcome));
                AtomicResponse::new(Box::pin(
                    async move {
                        if let Some(receipt) = receipt {
                            journal.settled(receipt).await;
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

#[cfg(test)]
mod tests;
