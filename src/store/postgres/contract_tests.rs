//! The journal's stores held to one contract on SQLite and PostgreSQL
//! (`crate::store`'s promises): each contract is written once against the
//! traits and run on both. Batch and workflow runs filtered before they
//! are paged, a record refused on its own merits while the rest of its
//! batch is written, writes that only move a record forward, start-up
//! recovery touching only its own instance's rows, temporary files left
//! by an instance, the recordings index and retention's candidates.
//! Retention's deletes are held to theirs in `crate::retention`.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use pinkpage_actors::batch::plan::{CommandResult, CommandStatus};
use pinkpage_actors::files::temp_files::{Machine, TempFile, TempKind};
use pinkpage_actors::health::{HealthTransition, ServerHealthStatus};
use pinkpage_actors::workflow::plan::{Action, PlannedStep};
use pinkpage_actors::{AppError, ErrorBody, ErrorCode};

use super::testing::TestDatabase;
use crate::records::batch::ResultsPage;
use crate::records::recording::{Recording, RecordingState, RecordingWrite, RecordingsQuery};
use crate::records::workflow::{RunState, StepState, WorkflowRunsQuery};
use crate::records::{
    timestamp, BatchEnd, BatchRunStatus, BatchWrite, NewBatchRun, NewWorkflowRun, TempFileWrite, Visible,
    WorkflowWrite,
};
use crate::store::sqlite::SqliteStore;
use crate::store::{Applied, Stores};

/// Runs a contract on a fresh SQLite store and a fresh PostgreSQL one.
macro_rules! on_both {
    ($contract:ident) => {
        mod $contract {
            #[actix::test]
            async fn sqlite() {
                let (stores, _dir) = super::sqlite();
                super::$contract(stores).await;
            }

            #[actix::test]
            async fn postgres() {
                let (stores, _db) = super::postgres();
                super::$contract(stores).await;
            }
        }
    };
}

fn sqlite() -> (Stores, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = crate::store::chain::KeyFile::new(dir.path().join("audit.key"));
    let store = SqliteStore::open(&dir.path().join("t.db"), &key).unwrap_or_else(|e| panic!("{e}"));
    (Stores::of(store), dir)
}

fn postgres() -> (Stores, TestDatabase) {
    let (store, db) = super::testing::store();
    (Stores::of(store), db)
}

/// A time the store keeps as it is (milliseconds).
fn ago(d: Duration) -> DateTime<Utc> {
    (Utc::now() - d).trunc_subsecs(3)
}

fn web() -> Visible {
    Visible::OnlyOn(vec!["web-1".into()])
}

fn names(servers: &[&str]) -> Vec<String> {
    servers.iter().map(|s| (*s).to_owned()).collect()
}

fn written(n: usize) -> Vec<Applied> {
    vec![Applied::Written(None); n]
}

fn is_rejected(a: &Applied) -> bool {
    matches!(a, Applied::Rejected(_))
}

// ---- BMX4 runs ----

fn new_run(run_id: &str, servers: &[&str], at: DateTime<Utc>) -> NewBatchRun {
    NewBatchRun {
        run_id: run_id.into(),
        at,
        actor: "c1".into(),
        user: Some("ana".into()),
        remote_addr: None,
        servers: names(servers),
        commands: vec!["true".into()],
        stop_on_error: false,
        retries: 0,
        retry_delay_ms: 0,
        timeout_s: None,
    }
}

fn run(run_id: &str, servers: &[&str]) -> BatchWrite {
    BatchWrite::Create(new_run(run_id, servers, ago(Duration::hours(1))))
}

fn result(run_id: &str, server: &str, index: usize, stdout: &str) -> BatchWrite {
    BatchWrite::Result(Arc::new(command_result(run_id, server, index, stdout)))
}

fn command_result(run_id: &str, server: &str, index: usize, stdout: &str) -> CommandResult {
    CommandResult {
        run_id: run_id.into(),
        server: server.into(),
        index,
        command: format!("cmd {index}"),
        status: CommandStatus::Succeeded,
        exit_status: Some(0),
        exit_signal: None,
        stdout: stdout.into(),
        stderr: String::new(),
        truncated: false,
        attempts: 1,
        duration_ms: 12,
        error: None,
    }
}

fn end(run_id: &str, at: DateTime<Utc>, status: BatchRunStatus) -> BatchWrite {
    BatchWrite::End(BatchEnd {
        run_id: run_id.into(),
        at,
        status,
        succeeded: 2,
        failed: 1,
        skipped: 0,
        duration_ms: 4500,
    })
}

async fn batch_ids(stores: &Stores, limit: u32, offset: u32, visible: Visible) -> Vec<String> {
    let runs = stores.batches.list(limit, offset, visible).await.unwrap();
    runs.into_iter().map(|r| r.run_id).collect()
}

async fn batch_status(stores: &Stores, run_id: &str) -> BatchRunStatus {
    let run = stores
        .batches
        .get(run_id.into(), ResultsPage::FIRST, Visible::All)
        .await
        .unwrap()
        .unwrap();
    run.run.status
}

async fn batch_runs_are_filtered_before_they_are_paged(stores: Stores) {
    let applied = stores
        .batches
        .apply(vec![
            run("web-a", &["web-1"]),
            run("both", &["web-1", "db-1"]),
            run("db", &["db-1"]),
            run("web-b", &["web-1"]),
        ])
        .await
        .unwrap();
    assert_eq!(applied, written(4));
    // one a page: a page is never short because of the filter
    assert_eq!(batch_ids(&stores, 1, 0, web()).await, ["web-b"]);
    assert_eq!(batch_ids(&stores, 1, 1, web()).await, ["web-a"]);
    assert!(batch_ids(&stores, 1, 2, web()).await.is_empty());
    assert_eq!(
        batch_ids(&stores, 10, 0, Visible::All).await,
        ["web-b", "db", "both", "web-a"]
    );
    assert_eq!(batch_ids(&stores, 2, 1, Visible::All).await, ["db", "both"]);
    let get = |id: &str, visible| stores.batches.get(id.into(), ResultsPage::FIRST, visible);
    assert!(get("both", web()).await.unwrap().is_none());
    let both = get("both", Visible::All).await.unwrap().unwrap();
    assert_eq!(both.run.servers, ["web-1", "db-1"]);
    assert_eq!(both.commands, ["true"]);
    assert!(get("web-a", web()).await.unwrap().is_some());
    assert!(get("nope", Visible::All).await.unwrap().is_none());
}
on_both!(batch_runs_are_filtered_before_they_are_paged);

async fn a_result_of_an_unknown_run_is_rejected_and_the_rest_written(stores: Stores) {
    let started = ago(Duration::minutes(5));
    let ended = ago(Duration::minutes(1));
    let mut r = new_run("r", &["a", "b"], started);
    r.commands = vec!["cmd 0".into(), "cmd 1".into()];
    r.stop_on_error = true;
    r.retries = 2;
    r.retry_delay_ms = 1500;
    r.timeout_s = Some(2.5);
    r.remote_addr = Some("192.0.2.7".into());
    let failed = BatchWrite::Result(Arc::new(CommandResult {
        status: CommandStatus::Failed,
        exit_status: None,
        exit_signal: Some("TERM".into()),
        stderr: "slow".into(),
        truncated: true,
        attempts: 3,
        error: Some(AppError::with_detail(ErrorCode::SshCommandTimeout, "after 2.5 s")),
        ..command_result("r", "a", 0, "partial")
    }));
    let applied = stores
        .batches
        .apply(vec![
            BatchWrite::Create(r.clone()),
            result("r", "b", 0, "b0"),
            result("ghost", "a", 0, "lost"),
            result("r", "a", 1, "a1"),
            failed,
            BatchWrite::Create(new_run("r", &["a"], started)),
            end("r", ended, BatchRunStatus::Completed),
        ])
        .await
        .unwrap();
    assert!(
        is_rejected(&applied[2]),
        "a result of an unknown run: {applied:?}"
    );
    assert!(is_rejected(&applied[5]), "a second start of a run: {applied:?}");
    for i in [0, 1, 3, 4, 6] {
        assert_eq!(applied[i], Applied::Written(None), "{i}: {applied:?}");
    }

    let got = stores
        .batches
        .get("r".into(), ResultsPage::FIRST, Visible::All)
        .await
        .unwrap()
        .unwrap();
    let run = &got.run;
    assert_eq!(
        (run.status, run.started_at.as_str(), run.finished_at.as_deref()),
        (
            BatchRunStatus::Completed,
            timestamp(started).as_str(),
            Some(timestamp(ended).as_str())
        )
    );
    assert_eq!(
        (run.succeeded, run.failed, run.skipped, run.duration_ms),
        (2, 1, 0, Some(4500))
    );
    assert_eq!(
        (run.stop_on_error, run.retries, run.retry_delay_ms, run.timeout_s),
        (true, 2, 1500, Some(2.5))
    );
    assert_eq!(
        (
            run.actor.as_str(),
            run.user.as_deref(),
            run.remote_addr.as_deref()
        ),
        ("c1", Some("ana"), Some("192.0.2.7"))
    );
    assert_eq!((run.command_count, got.commands.len()), (2, 2));
    assert_eq!(run.servers, ["a", "b"]);
    // by server, then index
    let keys: Vec<(&str, usize)> = got.results.iter().map(|r| (r.server.as_str(), r.index)).collect();
    assert_eq!(keys, [("a", 0), ("a", 1), ("b", 0)]);
    assert_eq!((got.results_total, got.next_offset), (3, None));
    let a0 = &got.results[0];
    assert_eq!(a0.status, CommandStatus::Failed);
    assert_eq!(
        (
            a0.exit_status,
            a0.exit_signal.as_deref(),
            a0.truncated,
            a0.attempts
        ),
        (None, Some("TERM"), true, 3)
    );
    assert_eq!(
        (a0.stdout.as_str(), a0.stderr.as_str(), a0.duration_ms),
        ("partial", "slow", 12)
    );
    let error = a0.error.as_ref().unwrap();
    assert_eq!(
        (error.code, error.detail.as_deref()),
        (ErrorCode::SshCommandTimeout, Some("after 2.5 s"))
    );
    assert_eq!(
        (got.results[1].exit_status, got.results[1].error.is_none()),
        (Some(0), true)
    );

    // a result written again replaces the one it repeats; a second end
    // changes nothing
    let applied = stores
        .batches
        .apply(vec![
            result("r", "a", 1, "again"),
            end("r", Utc::now(), BatchRunStatus::Cancelled),
        ])
        .await
        .unwrap();
    assert_eq!(applied, written(2));
    let page = |offset| {
        stores
            .batches
            .get("r".into(), ResultsPage { limit: 2, offset }, Visible::All)
    };
    let first = page(0).await.unwrap().unwrap();
    assert_eq!(first.run.status, BatchRunStatus::Completed);
    assert_eq!(first.run.finished_at, Some(timestamp(ended)));
    assert_eq!(first.results[1].stdout, "again");
    assert_eq!(
        (first.results.len(), first.results_total, first.next_offset),
        (2, 3, Some(2))
    );
    let second = page(2).await.unwrap().unwrap();
    assert_eq!(second.results.len(), 1);
    assert_eq!(
        (second.results[0].server.as_str(), second.next_offset),
        ("b", None)
    );
}
on_both!(a_result_of_an_unknown_run_is_rejected_and_the_rest_written);

/// A page of a run's results: how many, the first's index, the total
/// and the next page's offset.
async fn results_page(
    stores: &Stores,
    run_id: &str,
    limit: u32,
    offset: u64,
) -> (usize, Option<usize>, u64, Option<u64>) {
    let got = stores
        .batches
        .get(run_id.into(), ResultsPage { limit, offset }, Visible::All)
        .await
        .unwrap()
        .unwrap();
    let first = got.results.first().map(|r| r.index);
    (got.results.len(), first, got.results_total, got.next_offset)
}

async fn a_page_of_results_ends_at_its_limit_or_its_byte_bound(stores: Stores) {
    // 32 small results: pages of 16 and the whole run, read past any
    // batch of rows the store fetches at a time
    let mut writes = vec![run("small", &["s"])];
    writes.extend((0..32).map(|i| result("small", "s", i, "ok")));
    // 20 of 1 MiB each: a page holds 16 MiB of output at most
    writes.push(run("large", &["s"]));
    let mib = "x".repeat(1 << 20);
    writes.extend((0..20).map(|i| result("large", "s", i, &mib)));
    let applied = stores.batches.apply(writes).await.unwrap();
    assert_eq!(applied, written(54));
    assert_eq!(
        results_page(&stores, "small", 1000, 0).await,
        (32, Some(0), 32, None)
    );
    assert_eq!(
        results_page(&stores, "small", 16, 0).await,
        (16, Some(0), 32, Some(16))
    );
    assert_eq!(
        results_page(&stores, "small", 16, 16).await,
        (16, Some(16), 32, None)
    );
    assert_eq!(
        results_page(&stores, "small", 10, 30).await,
        (2, Some(30), 32, None)
    );
    assert_eq!(results_page(&stores, "small", 10, 40).await, (0, None, 32, None));
    assert_eq!(
        results_page(&stores, "large", 1000, 0).await,
        (16, Some(0), 20, Some(16))
    );
    assert_eq!(
        results_page(&stores, "large", 1000, 16).await,
        (4, Some(16), 20, None)
    );
}
on_both!(a_page_of_results_ends_at_its_limit_or_its_byte_bound);

// ---- workflow runs ----

fn step(index: usize, action: Action) -> PlannedStep {
    PlannedStep {
        index,
        name: format!("s{index}"),
        continue_on_error: false,
        action,
    }
}

fn command(server: &str) -> Action {
    Action::Command {
        server: server.into(),
        command: "uptime".into(),
        stop_phrase: None,
        timeout_s: 10.0,
        expect_exit: vec![0],
    }
}

fn pause() -> Action {
    Action::Pause {
        message: "go on?".into(),
        timeout_s: 60.0,
    }
}

fn workflow(run_id: &str, name: &str, steps: Vec<PlannedStep>) -> WorkflowWrite {
    WorkflowWrite::Create(NewWorkflowRun {
        run_id: run_id.into(),
        at: ago(Duration::hours(1)),
        workflow: name.into(),
        actor: "rest".into(),
        user: "ana".into(),
        remote_addr: Some("192.0.2.9".into()),
        params: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
        steps,
    })
}

fn query(visible: Visible, limit: u32, offset: u32) -> WorkflowRunsQuery {
    WorkflowRunsQuery {
        limit,
        offset,
        workflow: None,
        visible,
        in_flight: false,
    }
}

async fn workflow_ids(stores: &Stores, q: WorkflowRunsQuery) -> Vec<String> {
    let runs = stores.workflows.list(q).await.unwrap();
    runs.into_iter().map(|r| r.run_id).collect()
}

fn finished(run_id: &str, state: RunState, at: DateTime<Utc>) -> WorkflowWrite {
    WorkflowWrite::Finished {
        run_id: run_id.into(),
        state,
        error: None,
        at,
    }
}

fn step_started(run_id: &str, step: usize, at: DateTime<Utc>) -> WorkflowWrite {
    WorkflowWrite::StepStarted {
        run_id: run_id.into(),
        step,
        at,
    }
}

async fn workflow_runs_move_forward_and_are_filtered_before_they_are_paged(stores: Stores) {
    let transfer = Action::Transfer {
        transfer: "logs".into(),
        source_server: "web-1".into(),
        source_glob: "*.log".into(),
        destination_server: "db-1".into(),
        destination_dir: "/srv".into(),
    };
    let applied = stores
        .workflows
        .apply(vec![
            workflow(
                "web",
                "deploy",
                vec![
                    step(0, command("web-1")),
                    step(1, pause()),
                    step(2, command("web-1")),
                ],
            ),
            workflow("both", "copy", vec![step(0, transfer)]),
            workflow("db", "deploy", vec![step(0, command("db-1"))]),
            workflow("web", "deploy", vec![step(0, pause())]),
            step_started("ghost", 0, Utc::now()),
            finished("db", RunState::Succeeded, ago(Duration::minutes(1))),
        ])
        .await
        .unwrap();
    assert!(is_rejected(&applied[3]), "a second start of a run: {applied:?}");
    for i in [0, 1, 2, 4, 5] {
        assert_eq!(applied[i], Applied::Written(None), "{i}: {applied:?}");
    }

    // the filter comes before the paging
    assert_eq!(workflow_ids(&stores, query(web(), 1, 0)).await, ["web"]);
    assert!(workflow_ids(&stores, query(web(), 1, 1)).await.is_empty());
    assert_eq!(
        workflow_ids(&stores, query(Visible::All, 10, 0)).await,
        ["db", "both", "web"]
    );
    assert_eq!(workflow_ids(&stores, query(Visible::All, 1, 1)).await, ["both"]);
    let deploys = WorkflowRunsQuery {
        workflow: Some("deploy".into()),
        ..query(Visible::All, 10, 0)
    };
    assert_eq!(workflow_ids(&stores, deploys).await, ["db", "web"]);
    let in_flight = WorkflowRunsQuery {
        in_flight: true,
        ..query(Visible::All, 10, 0)
    };
    assert_eq!(workflow_ids(&stores, in_flight).await, ["both", "web"]);
    assert!(stores
        .workflows
        .get("both".into(), web())
        .await
        .unwrap()
        .is_none());
    assert!(stores
        .workflows
        .get("nope".into(), Visible::All)
        .await
        .unwrap()
        .is_none());

    // "web" runs its first step, pauses at its second, is confirmed, then fails
    let t0 = ago(Duration::minutes(30));
    let t1 = ago(Duration::minutes(20));
    let t2 = ago(Duration::minutes(10));
    let failure = ErrorBody {
        code: 22001,
        message: "ssh command timed out".into(),
        detail: Some("after 10 s".into()),
    };
    let applied = stores
        .workflows
        .apply(vec![
            step_started("web", 0, t0),
            WorkflowWrite::StepFinished {
                run_id: "web".into(),
                step: 0,
                state: StepState::Succeeded,
                duration_ms: 800,
                exit_status: Some(0),
                error: None,
                output_tail: "up 3 days".into(),
                confirmed_by: None,
            },
            step_started("web", 1, t1),
            WorkflowWrite::Paused {
                run_id: "web".into(),
                step: 1,
            },
        ])
        .await
        .unwrap();
    assert_eq!(applied, written(4));
    let get = || stores.workflows.get("web".into(), Visible::All);
    let paused = get().await.unwrap().unwrap();
    assert_eq!(
        (paused.run.status, paused.run.current_step),
        (RunState::Paused, Some(1))
    );
    let states: Vec<StepState> = paused.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        states,
        [StepState::Succeeded, StepState::Paused, StepState::Pending]
    );
    let s0 = &paused.steps[0];
    assert_eq!(
        (
            s0.started_at.as_deref(),
            s0.duration_ms,
            s0.exit_status,
            s0.output_tail.as_deref()
        ),
        (
            Some(timestamp(t0).as_str()),
            Some(800),
            Some(0),
            Some("up 3 days")
        )
    );
    assert_eq!((s0.name.as_str(), s0.kind.as_str()), ("s0", "command"));
    assert_eq!(s0.plan["server"], "web-1");

    let applied = stores
        .workflows
        .apply(vec![
            WorkflowWrite::StepFinished {
                run_id: "web".into(),
                step: 1,
                state: StepState::Succeeded,
                duration_ms: 5000,
                exit_status: None,
                error: None,
                output_tail: String::new(),
                confirmed_by: Some("bob".into()),
            },
            WorkflowWrite::Finished {
                run_id: "web".into(),
                state: RunState::Failed,
                error: Some(failure.clone()),
                at: t2,
            },
            // after its end a run does not move back
            step_started("web", 2, Utc::now()),
        ])
        .await
        .unwrap();
    assert_eq!(applied, written(3));
    let done = get().await.unwrap().unwrap();
    let r = &done.run;
    assert_eq!(
        (r.status, r.finished_at.as_deref(), r.error.as_ref()),
        (RunState::Failed, Some(timestamp(t2).as_str()), Some(&failure))
    );
    assert_eq!(
        (
            r.workflow.as_str(),
            r.actor.as_str(),
            r.user.as_deref(),
            r.remote_addr.as_deref()
        ),
        ("deploy", "rest", Some("ana"), Some("192.0.2.9"))
    );
    assert_eq!(r.params.get("env").map(String::as_str), Some("prod"));
    let states: Vec<StepState> = done.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        states,
        [StepState::Succeeded, StepState::Succeeded, StepState::Skipped]
    );
    assert_eq!(done.steps[1].confirmed_by.as_deref(), Some("bob"));
    assert_eq!(done.steps[2].started_at, None);
}
on_both!(workflow_runs_move_forward_and_are_filtered_before_they_are_paged);

// ---- recordings ----

fn recording(id: &str, user: &str, server: &str, command: &str, started: DateTime<Utc>) -> Recording {
    Recording {
        id: id.into(),
        pty_id: id.into(),
        kind: "command".into(),
        user: user.into(),
        server: server.into(),
        command: command.into(),
        terminal_id: None,
        run_id: None,
        step: None,
        started_at: started,
        ended_at: None,
        state: RecordingState::Recording,
        reason: None,
        exit_status: None,
        error: None,
        bytes: 0,
        width: 120,
        height: 40,
        file: format!("{id}.cast"),
    }
}

fn start(r: &Recording) -> RecordingWrite {
    RecordingWrite::Start(Box::new(r.clone()))
}

fn ended(id: &str, at: DateTime<Utc>, bytes: i64) -> RecordingWrite {
    RecordingWrite::End {
        id: id.into(),
        at,
        state: RecordingState::Ended,
        reason: "exit".into(),
        exit_status: Some(0),
        error: None,
        bytes,
    }
}

fn recordings_query() -> RecordingsQuery {
    RecordingsQuery {
        user: None,
        server: None,
        since: None,
        until: None,
        text: None,
        run_id: None,
        visible: Visible::All,
        owner: None,
        limit: 100,
        offset: 0,
    }
}

async fn recording_ids(stores: &Stores, q: RecordingsQuery) -> Vec<String> {
    let found = stores.recordings.list(q).await.unwrap();
    found.into_iter().map(|r| r.id).collect()
}

async fn recordings_are_listed_got_and_offered_to_retention(stores: Stores) {
    let old = recording("old", "ana", "web-1", "tail -f app.log", ago(Duration::days(10)));
    let mut step = recording("step", "bob", "db-1", "vacuumdb", ago(Duration::days(5)));
    step.kind = "workflow_step".into();
    step.run_id = Some("run-1".into());
    step.step = Some(2);
    step.terminal_id = Some("t-1".into());
    let mut live = recording("live", "ana", "db-1", "", ago(Duration::hours(1)));
    live.bytes = 50;
    let old_end = ago(Duration::days(9));
    let step_end = ago(Duration::days(4));
    let applied = stores
        .recordings
        .apply(vec![
            start(&old),
            start(&step),
            start(&live),
            start(&old),
            ended("old", old_end, 100),
            ended("step", step_end, 400),
            // only a recording still recording ends
            ended("old", Utc::now(), 1),
        ])
        .await
        .unwrap();
    assert!(is_rejected(&applied[3]), "a second start of an id: {applied:?}");
    for i in [0, 1, 2, 4, 5, 6] {
        assert_eq!(applied[i], Applied::Written(None), "{i}: {applied:?}");
    }
    let all = recordings_query;
    assert_eq!(recording_ids(&stores, all()).await, ["live", "step", "old"]);
    let cases: Vec<(RecordingsQuery, Vec<&str>)> = vec![
        (
            RecordingsQuery {
                user: Some("ana".into()),
                ..all()
            },
            vec!["live", "old"],
        ),
        (
            RecordingsQuery {
                server: Some("db-1".into()),
                ..all()
            },
            vec!["live", "step"],
        ),
        (
            RecordingsQuery {
                text: Some("-f app".into()),
                ..all()
            },
            vec!["old"],
        ),
        (
            RecordingsQuery {
                run_id: Some("run-1".into()),
                ..all()
            },
            vec!["step"],
        ),
        (
            RecordingsQuery {
                visible: web(),
                ..all()
            },
            vec!["old"],
        ),
        (
            RecordingsQuery {
                owner: Some("bob".into()),
                ..all()
            },
            vec!["step"],
        ),
        (
            RecordingsQuery {
                since: Some(ago(Duration::days(7))),
                ..all()
            },
            vec!["live", "step"],
        ),
        (
            RecordingsQuery {
                until: Some(ago(Duration::days(7))),
                ..all()
            },
            vec!["old"],
        ),
        (
            RecordingsQuery {
                limit: 1,
                offset: 1,
                ..all()
            },
            vec!["step"],
        ),
        (
            RecordingsQuery {
                visible: Visible::OnlyOn(vec!["db-1".into()]),
                user: Some("ana".into()),
                ..all()
            },
            vec!["live"],
        ),
    ];
    for (q, want) in cases {
        let shown = format!("{q:?}");
        assert_eq!(recording_ids(&stores, q).await, want, "{shown}");
    }

    let got = stores.recordings.get("step".into()).await.unwrap().unwrap();
    assert_eq!((got.id.as_str(), got.pty_id.as_str()), ("step", "step"));
    assert_eq!(
        (
            got.kind.as_str(),
            got.user.as_str(),
            got.server.as_str(),
            got.command.as_str()
        ),
        ("workflow_step", "bob", "db-1", "vacuumdb")
    );
    assert_eq!(
        (got.terminal_id.as_deref(), got.run_id.as_deref(), got.step),
        (Some("t-1"), Some("run-1"), Some(2))
    );
    assert_eq!((got.started_at, got.ended_at), (step.started_at, Some(step_end)));
    assert_eq!(
        (
            got.state,
            got.reason.as_deref(),
            got.exit_status,
            got.error.as_deref()
        ),
        (RecordingState::Ended, Some("exit"), Some(0), None)
    );
    assert_eq!(
        (got.bytes, got.width, got.height, got.file.as_str()),
        (400, 120, 40, "step.cast")
    );
    let first_end = stores.recordings.get("old".into()).await.unwrap().unwrap();
    assert_eq!((first_end.ended_at, first_end.bytes), (Some(old_end), 100));
    assert!(stores.recordings.get("nope".into()).await.unwrap().is_none());

    // retention: the old finished ones, then the oldest finished while
    // all hold more than the bound; never one still recording
    let expired = |before, max_bytes, limit| {
        let found = stores.recordings.expired(before, max_bytes, limit);
        async move { found.await.unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>() }
    };
    let week = ago(Duration::days(7));
    let month = ago(Duration::days(30));
    assert_eq!(expired(week, u64::MAX, 10).await, ["old"]);
    assert!(expired(month, u64::MAX, 10).await.is_empty());
    // 550 bytes in all ("live" 50 so far), 100 allowed: "old" (100) then
    // "step" (400)
    assert_eq!(expired(month, 100, 10).await, ["old", "step"]);
    assert_eq!(expired(month, 500, 10).await, ["old"]);
    assert_eq!(expired(month, 0, 10).await, ["old", "step"]);
    assert_eq!(expired(week, 0, 1).await, ["old"]);

    let applied = stores
        .recordings
        .apply(vec![RecordingWrite::Remove("old".into())])
        .await
        .unwrap();
    assert_eq!(applied, written(1));
    assert!(stores.recordings.get("old".into()).await.unwrap().is_none());
    assert_eq!(recording_ids(&stores, all()).await, ["live", "step"]);
}
on_both!(recordings_are_listed_got_and_offered_to_retention);

// ---- start-up recovery ----

async fn interrupt_left_touches_only_the_given_instance(stores: Stores) {
    let done_at = ago(Duration::minutes(2));
    stores
        .batches
        .apply(vec![
            run("live", &["web-1"]),
            run("done", &["web-1"]),
            end("done", done_at, BatchRunStatus::Completed),
        ])
        .await
        .unwrap();
    stores
        .workflows
        .apply(vec![
            workflow("wf-live", "w", vec![step(0, command("web-1")), step(1, pause())]),
            step_started("wf-live", 0, ago(Duration::minutes(3))),
            workflow("wf-paused", "w", vec![step(0, pause())]),
            step_started("wf-paused", 0, ago(Duration::minutes(3))),
            WorkflowWrite::Paused {
                run_id: "wf-paused".into(),
                step: 0,
            },
            workflow("wf-done", "w", vec![step(0, pause())]),
            finished("wf-done", RunState::Succeeded, done_at),
        ])
        .await
        .unwrap();
    let open = recording("rec-live", "ana", "web-1", "top", ago(Duration::minutes(5)));
    let closed = recording("rec-done", "ana", "web-1", "ls", ago(Duration::minutes(5)));
    stores
        .recordings
        .apply(vec![start(&open), start(&closed), ended("rec-done", done_at, 10)])
        .await
        .unwrap();

    // another instance's recovery leaves this one's live work alone
    let at = ago(Duration::seconds(1));
    assert_eq!(stores.batches.interrupt_left("elsewhere", at).await.unwrap(), 0);
    assert_eq!(stores.workflows.interrupt_left("elsewhere", at).await.unwrap(), 0);
    assert_eq!(
        stores.recordings.interrupt_left("elsewhere", at).await.unwrap(),
        0
    );
    assert_eq!(batch_status(&stores, "live").await, BatchRunStatus::Running);
    let in_flight = WorkflowRunsQuery {
        in_flight: true,
        ..query(Visible::All, 10, 0)
    };
    assert_eq!(
        workflow_ids(&stores, in_flight.clone()).await,
        ["wf-paused", "wf-live"]
    );
    let rec = stores.recordings.get("rec-live".into()).await.unwrap().unwrap();
    assert_eq!(rec.state, RecordingState::Recording);

    // its own marks what it left, and only that
    assert_eq!(
        stores
            .batches
            .interrupt_left(crate::records::instance(), at)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        stores
            .workflows
            .interrupt_left(crate::records::instance(), at)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        stores
            .recordings
            .interrupt_left(crate::records::instance(), at)
            .await
            .unwrap(),
        1
    );
    let live = stores
        .batches
        .get("live".into(), ResultsPage::FIRST, Visible::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (live.run.status, live.run.finished_at),
        (BatchRunStatus::Interrupted, Some(timestamp(at)))
    );
    let done = stores
        .batches
        .get("done".into(), ResultsPage::FIRST, Visible::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.run.status, done.run.finished_at),
        (BatchRunStatus::Completed, Some(timestamp(done_at)))
    );
    assert!(workflow_ids(&stores, in_flight).await.is_empty());
    let wf = |id: &str| stores.workflows.get(id.into(), Visible::All);
    let live = wf("wf-live").await.unwrap().unwrap();
    assert_eq!(
        (live.run.status, live.run.finished_at),
        (RunState::Interrupted, Some(timestamp(at)))
    );
    let states: Vec<StepState> = live.steps.iter().map(|s| s.status).collect();
    assert_eq!(states, [StepState::Interrupted, StepState::Skipped]);
    let paused = wf("wf-paused").await.unwrap().unwrap();
    assert_eq!(paused.run.status, RunState::Interrupted);
    assert_eq!(paused.steps[0].status, StepState::Interrupted);
    let done = wf("wf-done").await.unwrap().unwrap();
    assert_eq!(
        (done.run.status, done.run.finished_at),
        (RunState::Succeeded, Some(timestamp(done_at)))
    );
    let rec = stores.recordings.get("rec-live".into()).await.unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.reason.as_deref(), rec.ended_at),
        (RecordingState::Interrupted, Some("interrupted"), Some(at))
    );
    let rec = stores.recordings.get("rec-done".into()).await.unwrap().unwrap();
    assert_eq!((rec.state, rec.ended_at), (RecordingState::Ended, Some(done_at)));

    // a late end changes nothing, and a second recovery finds nothing
    stores
        .batches
        .apply(vec![end("live", Utc::now(), BatchRunStatus::Completed)])
        .await
        .unwrap();
    assert_eq!(batch_status(&stores, "live").await, BatchRunStatus::Interrupted);
    stores
        .recordings
        .apply(vec![ended("rec-live", Utc::now(), 99)])
        .await
        .unwrap();
    let rec = stores.recordings.get("rec-live".into()).await.unwrap().unwrap();
    assert_eq!(rec.state, RecordingState::Interrupted);
    assert_eq!(
        stores
            .batches
            .interrupt_left(crate::records::instance(), at)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        stores
            .workflows
            .interrupt_left(crate::records::instance(), at)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        stores
            .recordings
            .interrupt_left(crate::records::instance(), at)
            .await
            .unwrap(),
        0
    );
}
on_both!(interrupt_left_touches_only_the_given_instance);

// ---- health ----

fn transition(server: &str, healthy: bool, previous: Option<bool>, at: &str) -> HealthTransition {
    let mut status = ServerHealthStatus::unchecked(server, "10.0.0.5");
    status.is_healthy = Some(healthy);
    status.last_checked = Some(at.to_owned());
    status.last_error = (!healthy).then(|| "connection refused".to_owned());
    status.latency_ms = healthy.then_some(12.5);
    HealthTransition { status, previous }
}

async fn health_transitions_get_growing_ids_and_are_listed_per_server(stores: Stores) {
    let applied = stores
        .health
        .record(vec![
            transition("web1", true, None, "2025-01-01T12:00:00.000Z"),
            transition("web2", false, None, "2025-01-01T12:00:00.000Z"),
            transition("web1", false, Some(true), "2025-01-01T12:01:00.000Z"),
        ])
        .await
        .unwrap();
    let ids: Vec<i64> = applied
        .iter()
        .map(|a| match a {
            Applied::Written(Some(id)) => *id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let events = stores.health.list("web1".into(), 10).await.unwrap();
    assert_eq!(events.len(), 2);
    let (down, up) = (&events[0], &events[1]);
    assert_eq!((down.id, up.id), (ids[2], ids[0]));
    assert_eq!(
        (down.is_healthy, down.previous, down.at.as_str()),
        (false, Some(true), "2025-01-01T12:01:00.000Z")
    );
    assert_eq!(
        (
            down.server_name.as_str(),
            down.host.as_str(),
            down.error.as_deref(),
            down.latency_ms
        ),
        ("web1", "10.0.0.5", Some("connection refused"), None)
    );
    assert_eq!(
        (up.is_healthy, up.previous, up.error.as_deref(), up.latency_ms),
        (true, None, None, Some(12.5))
    );
    assert_eq!(
        stores.health.list("web1".into(), 1).await.unwrap(),
        std::slice::from_ref(down)
    );
    assert!(stores.health.list("nope".into(), 10).await.unwrap().is_empty());
}
on_both!(health_transitions_get_growing_ids_and_are_listed_per_server);

// ---- temporary files ----

fn temp_file(path: &str, kind: TempKind, port: u16) -> TempFile {
    TempFile {
        server: "web-1".into(),
        machine: Machine {
            username: "deploy".into(),
            host: "web1.example".into(),
            port,
        },
        path: path.into(),
        kind,
    }
}

async fn temp_files_an_instance_left_are_read_back_with_their_ids(stores: Stores) {
    let files = [
        temp_file("/tmp/.pp-upload-1", TempKind::Upload, 22),
        temp_file("/tmp/.pp-transfer-2", TempKind::Transfer, 2222),
        temp_file("/tmp/.pp-script-3", TempKind::Script, u16::MAX),
    ];
    let applied = stores
        .temp_files
        .apply(files.iter().cloned().map(TempFileWrite::Insert).collect())
        .await
        .unwrap();
    let ids: Vec<i64> = applied
        .iter()
        .map(|a| match a {
            Applied::Written(Some(id)) => *id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let applied = stores
        .temp_files
        .apply(vec![TempFileWrite::Delete(ids[1]), TempFileWrite::Delete(-1)])
        .await
        .unwrap();
    assert_eq!(applied, written(2));

    assert!(stores.temp_files.left("elsewhere").await.unwrap().is_empty());
    let left = stores.temp_files.left(crate::records::instance()).await.unwrap();
    let got: Vec<(Option<i64>, &TempFile, u32)> = left.iter().map(|l| (l.id, &l.file, l.attempts)).collect();
    assert_eq!(got, [(Some(ids[0]), &files[0], 0), (Some(ids[2]), &files[2], 0)]);
}
on_both!(temp_files_an_instance_left_are_read_back_with_their_ids);
