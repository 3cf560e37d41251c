//! The journal against the in-memory store (`crate::store::memory`), with
//! paused time: order, batching, the bound, a failing and a hanging store.

use std::sync::Arc;

use pinkpage_actors::health::{HealthTransition, ServerHealthStatus};

use super::*;
use crate::records::workflow::StepState;
use crate::records::{BatchWrite, WorkflowWrite};
use crate::store::memory::MemoryStore;
use crate::store::{AuditStore, StoreFuture};

fn journal(store: &Arc<MemoryStore>, fail_open: bool) -> Journal {
    Journal::start(Stores::of(store.clone()), fail_open)
}

fn event(n: usize) -> NewAuditEvent {
    NewAuditEvent::new("test", format!("a{n}"))
}

/// Lets the writer task run until it waits (for records or a retry).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[actix::test]
async fn records_are_written_in_order_in_batches_and_the_journal_stays_ok() {
    let store = Arc::new(MemoryStore::default());
    let journal = journal(&store, false);
    for n in 0..600 {
        journal.audit(event(n));
    }
    settle().await;
    assert_eq!(
        store.audit_actions(),
        (0..600).map(|n| format!("a{n}")).collect::<Vec<_>>()
    );
    assert!(
        store.batch_sizes().iter().all(|n| *n <= BATCH),
        "{:?}",
        store.batch_sizes()
    );
    assert!(
        store.batch_sizes().len() < 600,
        "written in batches, not one by one"
    );
    assert_eq!(journal.health().status, "ok");
    assert!(journal.admit_new_work("x").is_ok());
}

#[actix::test]
async fn a_receipt_tells_the_id_the_store_gave() {
    let store = Arc::new(MemoryStore::default());
    let journal = journal(&store, false);
    journal.audit(event(0));
    let receipt = journal.record(event(1));
    assert_eq!(journal.settled(receipt).await, Settled::Written(Some(2)));
}

#[actix::test]
async fn a_failing_store_degrades_refuses_new_work_keeps_every_stream_and_recovers() {
    tokio::time::pause();
    let store = Arc::new(MemoryStore::default());
    store.set_failing(true);
    let journal = journal(&store, false);
    journal.audit(event(1));
    let health = HealthTransition {
        status: {
            let mut s = ServerHealthStatus::unchecked("web1", "10.0.0.5");
            s.is_healthy = Some(false);
            s.last_checked = Some("2026-12-07T10:00:00.000Z".into());
            s
        },
        previous: Some(true),
    };
    drop(journal.record(health));
    settle().await;
    let h = journal.health();
    assert_eq!((h.status, h.pending_rows, h.failed_writes), ("degraded", 2, 1));
    assert_eq!(
        journal.admit_new_work("ssh_command").unwrap_err().code,
        ErrorCode::Database
    );
    // a waiting caller is told at once that its record waits
    let receipt = journal.record(event(2));
    assert_eq!(journal.settled(receipt).await, Settled::Waiting);
    // retries back off: 0.5 s, 1 s, 2 s after each failure
    tokio::time::sleep(Duration::from_millis(3600)).await;
    settle().await;
    assert!(journal.health().failed_writes >= 4);
    journal.audit(event(3));
    store.set_failing(false);
    tokio::time::sleep(RETRY_MAX).await;
    settle().await;
    assert_eq!(store.audit_actions(), ["a1", "a2", "a3"]);
    let events = store.health_events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].at, "2026-12-07T10:00:00.000Z",
        "recorded at the time of its check, not of the write"
    );
    let h = journal.health();
    assert_eq!((h.status, h.pending_rows, h.dropped_rows), ("ok", 0, 0));
    assert!(h.degraded_since.is_none());
    assert!(journal.admit_new_work("ssh_command").is_ok());
}

fn step_output(step: usize, bytes: usize) -> WorkflowWrite {
    WorkflowWrite::StepFinished {
        run_id: "r".into(),
        step,
        state: StepState::Succeeded,
        duration_ms: 1,
        exit_status: Some(0),
        error: None,
        output_tail: "o".repeat(bytes),
        confirmed_by: None,
    }
}

#[actix::test]
async fn bulk_output_past_its_share_is_dropped_counted_and_reported_and_audit_rows_still_fit() {
    tokio::time::pause();
    let store = Arc::new(MemoryStore::default());
    store.set_failing(true);
    let bounds = Bounds {
        max_bytes: 100_000,
        max_records: 1_000,
        audit_reserve: 40_000,
        anonymous_share: 4,
    };
    let journal = Journal::with_bounds(Stores::of(store.clone()), false, bounds);
    let mut dropped = 0;
    for step in 0..20 {
        let receipt = journal.record(step_output(step, 10_000));
        if journal.settled(receipt).await == Settled::Dropped {
            dropped += 1;
        }
    }
    assert!(dropped > 0, "60 KB of bulk room cannot hold 200 KB");
    // the rows of work still have their reserve
    journal.audit(NewAuditEvent::new("conn", "ssh.command.end"));
    assert_eq!(journal.health().dropped_rows, dropped);
    store.set_failing(false);
    tokio::time::sleep(RETRY_MAX).await;
    settle().await;
    let rows = store.audit_rows();
    let actions: Vec<&str> = rows.iter().map(|r| r.event.action.as_str()).collect();
    assert_eq!(actions, ["ssh.command.end", "records.dropped"]);
    let detail = rows[1].event.detail.as_ref().unwrap();
    assert_eq!(detail["dropped"]["workflow"], dropped);
}

#[actix::test]
async fn a_flood_of_failed_logins_leaves_room_for_the_rows_of_work() {
    tokio::time::pause();
    let store = Arc::new(MemoryStore::default());
    store.set_failing(true);
    let journal = journal(&store, false);
    let share = Bounds::default().max_records / Bounds::default().anonymous_share;
    for _ in 0..share + 100 {
        journal.audit(NewAuditEvent::new("rest", "auth.login.failed"));
    }
    assert_eq!(journal.health().pending_rows, share);
    journal.audit(NewAuditEvent::new("conn", "ssh.command.end"));
    assert_eq!(journal.health().pending_rows, share + 1);
}

#[actix::test]
async fn each_stream_keeps_its_own_order_while_streams_take_turns() {
    tokio::time::pause();
    let store = Arc::new(MemoryStore::default());
    let journal = journal(&store, false);
    let run = crate::records::NewBatchRun {
        run_id: "b1".into(),
        at: crate::records::now(),
        actor: "c".into(),
        user: None,
        remote_addr: None,
        servers: vec!["s1".into()],
        commands: vec!["true".into()],
        stop_on_error: false,
        retries: 0,
        retry_delay_ms: 0,
        timeout_s: None,
    };
    drop(journal.record(BatchWrite::Create(run)));
    for n in 0..300 {
        journal.audit(event(n));
    }
    let end = crate::records::BatchEnd {
        run_id: "b1".into(),
        at: crate::records::now(),
        status: crate::records::BatchRunStatus::Completed,
        succeeded: 1,
        failed: 0,
        skipped: 0,
        duration_ms: 5,
    };
    let receipt = journal.record(BatchWrite::End(end));
    assert_eq!(journal.settled(receipt).await, Settled::Written(None));
    let run = crate::store::BatchStore::get(
        &*store,
        "b1".into(),
        crate::records::batch::ResultsPage::FIRST,
        crate::records::Visible::All,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(run.run.status, crate::records::BatchRunStatus::Completed);
    settle().await;
    assert_eq!(store.audit_actions().len(), 300);
}

#[actix::test]
async fn a_record_the_store_refuses_is_dropped_alone_and_the_rest_is_written() {
    tokio::time::pause();
    let store = Arc::new(MemoryStore::default());
    let journal = journal(&store, false);
    let orphan = pinkpage_actors::batch::plan::CommandResult {
        run_id: "no-such-run".into(),
        server: "s1".into(),
        index: 0,
        command: "true".into(),
        status: pinkpage_actors::batch::plan::CommandStatus::Succeeded,
        exit_status: Some(0),
        exit_signal: None,
        stdout: String::new(),
        stderr: String::new(),
        truncated: false,
        attempts: 1,
        duration_ms: 1,
        error: None,
    };
    let refused = journal.record(BatchWrite::Result(Arc::new(orphan)));
    assert!(matches!(journal.settled(refused).await, Settled::Rejected(_)));
    journal.audit(event(1));
    settle().await;
    assert_eq!(store.audit_actions(), ["a1"]);
    assert_eq!(
        journal.health().status,
        "ok",
        "a refused record is not a failing store"
    );
}

/// An audit store whose writes never end until told.
struct Hanging(Arc<Notify>, Arc<MemoryStore>);

impl AuditStore for Hanging {
    fn append(&self, rows: Vec<NewAuditEvent>) -> BoxFuture<'static, Writes> {
        let (release, store) = (self.0.clone(), self.1.clone());
        Box::pin(async move {
            release.notified().await;
            store.append(rows).await
        })
    }
    fn list(&self, q: crate::records::AuditQuery) -> StoreFuture<Vec<crate::records::AuditEvent>> {
        self.1.list(q)
    }
    fn page_after(&self, after_id: i64, limit: u32) -> StoreFuture<Vec<crate::records::AuditEvent>> {
        self.1.page_after(after_id, limit)
    }
    fn cut(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> StoreFuture<Option<crate::records::AuditCut>> {
        self.1.cut(before, limit)
    }
    fn interrupt_left_work_and_start(&self, instance: &str) -> StoreFuture<Vec<String>> {
        self.1.interrupt_left_work_and_start(instance)
    }
}

#[actix::test]
async fn a_write_that_hangs_degrades_the_journal_until_it_ends() {
    tokio::time::pause();
    let store = Arc::new(MemoryStore::default());
    let release = Arc::new(Notify::new());
    let stores = Stores {
        audit: Arc::new(Hanging(release.clone(), store.clone())),
        ..Stores::of(store.clone())
    };
    let journal = Journal::start(stores, false);
    journal.audit(event(1));
    settle().await;
    assert_eq!(
        journal.health().status,
        "ok",
        "a write in progress is not a failure"
    );
    tokio::time::sleep(WRITE_HANGS_AFTER + Duration::from_millis(10)).await;
    settle().await;
    assert_eq!(journal.health().status, "degraded");
    assert!(journal.admit_new_work("ssh_command").is_err());
    release.notify_one();
    settle().await;
    assert_eq!(store.audit_actions(), ["a1"]);
    assert_eq!(journal.health().status, "ok");
}

#[actix::test]
async fn failing_open_admits_new_work_while_degraded() {
    tokio::time::pause();
    let store = Arc::new(MemoryStore::default());
    store.set_failing(true);
    let journal = journal(&store, true);
    journal.audit(event(1));
    settle().await;
    assert_eq!(journal.health().status, "degraded");
    assert!(journal.admit_new_work("ssh_command").is_ok());
}
