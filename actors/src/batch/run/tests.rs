//! The retry, delay and stop-on-error rules with paused time and a
//! scripted link; the actor's parallelism and cancel with the same link.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Context, Handler};
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use tokio::time::Instant;

use super::*;
use crate::batch::link::{Cancel, LinkFactory, ServerLink};
use crate::batch::plan::{BatchPlan, RetryPolicy};
use crate::error::{AppError, ErrorCode};
use crate::server::ServerSpec;
use crate::ssh::{ExecLimits, ExecOutput};
use crate::task::{Pending, TaskEvent, TaskId};

/// What one scripted attempt does: take `took`, then end with `outcome`.
#[derive(Clone)]
struct Step {
    took: Duration,
    outcome: Result<u32, ErrorCode>,
}

fn exit(code: u32, ms: u64) -> Step {
    Step {
        took: Duration::from_millis(ms),
        outcome: Ok(code),
    }
}

fn error(code: ErrorCode, ms: u64) -> Step {
    Step {
        took: Duration::from_millis(ms),
        outcome: Err(code),
    }
}

/// What the link saw, shared with the test.
#[derive(Default)]
struct Seen {
    /// (command, when the attempt started, relative to the test's start)
    attempts: Vec<(String, Duration)>,
    closed: u32,
    cancelled: u32,
}

/// A link that plays each command's steps in turn (the last one repeats).
struct Scripted {
    script: HashMap<String, VecDeque<Step>>,
    seen: Rc<RefCell<Seen>>,
    t0: Instant,
    cancel: Option<Cancel>,
}

impl Scripted {
    fn new(script: &[(&str, Vec<Step>)], seen: Rc<RefCell<Seen>>) -> Self {
        Scripted {
            script: script
                .iter()
                .map(|(c, steps)| (c.to_string(), steps.iter().cloned().collect()))
                .collect(),
            seen,
            t0: Instant::now(),
            cancel: None,
        }
    }
}

impl ServerLink for Scripted {
    fn exec<'a>(&'a mut self, command: &'a str) -> LocalBoxFuture<'a, Result<ExecOutput, AppError>> {
        async move {
            self.seen
                .borrow_mut()
                .attempts
                .push((command.to_owned(), self.t0.elapsed()));
            let steps = self.script.get_mut(command).expect("scripted command");
            let step = if steps.len() > 1 {
                steps.pop_front().unwrap()
            } else {
                steps[0].clone()
            };
            let cancel = self.cancel.clone();
            let run = tokio::time::sleep(step.took);
            if let Some(cancel) = cancel {
                tokio::select! {
                    _ = run => {}
                    _ = cancel.cancelled() => {
                        self.seen.borrow_mut().cancelled += 1;
                        return Err(AppError::new(ErrorCode::SshCommandFailed));
                    }
                }
            } else {
                run.await;
            }
            match step.outcome {
                Ok(code) => Ok(ExecOutput {
                    exit_status: Some(code),
                    stdout: format!("out of {command}").into_bytes(),
                    stderr: b"err".to_vec(),
                    ..Default::default()
                }),
                Err(code) => Err(AppError::with_detail(code, "scripted")),
            }
        }
        .boxed_local()
    }

    fn close(&mut self) -> LocalBoxFuture<'_, ()> {
        self.seen.borrow_mut().closed += 1;
        async {}.boxed_local()
    }
}

fn server(name: &str) -> Arc<ServerSpec> {
    Arc::new(ServerSpec {
        name: name.to_owned(),
        host: "127.0.0.1".to_owned(),
        port: 1,
        username: "nobody".to_owned(),
        auth: crate::server::Auth::Password(crate::Secret::new("unused".to_owned())),
        host_key_fingerprint: None,
        encoding: encoding_rs::UTF_8,
        tags: Vec::new(),
    })
}

fn policy(retries: u32, delay_ms: u64, stop_on_error: bool) -> RetryPolicy {
    RetryPolicy {
        retries,
        retry_delay: Duration::from_millis(delay_ms),
        stop_on_error,
    }
}

fn commands(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Runs one server's commands and returns the results and what the link saw.
async fn run(
    script: &[(&str, Vec<Step>)],
    names: &[&str],
    policy: RetryPolicy,
) -> (Vec<CommandResult>, Seen) {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut link = Scripted::new(script, seen.clone());
    let (_tx, cancel) = Cancel::new();
    let mut results = Vec::new();
    run_server(
        &server("s1"),
        &mut link,
        &commands(names),
        policy,
        &cancel,
        &mut |r| {
            results.push(r);
            async {}.boxed_local()
        },
    )
    .await;
    drop(link);
    let seen = Rc::try_unwrap(seen).ok().unwrap().into_inner();
    (results, seen)
}

#[tokio::test(start_paused = true)]
async fn a_command_that_fails_twice_then_succeeds_takes_three_attempts_with_the_delay_between() {
    let script = [("flaky", vec![exit(1, 100), exit(1, 100), exit(0, 100)])];
    let (results, seen) = run(&script, &["flaky"], policy(5, 500, false)).await;

    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r.status, CommandStatus::Succeeded);
    assert_eq!(r.attempts, 3);
    assert_eq!(r.exit_status, Some(0));
    // three runs of 100 ms and two pauses of 500 ms
    assert_eq!(r.duration_ms, 1300);
    let starts: Vec<u128> = seen.attempts.iter().map(|(_, at)| at.as_millis()).collect();
    assert_eq!(starts, vec![0, 600, 1200]);
    assert_eq!(seen.closed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_command_that_keeps_failing_stops_after_its_retries() {
    let script = [("bad", vec![exit(2, 10)])];
    let (results, seen) = run(&script, &["bad"], policy(2, 1000, false)).await;

    assert_eq!(results[0].status, CommandStatus::Failed);
    assert_eq!(results[0].attempts, 3);
    assert_eq!(results[0].exit_status, Some(2));
    assert_eq!(seen.attempts.len(), 3);
    assert_eq!(results[0].duration_ms, 3 * 10 + 2 * 1000);
}

#[tokio::test(start_paused = true)]
async fn no_retries_means_one_attempt_and_no_delay() {
    let script = [("bad", vec![exit(1, 10)])];
    let (results, _) = run(&script, &["bad"], policy(0, 60_000, false)).await;
    assert_eq!(results[0].attempts, 1);
    assert_eq!(results[0].duration_ms, 10);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_counts_as_a_failed_attempt_and_is_retried() {
    let script = [(
        "slow",
        vec![error(ErrorCode::SshCommandTimeout, 1000), exit(0, 10)],
    )];
    let (results, _) = run(&script, &["slow"], policy(1, 0, true)).await;
    assert_eq!(results[0].status, CommandStatus::Succeeded);
    assert_eq!(results[0].attempts, 2);

    let script = [("slow", vec![error(ErrorCode::SshCommandTimeout, 1000)])];
    let (results, _) = run(&script, &["slow"], policy(0, 0, true)).await;
    assert_eq!(results[0].status, CommandStatus::Failed);
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        Some(ErrorCode::SshCommandTimeout)
    );
}

#[tokio::test(start_paused = true)]
async fn stop_on_error_skips_the_rest_of_the_server_s_commands() {
    let script = [
        ("a", vec![exit(0, 1)]),
        ("b", vec![exit(1, 1)]),
        ("c", vec![exit(0, 1)]),
    ];
    let (results, seen) = run(&script, &["a", "b", "c"], policy(1, 10, true)).await;

    let statuses: Vec<_> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![
            CommandStatus::Succeeded,
            CommandStatus::Failed,
            CommandStatus::Skipped
        ]
    );
    assert_eq!(results[2].attempts, 0);
    assert_eq!(results.iter().map(|r| r.index).collect::<Vec<_>>(), vec![0, 1, 2]);
    // b was tried twice (one retry), c never
    let tried: Vec<&str> = seen.attempts.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(tried, vec!["a", "b", "b"]);
}

#[tokio::test(start_paused = true)]
async fn without_stop_on_error_every_command_runs() {
    let script = [
        ("a", vec![exit(0, 1)]),
        ("b", vec![exit(1, 1)]),
        ("c", vec![exit(0, 1)]),
    ];
    let (results, _) = run(&script, &["a", "b", "c"], policy(0, 0, false)).await;
    let statuses: Vec<_> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![
            CommandStatus::Succeeded,
            CommandStatus::Failed,
            CommandStatus::Succeeded
        ]
    );
    assert_eq!(results[0].stdout, "out of a");
    assert_eq!(results[0].stderr, "err");
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_server_is_tried_once_with_its_retries_and_the_rest_carry_the_error() {
    let script = [
        ("a", vec![error(ErrorCode::SshAuthFailed, 5)]),
        ("b", vec![exit(0, 1)]),
    ];
    let (results, seen) = run(&script, &["a", "b"], policy(2, 100, false)).await;

    assert_eq!(seen.attempts.len(), 3, "only the first command tries to connect");
    assert_eq!(results[0].attempts, 3);
    assert_eq!(results[1].attempts, 0);
    for r in &results {
        assert_eq!(r.status, CommandStatus::Failed);
        assert_eq!(r.error.as_ref().map(|e| e.code), Some(ErrorCode::SshAuthFailed));
    }

    let (results, _) = run(&script, &["a", "b"], policy(0, 0, true)).await;
    assert_eq!(results[1].status, CommandStatus::Skipped);
    assert_eq!(
        results[1].error.as_ref().map(|e| e.code),
        Some(ErrorCode::SshAuthFailed)
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_during_the_retry_delay_reports_nothing_more_and_closes_the_link() {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut link = Scripted::new(&[("bad", vec![exit(1, 10)])], seen.clone());
    let (tx, cancel) = Cancel::new();
    let t0 = Instant::now();
    let cancel_later = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tx.send(true).unwrap();
    };
    let mut results = Vec::new();
    let (spec, names) = (server("s1"), commands(&["bad"]));
    let mut report = |r| {
        results.push(r);
        async {}.boxed_local()
    };
    let work = run_server(
        &spec,
        &mut link,
        &names,
        policy(10, 60_000, false),
        &cancel,
        &mut report,
    );
    tokio::join!(work, cancel_later);
    assert!(results.is_empty());
    assert_eq!(t0.elapsed(), Duration::from_millis(500), "the delay is cut short");
    assert_eq!(seen.borrow().closed, 1);
}

/// Collects what a run reports, with the task id it was stamped with.
struct Collector(tokio::sync::mpsc::UnboundedSender<BatchMessage>);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<BatchMessage> for Collector {
    type Result = ();
    fn handle(&mut self, m: BatchMessage, _: &mut Context<Self>) {
        let _ = self.0.send(m);
    }
}

/// Every server gets the same script; the cancel is wired in unless the
/// link is to ignore it.
struct Factory {
    script: Vec<(&'static str, Vec<Step>)>,
    seen: Rc<RefCell<Seen>>,
    deaf: bool,
}

impl Factory {
    fn new(script: Vec<(&'static str, Vec<Step>)>, seen: Rc<RefCell<Seen>>) -> Rc<Self> {
        Rc::new(Factory {
            script,
            seen,
            deaf: false,
        })
    }
}

impl LinkFactory for Factory {
    fn link(&self, _: &Arc<ServerSpec>, _: ExecLimits, cancel: Cancel) -> Box<dyn ServerLink> {
        let mut link = Scripted::new(&self.script, self.seen.clone());
        if !self.deaf {
            link.cancel = Some(cancel);
        }
        Box::new(link)
    }
}

fn plan(servers: &[&str], names: &[&str]) -> BatchPlan {
    BatchPlan {
        run_id: "run-1".to_owned(),
        servers: servers.iter().map(|s| server(s)).collect(),
        commands: commands(names),
        policy: policy(0, 0, false),
        limits: ExecLimits::default(),
    }
}

/// Starts a run of `plan` reporting to a collector; its task id, its
/// address and what it reports.
fn start(
    plan: BatchPlan,
    factory: Rc<Factory>,
) -> (
    TaskId,
    actix::Addr<BatchRunActor>,
    tokio::sync::mpsc::UnboundedReceiver<BatchMessage>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let collector = Collector(tx).start();
    let id = TaskId::next();
    let (reporter, _) = Pending::new(id, collector.recipient()).split();
    let addr = BatchRunActor::new(plan, factory, reporter).start();
    (id, addr, rx)
}

/// What a run reported until its `Finished`: the results, the summary and
/// the cleanup error. Every message must carry `id`.
async fn collect_until_finished(
    id: TaskId,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<BatchMessage>,
) -> (Vec<CommandResult>, BatchSummary, Option<AppError>) {
    let mut results = Vec::new();
    loop {
        let m = rx.recv().await.expect("the run reports its end");
        assert_eq!(m.task_id, id, "every message carries the run's task id");
        match m.event {
            TaskEvent::Notice(r) => results.push((*r).clone()),
            TaskEvent::Finished {
                outcome,
                cleanup_error,
            } => return (results, outcome, cleanup_error),
        }
    }
}

#[actix_rt::test]
async fn servers_run_in_parallel_and_the_run_takes_as_long_as_the_slowest() {
    tokio::time::pause();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let factory = Factory::new(
        vec![("sleep", vec![exit(0, 1000)]), ("true", vec![exit(0, 0)])],
        seen.clone(),
    );
    let (id, _run, mut rx) = start(plan(&["a", "b", "c"], &["sleep", "true"]), factory);

    let (results, summary, cleanup) = collect_until_finished(id, &mut rx).await;
    assert_eq!(results.len(), 6);
    assert!(results.iter().all(|r| r.run_id == "run-1"));
    assert_eq!((summary.succeeded, summary.failed, summary.skipped), (6, 0, 0));
    assert!(!summary.cancelled);
    assert!(cleanup.is_none());
    // three servers of 1 s each, side by side (not 3 s; the few ms over
    // are actix's own timers moving paused time)
    assert!(
        (1000..1100).contains(&summary.duration_ms),
        "{}",
        summary.duration_ms
    );
    assert_eq!(seen.borrow().closed, 3);
    assert!(rx.recv().await.is_none(), "nothing follows Finished");
}

#[actix_rt::test]
async fn stop_cancels_the_running_commands_and_finishes_once_their_links_are_closed() {
    tokio::time::pause();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let factory = Factory::new(
        vec![("quick", vec![exit(0, 10)]), ("sleep", vec![exit(0, 1_000_000)])],
        seen.clone(),
    );
    let (id, run, mut rx) = start(plan(&["a", "b"], &["quick", "sleep", "quick"]), factory);
    // both servers report "quick", then sit in "sleep"
    for _ in 0..2 {
        let m = rx.recv().await.unwrap();
        assert!(matches!(m.event, TaskEvent::Notice(_)));
    }
    run.send(Stop).await.unwrap();

    let (results, summary, cleanup) = collect_until_finished(id, &mut rx).await;
    assert!(results.is_empty());
    assert!(summary.cancelled);
    assert_eq!((summary.succeeded, summary.failed, summary.skipped), (2, 0, 4));
    assert!(cleanup.is_none());
    // Finished comes after the cleanup: the workers saw the cancel (the
    // remote commands were signalled) and closed their links already
    assert_eq!(seen.borrow().cancelled, 2);
    assert_eq!(seen.borrow().closed, 2);
    assert!(rx.recv().await.is_none(), "exactly one Finished");
}

#[actix_rt::test]
async fn a_worker_that_does_not_end_in_time_is_reported_as_a_cleanup_failure_50014() {
    tokio::time::pause();
    let seen = Rc::new(RefCell::new(Seen::default()));
    let factory = Rc::new(Factory {
        script: vec![("sleep", vec![exit(0, 1_000_000)])],
        seen: seen.clone(),
        deaf: true,
    });
    let (id, run, mut rx) = start(plan(&["a"], &["sleep"]), factory);
    // the command has started once the link saw it
    while seen.borrow().attempts.is_empty() {
        tokio::task::yield_now().await;
    }
    let stopped_at = Instant::now();
    run.send(Stop).await.unwrap();

    let (_, summary, cleanup) = collect_until_finished(id, &mut rx).await;
    assert!(summary.cancelled);
    assert_eq!(summary.skipped, 1);
    assert_eq!(cleanup.map(|e| e.code), Some(ErrorCode::TaskCleanupFailed));
    assert!(stopped_at.elapsed() >= CLEANUP_TIMEOUT);
}

#[actix_rt::test]
async fn a_run_whose_servers_are_all_unreachable_names_them_in_the_summary() {
    tokio::time::pause();
    let factory = Factory::new(
        vec![("x", vec![error(ErrorCode::SshConnectionFailed, 1)])],
        Rc::default(),
    );
    let (id, _run, mut rx) = start(plan(&["a", "b"], &["x", "x"]), factory);
    let (results, summary, _) = collect_until_finished(id, &mut rx).await;
    assert_eq!(results.len(), 4);
    assert_eq!(summary.failed, 4);
    let mut names: Vec<_> = summary.unreachable.iter().map(|(s, _)| s.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["a", "b"]);
}
