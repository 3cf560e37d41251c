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
//! to the end of its store write and hand-over ([`AtomicResponse`], the
//! one place a handler holds the mailbox like `.wait`). The run's workers
//! await each result's delivery, so while SQLite or the client catch up
//! the workers wait, instead of results queueing in memory.
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
//!
//! When the store fails (WAVE2: running work goes on): a result the store
//! does not take waits in the run's [`Backlog`] and is still passed on;
//! while the audit journal says the store is degraded, results go to the
//! backlog without a write attempt each (a locked database would cost 5 s
//! per result). The backlog is written first, in order, whenever the store
//! takes writes again; the final update follows it. If the run ends while
//! the store still fails, its client hears the end at once and a detached
//! task keeps trying (0.5 s, doubling to 5 s, for at most 10 minutes) until
//! the backlog and the end are stored. (A backlog waits for the run's next
//! result or its end: a timer in this actor would keep it alive after its
//! last sender is gone, and `stopped()` would never finish the row.) The
//! backlog holds at most
//! [`BACKLOG_MAX_BYTES`] of output; a result past it is dropped, logged
//! with 40000 and counted in the run's audit row (`unrecorded_results`).
//! Every store write gives up after 10 s, so a hung store cannot keep a
//! run's end from its client.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorContext, ActorFutureExt, AtomicResponse, Context, Handler, Message, Recipient, WrapFuture,
};
use pinkpage_actors::batch::plan::{BatchSummary, CommandResult, CommandStatus};
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
    /// Results the store has not taken yet (see the module docs).
    backlog: Backlog,
}

/// The most output a run's unwritten results may hold while the store
/// fails; a result past it is dropped (and counted).
pub const BACKLOG_MAX_BYTES: usize = 16 << 20;
/// First wait, and the longest, between attempts to store a finished run
/// while the store fails.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long a finished run's unwritten rows are tried before they are
/// given up (logged with 40000; the row stays `running` until the next
/// start marks it `interrupted`).
const RETRY_FOR: Duration = Duration::from_secs(600);
/// One store write may take this long before it counts as failed (a hung
/// store must not keep a run's end from its client for ever).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the store takes writes, as the audit journal last found: no
/// attempt is made while it does not (each would wait out a locked
/// database's busy timeout on one of the store's two threads).
fn store_ok(store: &Store) -> bool {
    store.journal().health().status == "ok"
}

/// Sends `msg` to the store, failing after [`WRITE_TIMEOUT`].
async fn write<M, T>(store: &Store, msg: M) -> Result<T, AppError>
where
    M: actix::Message<Result = Result<T, AppError>> + Send + 'static,
    T: Send + 'static,
    crate::store::StoreActor: Handler<M>,
{
    tokio::time::timeout(WRITE_TIMEOUT, store.call(msg))
        .await
        .unwrap_or_else(|_| {
            Err(AppError::with_detail(
                pinkpage_actors::ErrorCode::Database,
                format!("no answer from the store within {WRITE_TIMEOUT:?}"),
            ))
        })
}

/// A run's results the store could not take yet, oldest first.
#[derive(Default)]
struct Backlog {
    rows: VecDeque<Arc<CommandResult>>,
    /// Output bytes held in `rows`.
    bytes: usize,
    /// Results dropped because the backlog was full.
    dropped: u32,
}

impl Backlog {
    fn weight(result: &CommandResult) -> usize {
        result.stdout.len() + result.stderr.len() + result.command.len() + 256
    }

    /// Keeps `result` to be written, unless that would pass the bound (an
    /// empty backlog takes any result, so one large result is never
    /// dropped while the store works).
    fn push(&mut self, result: Arc<CommandResult>) {
        let size = Self::weight(&result);
        if !self.rows.is_empty() && self.bytes + size > BACKLOG_MAX_BYTES {
            self.dropped += 1;
            log::error!(code = pinkpage_actors::ErrorCode::Database.code(), run_id = result.run_id.as_str(),
                server = result.server.as_str(), index = result.index;
                "batch result dropped: the store fails and this run's unwritten results are at their bound");
            return;
        }
        self.bytes += size;
        self.rows.push_back(result);
    }

    /// Writes what waits, oldest first, until the store refuses one;
    /// whether everything is written.
    async fn flush(&mut self, store: &Store) -> Result<(), AppError> {
        while let Some(front) = self.rows.front() {
            write(store, RecordBatchResult(front.clone())).await?;
            let written = self.rows.pop_front().expect("the front row");
            self.bytes -= Self::weight(&written);
        }
        Ok(())
    }
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
            backlog: Backlog::default(),
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
        let mut event = NewAuditEvent::new(self.record.actor.clone(), "batch.run")
            .by(self.record.user.as_deref(), self.record.remote_addr.clone());
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

/// Stores the final update and its audit event; `false` when the store
/// failed (to be tried again). A run that was not `running` any more is
/// logged and not tried again.
async fn store_finish(store: &Store, finish: &FinishBatchRun, event: &NewAuditEvent) -> bool {
    match write(store, finish.clone()).await {
        Ok(true) => {
            store.audit(event.clone());
            true
        }
        // only this actor finishes its run, once: a row not `running`
        // means someone else wrote it (or a stopping daemon marked it
        // interrupted), which must be looked into
        Ok(false) => {
            log::error!(run_id = finish.run_id.as_str(); "batch run was not running when finished");
            true
        }
        Err(e) => {
            log::warn!(code = e.code.code(), run_id = finish.run_id.as_str(), error = e.to_string();
                "batch run end not recorded yet; trying again until the store takes it");
            false
        }
    }
}

/// What a finished run has not stored yet: its waiting results, then its
/// end. Dropped before it is stored (the daemon stops, or the retries give
/// up), it says so in the log.
struct Unstored {
    backlog: Backlog,
    finish: FinishBatchRun,
    event: NewAuditEvent,
    stored: bool,
}

impl Unstored {
    /// One attempt; whether everything is stored now.
    async fn store(&mut self, store: &Store) -> bool {
        if !store_ok(store) || self.backlog.flush(store).await.is_err() {
            return false;
        }
        self.stored = store_finish(store, &self.finish, &self.event).await;
        self.stored
    }
}

impl Drop for Unstored {
    fn drop(&mut self) {
        if !self.stored {
            log::error!(code = pinkpage_actors::ErrorCode::Database.code(), run_id = self.finish.run_id.as_str(),
                results = self.backlog.rows.len();
                "batch run's end and waiting results not recorded; its row stays running until the next start marks it interrupted");
        }
    }
}

/// Stores what the run left unwritten, then its end; while the store
/// fails, keeps trying in a detached task for [`RETRY_FOR`] (the run is
/// over, and its client hears the end without waiting for the store).
async fn persist_end(store: Store, backlog: Backlog, finish: FinishBatchRun, mut event: NewAuditEvent) {
    if backlog.dropped > 0 {
        if let Some(detail) = event.detail.as_mut() {
            detail["unrecorded_results"] = backlog.dropped.into();
        }
    }
    let mut unstored = Unstored {
        backlog,
        finish,
        event,
        stored: false,
    };
    if unstored.store(&store).await {
        return;
    }
    actix::spawn(async move {
        let started = Instant::now();
        let mut wait = RETRY_FIRST;
        while started.elapsed() < RETRY_FOR {
            tokio::time::sleep(wait).await;
            if unstored.store(&store).await {
                log::info!(run_id = unstored.finish.run_id.as_str(); "batch run recorded after the store recovered");
                return;
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
        // dropping `unstored` logs what is given up
    });
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
        let backlog = std::mem::take(&mut self.backlog);
        actix::spawn(persist_end(self.store.clone(), backlog, finish, event));
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
                let mut backlog = std::mem::take(&mut self.backlog);
                AtomicResponse::new(Box::pin(
                    async move {
                        // no attempt while the store is known to fail; the
                        // backlog is written once it recovers. Earlier
                        // results go first, making room before this one
                        // is kept.
                        if store_ok(&store) {
                            let _ = backlog.flush(&store).await;
                        }
                        backlog.push(result.clone());
                        if store_ok(&store) {
                            if let Err(e) = backlog.flush(&store).await {
                                log::warn!(code = e.code.code(), run_id = result.run_id.as_str(),
                                    waiting = backlog.rows.len(), error = e.to_string();
                                    "batch results wait for the store");
                            }
                        }
                        // awaited: a client that renders slowly slows the run
                        let _ = client
                            .send(TaskMessage {
                                task_id,
                                event: TaskEvent::Notice(result),
                            })
                            .await;
                        backlog
                    }
                    .into_actor(self)
                    .map(|backlog, act, _| act.backlog = backlog),
                ))
            }
            TaskEvent::Finished {
                outcome,
                cleanup_error,
            } => {
                let write = (self.row == Row::Running).then(|| self.finish(&outcome));
                self.row = Row::Finished;
                let backlog = std::mem::take(&mut self.backlog);
                AtomicResponse::new(Box::pin(
                    async move {
                        if let Some((finish, event)) = write {
                            persist_end(store, backlog, finish, event).await;
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
mod tests {
    use std::sync::Arc;

    use pinkpage_actors::batch::plan::CommandResult;
    use pinkpage_actors::task::TaskId;
    use tokio::sync::mpsc;

    use super::*;
    use crate::store::GetBatchRun;

    /// Stands for the connection: keeps what the recorder passes on.
    struct Client(mpsc::UnboundedSender<BatchMessage>);

    impl Actor for Client {
        type Context = Context<Self>;
    }

    impl Handler<BatchMessage> for Client {
        type Result = ();
        fn handle(&mut self, m: BatchMessage, _: &mut Context<Self>) {
            let _ = self.0.send(m);
        }
    }

    /// A run of two commands on one server.
    fn record(run_id: &str) -> NewBatchRun {
        NewBatchRun {
            run_id: run_id.to_owned(),
            actor: "conn-1".to_owned(),
            user: Some("ana".to_owned()),
            remote_addr: None,
            servers: vec!["s1".to_owned()],
            commands: vec!["true".to_owned(), "sleep 100".to_owned()],
            stop_on_error: false,
            retries: 0,
            retry_delay_ms: 1000,
            timeout_s: None,
        }
    }

    fn succeeded(run_id: &str, index: usize) -> BatchMessage {
        let result = CommandResult {
            run_id: run_id.to_owned(),
            server: "s1".to_owned(),
            index,
            command: "true".to_owned(),
            status: CommandStatus::Succeeded,
            exit_status: Some(0),
            exit_signal: None,
            stdout: String::new(),
            stderr: String::new(),
            truncated: false,
            attempts: 1,
            duration_ms: 3,
            error: None,
        };
        TaskMessage {
            task_id: TaskId::next(),
            event: TaskEvent::Notice(Arc::new(result)),
        }
    }

    /// A recorder of `run_id` whose row is written, with its store and
    /// what its client receives.
    async fn recorder(
        dir: &tempfile::TempDir,
        run_id: &str,
    ) -> (
        actix::Addr<BatchRecorderActor>,
        Store,
        mpsc::UnboundedReceiver<BatchMessage>,
    ) {
        let store = Store::open(&dir.path().join("pinkpage.db"), false).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let client = Client(tx).start();
        let addr = BatchRecorderActor::new(store.clone(), record(run_id), client.recipient()).start();
        addr.send(CreateRun).await.unwrap().unwrap();
        (addr, store, rx)
    }

    #[actix_rt::test]
    async fn what_the_client_receives_is_already_stored_and_the_end_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, store, mut rx) = recorder(&dir, "run-1").await;

        let notice = succeeded("run-1", 0);
        let id = notice.task_id;
        rec.do_send(notice);
        let passed = rx.recv().await.unwrap();
        assert_eq!(passed.task_id, id, "passed on unchanged");
        let run = store
            .call(GetBatchRun::first_page("run-1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run.results.len(), 1);
        assert_eq!(run.run.status, "running");

        let summary = BatchSummary {
            run_id: "run-1".into(),
            succeeded: 1,
            failed: 0,
            skipped: 1,
            duration_ms: 40,
            cancelled: true,
            unreachable: Vec::new(),
        };
        rec.do_send(TaskMessage {
            task_id: id,
            event: TaskEvent::Finished {
                outcome: summary,
                cleanup_error: None,
            },
        });
        drop(rec);
        let end = rx.recv().await.unwrap();
        assert!(matches!(end.event, TaskEvent::Finished { .. }));
        // the client hears the end only once it is stored
        let run = store
            .call(GetBatchRun::first_page("run-1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(run.run.status, "cancelled");
        assert_eq!((run.run.succeeded, run.run.failed, run.run.skipped), (1, 0, 1));
        assert_eq!(run.run.duration_ms, Some(40));
        // it stopped after the end: its client is dropped, nothing follows
        assert!(rx.recv().await.is_none());
    }

    #[actix_rt::test]
    async fn a_run_that_ends_without_its_summary_is_recorded_cancelled_with_the_stored_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, store, mut rx) = recorder(&dir, "run-2").await;
        rec.do_send(succeeded("run-2", 0));
        rx.recv().await.unwrap();

        // the run vanished (or never started): nobody can reach the recorder
        drop(rec);
        // its client is dropped once it stopped, after the final write began
        assert!(rx.recv().await.is_none());
        // the write itself runs detached: poll the store, bounded
        let mut run = None;
        for _ in 0..400 {
            let got = store
                .call(GetBatchRun::first_page("run-2"))
                .await
                .unwrap()
                .unwrap();
            if got.run.status != "running" {
                run = Some(got);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let run = run.expect("the row was finished");
        assert_eq!(run.run.status, "cancelled");
        assert_eq!((run.run.succeeded, run.run.failed, run.run.skipped), (1, 0, 1));
        assert_eq!(run.results.len(), 1);
    }
}
