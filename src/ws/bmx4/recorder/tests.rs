//! The recorder against the in-memory store: what a client sees is
//! already stored, the end is stored once, a run that vanishes is ended,
//! and a store that fails delays nothing and loses nothing.

use std::sync::Arc;
use std::time::Duration;

use pinkpage_actors::batch::plan::CommandResult;
use pinkpage_actors::task::TaskId;
use tokio::sync::mpsc;

use super::*;
use crate::records::batch::ResultsPage;
use crate::store::memory::MemoryStore;
use crate::store::{BatchStore, Stores};

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
        at: crate::records::now(),
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

fn finished(run_id: &str, task_id: TaskId, succeeded: u32) -> BatchMessage {
    TaskMessage {
        task_id,
        event: TaskEvent::Finished {
            outcome: BatchSummary {
                run_id: run_id.into(),
                succeeded,
                failed: 0,
                skipped: 2 - succeeded,
                duration_ms: 40,
                cancelled: true,
                unreachable: Vec::new(),
            },
            cleanup_error: None,
        },
    }
}

/// A recorder of `run_id` whose start is recorded, with its journal, its
/// store and what its client receives.
async fn recorder(
    store: &Arc<MemoryStore>,
    run_id: &str,
) -> (
    actix::Addr<BatchRecorderActor>,
    Journal,
    mpsc::UnboundedReceiver<BatchMessage>,
) {
    let journal = Journal::start(Stores::of(store.clone()), false);
    let (tx, rx) = mpsc::unbounded_channel();
    let client = Client(tx).start();
    let addr = BatchRecorderActor::new(journal.clone(), record(run_id), client.recipient()).start();
    addr.send(CreateRun).await.unwrap().unwrap();
    (addr, journal, rx)
}

async fn stored(store: &MemoryStore, run_id: &str) -> crate::records::BatchRunDetail {
    store
        .get(run_id.into(), ResultsPage::FIRST, crate::records::Visible::All)
        .await
        .unwrap()
        .expect("the run is stored")
}

#[actix::test]
async fn what_the_client_receives_is_already_stored_and_the_end_is_stored_once() {
    let store = Arc::new(MemoryStore::default());
    let (rec, _journal, mut rx) = recorder(&store, "run-1").await;

    let notice = succeeded("run-1", 0);
    let id = notice.task_id;
    rec.do_send(notice);
    let passed = rx.recv().await.unwrap();
    assert_eq!(passed.task_id, id, "passed on unchanged");
    let run = stored(&store, "run-1").await;
    assert_eq!(run.results.len(), 1, "stored before the client saw it");
    assert_eq!(run.run.status, BatchRunStatus::Running);

    rec.do_send(finished("run-1", id, 1));
    drop(rec);
    let end = rx.recv().await.unwrap();
    assert!(matches!(end.event, TaskEvent::Finished { .. }));
    // the client hears the end only once it is stored
    let run = stored(&store, "run-1").await;
    assert_eq!(run.run.status, BatchRunStatus::Cancelled);
    assert_eq!((run.run.succeeded, run.run.failed, run.run.skipped), (1, 0, 1));
    assert_eq!(run.run.duration_ms, Some(40));
    // it stopped after the end: its client is dropped, nothing follows
    assert!(rx.recv().await.is_none());
}

#[actix::test]
async fn a_run_that_ends_without_its_summary_is_recorded_cancelled_with_the_counts_seen() {
    let store = Arc::new(MemoryStore::default());
    let (rec, journal, mut rx) = recorder(&store, "run-2").await;
    rec.do_send(succeeded("run-2", 0));
    rx.recv().await.unwrap();

    // the run vanished (or never started): nobody can reach the recorder
    drop(rec);
    // its client is dropped once it stopped, after its end was recorded
    assert!(rx.recv().await.is_none());
    tokio::time::timeout(Duration::from_secs(5), journal.flushed())
        .await
        .expect("the journal writes the end");
    let run = stored(&store, "run-2").await;
    assert_eq!(run.run.status, BatchRunStatus::Cancelled);
    assert_eq!((run.run.succeeded, run.run.failed, run.run.skipped), (1, 0, 1));
    assert_eq!(run.results.len(), 1);
    let batch_rows: Vec<String> = store
        .audit_actions()
        .into_iter()
        .filter(|a| a == "batch.run")
        .collect();
    assert_eq!(batch_rows.len(), 1, "one audit row for the run");
}

#[actix::test]
async fn a_run_across_a_failing_store_reaches_its_client_at_once_and_is_recorded_whole_after() {
    tokio::time::pause();
    let store = Arc::new(MemoryStore::default());
    let (rec, journal, mut rx) = recorder(&store, "run-3").await;
    store.set_failing(true);
    let first = succeeded("run-3", 0);
    let id = first.task_id;
    rec.do_send(first);
    // the first write fails and the journal says so; the result is passed
    // on without waiting for the store
    let passed = tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .expect("not held back while the store fails")
        .unwrap();
    assert_eq!(passed.task_id, id);
    assert!(journal.is_failing());
    rec.do_send(succeeded("run-3", 1));
    rx.recv().await.unwrap();
    rec.do_send(finished("run-3", id, 2));
    let end = rx.recv().await.unwrap();
    assert!(matches!(end.event, TaskEvent::Finished { .. }));
    assert!(
        store
            .get("run-3".into(), ResultsPage::FIRST, crate::records::Visible::All)
            .await
            .is_err(),
        "nothing stored yet"
    );

    store.set_failing(false);
    tokio::time::timeout(Duration::from_secs(30), journal.flushed())
        .await
        .expect("written once the store recovers");
    let run = stored(&store, "run-3").await;
    assert_eq!(run.results.len(), 2);
    assert_eq!(run.run.status, BatchRunStatus::Cancelled);
    assert_eq!(run.run.succeeded, 2);
}
