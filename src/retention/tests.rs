//! The store methods retention calls, held to one contract on every store
//! (memory, SQLite and PostgreSQL), and the sweep over them: exact counts, nothing
//! younger or unfinished deleted, the limits read afresh at each sweep.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use pinkpage_actors::batch::plan::{CommandResult, CommandStatus};
use pinkpage_actors::health::{HealthTransition, ServerHealthStatus};
use pinkpage_actors::testing::eventually;
use pinkpage_actors::workflow::plan::{Action, PlannedStep};

use super::*;
use crate::records::batch::ResultsPage;
use crate::records::workflow::{RunState, WorkflowRunsQuery};
use crate::records::{
    BatchEnd, BatchRunStatus, BatchWrite, NewBatchRun, NewWorkflowRun, Visible, WorkflowWrite,
};
use crate::store::memory::MemoryStore;
use crate::store::sqlite::SqliteStore;

fn days_ago(n: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(n)
}

fn ninety_days() -> RetentionSettings {
    RetentionSettings {
        records_days: 90,
        audit_days: 90,
        interval: Duration::from_secs(60),
    }
}

fn batch_run(id: &str, at: DateTime<Utc>) -> BatchWrite {
    BatchWrite::Create(NewBatchRun {
        run_id: id.into(),
        at,
        actor: "c".into(),
        user: Some("ana".into()),
        remote_addr: None,
        servers: vec!["web-1".into()],
        commands: vec!["true".into()],
        stop_on_error: false,
        retries: 0,
        retry_delay_ms: 0,
        timeout_s: None,
    })
}

fn batch_result(id: &str, index: usize) -> BatchWrite {
    BatchWrite::Result(Arc::new(CommandResult {
        run_id: id.into(),
        server: "web-1".into(),
        index,
        command: "true".into(),
        status: CommandStatus::Succeeded,
        exit_status: Some(0),
        exit_signal: None,
        stdout: "ok".into(),
        stderr: String::new(),
        truncated: false,
        attempts: 1,
        duration_ms: 1,
        error: None,
    }))
}

fn batch_end(id: &str, at: DateTime<Utc>, status: BatchRunStatus) -> BatchWrite {
    BatchWrite::End(BatchEnd {
        run_id: id.into(),
        at,
        status,
        succeeded: 1,
        failed: 0,
        skipped: 0,
        duration_ms: 5,
    })
}

fn workflow_run(id: &str, at: DateTime<Utc>, steps: usize) -> WorkflowWrite {
    WorkflowWrite::Create(NewWorkflowRun {
        run_id: id.into(),
        at,
        workflow: "w".into(),
        actor: "rest".into(),
        user: "ana".into(),
        remote_addr: None,
        params: BTreeMap::new(),
        steps: (0..steps)
            .map(|index| PlannedStep {
                index,
                name: format!("s{index}"),
                continue_on_error: false,
                action: Action::Pause {
                    message: "go on?".into(),
                    timeout_s: 60.0,
                },
            })
            .collect(),
    })
}

fn transition(server: &str, at: DateTime<Utc>) -> HealthTransition {
    let mut status = ServerHealthStatus::unchecked(server, "10.0.0.5");
    status.is_healthy = Some(true);
    status.last_checked = Some(timestamp(at));
    HealthTransition {
        status,
        previous: None,
    }
}

/// Old and young records of every kind retention deletes:
/// - BMX4: `old-done` (3 results, ended 95 days ago), `old-cancelled`
///   (ended 91 days ago), `young` (2 results, ended 10 days ago) and
///   `old-running` (started 100 days ago, never ended);
/// - workflows: `wf-old` (2 steps, ended 95 days ago), `wf-paused`
///   (started 100 days ago, paused), `wf-young` (ended 5 days ago);
/// - health: `a` at 100 and 99 days and a day ago, `b` only 100 days ago;
/// - audit: three rows 100 days old, then one of now ([`fill_audit`]).
async fn fill(stores: &Stores) {
    fill_records(stores).await;
    fill_audit(stores).await;
}

/// [`fill`] but the audit trail.
async fn fill_records(stores: &Stores) {
    let mut batch = vec![batch_run("old-done", days_ago(100))];
    batch.extend((0..3).map(|i| batch_result("old-done", i)));
    batch.push(batch_end("old-done", days_ago(95), BatchRunStatus::Completed));
    batch.push(batch_run("old-cancelled", days_ago(92)));
    batch.push(batch_end(
        "old-cancelled",
        days_ago(91),
        BatchRunStatus::Cancelled,
    ));
    batch.push(batch_run("young", days_ago(11)));
    batch.extend((0..2).map(|i| batch_result("young", i)));
    batch.push(batch_end("young", days_ago(10), BatchRunStatus::Completed));
    batch.push(batch_run("old-running", days_ago(100)));
    batch.push(batch_result("old-running", 0));
    stores.batches.apply(batch).await.unwrap();

    let finished = |id: &str, at| WorkflowWrite::Finished {
        run_id: id.into(),
        state: RunState::Succeeded,
        error: None,
        at,
    };
    let paused = WorkflowWrite::Paused {
        run_id: "wf-paused".into(),
        step: 0,
    };
    let started = WorkflowWrite::StepStarted {
        run_id: "wf-paused".into(),
        step: 0,
        at: days_ago(100),
    };
    stores
        .workflows
        .apply(vec![
            workflow_run("wf-old", days_ago(96), 2),
            finished("wf-old", days_ago(95)),
            workflow_run("wf-paused", days_ago(100), 1),
            started,
            paused,
            workflow_run("wf-young", days_ago(6), 1),
            finished("wf-young", days_ago(5)),
        ])
        .await
        .unwrap();

    stores
        .health
        .record(vec![
            transition("a", days_ago(100)),
            transition("a", days_ago(99)),
            transition("b", days_ago(100)),
            transition("a", days_ago(1)),
        ])
        .await
        .unwrap();
}

/// [`fill`]'s audit rows.
async fn fill_audit(stores: &Stores) {
    let mut audit: Vec<NewAuditEvent> = (0..3)
        .map(|i| {
            let mut e = NewAuditEvent::new("c", format!("old.{i}"));
            e.at = days_ago(100);
            e
        })
        .collect();
    audit.push(NewAuditEvent::new("c", "young"));
    stores.audit.append(audit).await.unwrap();
}

async fn batch_ids(stores: &Stores) -> Vec<String> {
    let runs = stores.batches.list(100, 0, Visible::All).await.unwrap();
    let mut ids: Vec<String> = runs.into_iter().map(|r| r.run_id).collect();
    ids.sort();
    ids
}

async fn workflow_ids(stores: &Stores) -> Vec<String> {
    let query = WorkflowRunsQuery {
        limit: 100,
        offset: 0,
        workflow: None,
        visible: Visible::All,
        in_flight: false,
    };
    let mut ids: Vec<String> = stores
        .workflows
        .list(query)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    ids.sort();
    ids
}

async fn health_times(stores: &Stores, server: &str) -> Vec<String> {
    let events = stores.health.list(server.into(), 100).await.unwrap();
    events.into_iter().map(|e| e.at).collect()
}

/// The contract of `BatchStore::expire`, `WorkflowStore::expire` and
/// `HealthStore::expire` on one store (the audit trail has a contract of
/// its own).
async fn expire_keeps_its_contract(stores: Stores) {
    fill_records(&stores).await;
    let before = days_ago(90);

    // two rows a call: a run's results go first, the run once none are left
    let mut calls = Vec::new();
    loop {
        let e = stores.batches.expire(before, 2).await.unwrap();
        calls.push((e.runs, e.children));
        if e.rows() == 0 {
            break;
        }
    }
    assert_eq!(calls, [(0, 2), (1, 1), (1, 0), (0, 0)], "oldest finished first");
    assert_eq!(batch_ids(&stores).await, ["old-running", "young"]);
    let young = stores
        .batches
        .get("young".into(), ResultsPage::FIRST, Visible::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(young.results_total, 2, "a young run keeps its results");
    let running = stores
        .batches
        .get("old-running".into(), ResultsPage::FIRST, Visible::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.results_total, 1, "a running run is never touched");

    let e = stores.workflows.expire(before, 500).await.unwrap();
    assert_eq!((e.runs, e.children), (1, 2));
    assert_eq!(
        stores.workflows.expire(before, 500).await.unwrap(),
        Expired::default()
    );
    assert_eq!(workflow_ids(&stores).await, ["wf-paused", "wf-young"]);

    assert_eq!(stores.health.expire(before, 1).await.unwrap(), 1);
    assert_eq!(stores.health.expire(before, 1).await.unwrap(), 1);
    assert_eq!(stores.health.expire(before, 1).await.unwrap(), 0);
    let a = health_times(&stores, "a").await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert!(a[0] > timestamp(before), "a's young transition stays: {a:?}");
    let b = health_times(&stores, "b").await;
    assert_eq!(b.len(), 1, "b's newest stays, however old: {b:?}");
}

async fn sqlite_stores(dir: &tempfile::TempDir) -> Stores {
    let key = crate::store::chain::KeyFile::new(dir.path().join("audit.key"));
    let store = SqliteStore::open(&dir.path().join("t.db"), &key).unwrap_or_else(|e| panic!("{e}"));
    Stores::of(store)
}

#[actix::test]
async fn postgres_expires_only_finished_old_records_in_bounded_steps() {
    let (store, _db) = crate::store::postgres::testing::store();
    expire_keeps_its_contract(Stores::of(store)).await;
}

#[actix::test]
async fn the_memory_store_expires_only_finished_old_records_in_bounded_steps() {
    expire_keeps_its_contract(Stores::of(Arc::new(MemoryStore::default()))).await;
}

#[actix::test]
async fn sqlite_expires_only_finished_old_records_in_bounded_steps() {
    let dir = tempfile::tempdir().unwrap();
    expire_keeps_its_contract(sqlite_stores(&dir).await).await;
}

/// A sweep on one store: every kind, exact counts, then nothing left.
async fn a_sweep_deletes_what_is_old_and_counts_it(stores: Stores) {
    fill(&stores).await;
    let sweep = sweep(&stores, &ninety_days(), Utc::now()).await;
    assert!(sweep.error.is_none(), "{:?}", sweep.error);
    assert_eq!(
        sweep.swept,
        Swept {
            batch_runs: 2,
            batch_results: 3,
            workflow_runs: 1,
            workflow_steps: 2,
            health_events: 2,
            audit_rows: 3,
            audit_cuts: 1,
        }
    );
    assert_eq!(batch_ids(&stores).await, ["old-running", "young"]);
    assert_eq!(workflow_ids(&stores).await, ["wf-paused", "wf-young"]);
    let left: Vec<String> = stores
        .audit
        .page_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    assert_eq!(left, ["young", "audit.cut"]);
    let again = super::sweep(&stores, &ninety_days(), Utc::now()).await;
    assert!(again.swept.is_empty(), "{:?}", again.swept);
}

#[actix::test]
async fn a_sweep_on_the_memory_store_deletes_what_is_old_and_counts_it() {
    a_sweep_deletes_what_is_old_and_counts_it(Stores::of(Arc::new(MemoryStore::default()))).await;
}

#[actix::test]
async fn a_sweep_on_sqlite_deletes_what_is_old_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    a_sweep_deletes_what_is_old_and_counts_it(sqlite_stores(&dir).await).await;
}

#[actix::test]
async fn a_sweep_on_postgres_deletes_what_is_old_and_counts_it() {
    let (store, _db) = crate::store::postgres::testing::store();
    a_sweep_deletes_what_is_old_and_counts_it(Stores::of(store)).await;
}

#[actix::test]
async fn zero_days_keeps_everything() {
    let stores = Stores::of(Arc::new(MemoryStore::default()));
    fill(&stores).await;
    let forever = RetentionSettings {
        records_days: 0,
        audit_days: 0,
        ..ninety_days()
    };
    let sweep = sweep(&stores, &forever, Utc::now()).await;
    assert!(sweep.swept.is_empty(), "{:?}", sweep.swept);
    assert_eq!(batch_ids(&stores).await.len(), 4);
    assert_eq!(stores.audit.page_after(0, 100).await.unwrap().len(), 4);
}

#[actix::test]
async fn a_failing_store_stops_the_sweep_with_what_it_deleted_so_far() {
    let store = Arc::new(MemoryStore::default());
    let stores = Stores::of(store.clone());
    fill(&stores).await;
    store.set_failing(true);
    let sweep = sweep(&stores, &ninety_days(), Utc::now()).await;
    assert_eq!(sweep.error.map(|e| e.code.code()), Some(40000));
    assert!(sweep.swept.is_empty());
}

/// The loop sweeps at start, then every interval, each time with the
/// limits the getter gives then (a reload changes them), and audits a
/// sweep that deleted something.
#[actix::test]
async fn the_task_sweeps_at_start_and_each_interval_with_the_limits_of_the_moment() {
    tokio::time::pause();
    let store = Arc::new(MemoryStore::default());
    let stores = Stores::of(store.clone());
    fill(&stores).await;
    let journal = Journal::start(stores.clone(), false);
    let limits = Arc::new(Mutex::new(RetentionSettings {
        records_days: 0,
        audit_days: 0,
        ..ninety_days()
    }));
    let source = limits.clone();
    spawn(
        stores.clone(),
        journal.clone(),
        Arc::new(move || source.lock().unwrap().clone()),
    );
    // the start's sweep keeps everything: nothing deleted, nothing audited
    tokio::time::sleep(Duration::from_secs(1)).await;
    journal.flushed().await;
    assert_eq!(batch_ids(&stores).await.len(), 4);
    assert!(!store.audit_actions().contains(&"retention.sweep".to_owned()));

    // a reload shortens the limits: the next sweep, an interval later, uses them
    limits.lock().unwrap().records_days = 90;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(batch_ids(&stores).await.len(), 4, "not before the interval");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let swept = eventually("the next sweep's audit row", async || {
        journal.flushed().await;
        store
            .audit_rows()
            .into_iter()
            .find(|e| e.event.action == "retention.sweep")
    })
    .await;
    let detail = swept.event.detail.unwrap();
    assert_eq!(detail["batch_runs"], 2, "{detail}");
    assert_eq!(detail["health_events"], 2, "{detail}");
    assert_eq!(
        detail["audit_rows"], 0,
        "the audit limit is still forever: {detail}"
    );
    assert!(detail["audit_before"].is_null(), "{detail}");
    assert_eq!(batch_ids(&stores).await, ["old-running", "young"]);
}
