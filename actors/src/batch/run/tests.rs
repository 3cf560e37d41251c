//! The actor's parallelism, cancel and task contract with a scripted link.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use actix::{Actor, Context, Handler};
use tokio::time::Instant;

use super::*;
use crate::batch::link::{Cancel, LinkFactory, ServerLink};
use crate::batch::plan::BatchPlan;
use crate::batch::scripted::*;
use crate::error::{AppError, ErrorCode};
use crate::server::ServerSpec;
use crate::ssh::ExecLimits;
use crate::task::{Pending, TaskEvent, TaskId};

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
        checks: Default::default(),
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
    crate::testing::eventually("the command starts", async || !seen.borrow().attempts.is_empty()).await;
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
