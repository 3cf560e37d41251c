//! The run against scripted steps (`super::scripted`), with paused time:
//! steps in order, a pause that expires, a step that ignores its stop, a
//! lock revoked during a pause, a late confirmation.

use std::cell::RefCell;
use std::rc::Rc;

use actix::{Actor, Addr, Context, Handler};

use super::scripted::{Play, Scripted};
use super::*;
use crate::broadcast::{BroadcastActor, WorkflowRunRef};
use crate::lock::{Acquire, ForceRelease, GetStatus, Holder};
use crate::task::Pending;

/// Stands for the run's client (the hub): keeps what it reports.
#[derive(Default, Clone)]
struct Heard(Rc<RefCell<Vec<String>>>, Rc<RefCell<Option<RunOutcome>>>);

struct Client(Heard);

impl Actor for Client {
    type Context = Context<Self>;
}

impl Handler<RunMessage> for Client {
    type Result = ();
    fn handle(&mut self, m: RunMessage, _: &mut Context<Self>) {
        match m.event {
            TaskEvent::Notice(n) => self.0 .0.borrow_mut().push(match n {
                RunNotice::StepStarted { step } => format!("start {step}"),
                RunNotice::Output { data, .. } => format!("out {}", data.trim()),
                RunNotice::Paused { step, .. } => format!("paused {step}"),
                RunNotice::StepFinished(r) => format!(
                    "end {} {} {}",
                    r.step,
                    status_name(r.status),
                    r.error.map_or(0, |e| e.code.code())
                ),
                other => format!("{other:?}"),
            }),
            TaskEvent::Finished { outcome, .. } => *self.0 .1.borrow_mut() = Some(outcome),
        }
    }
}

fn command(index: usize, command: &str) -> PlannedStep {
    PlannedStep {
        index,
        name: format!("step {index}"),
        continue_on_error: false,
        action: Action::Command {
            server: "alpha".into(),
            command: command.into(),
            stop_phrase: None,
            timeout_s: 60.0,
            expect_exit: vec![0],
        },
    }
}

fn pause(index: usize, timeout_s: f64) -> PlannedStep {
    PlannedStep {
        index,
        name: format!("step {index}"),
        continue_on_error: false,
        action: Action::Pause {
            message: "check".into(),
            timeout_s,
        },
    }
}

/// Starts a run of `steps` playing `plays`, under `lock`; what its client
/// hears, its address and its task handle.
fn start(
    steps: Vec<PlannedStep>,
    plays: Vec<Play>,
    lock: RunLock,
) -> (Heard, Addr<WorkflowRunActor>, TaskHandle, Rc<Scripted>) {
    let heard = Heard::default();
    let client = Client(heard.clone()).start();
    let launcher = Scripted::new(plays);
    let (reporter, handle) = Pending::new(TaskId::next(), client.recipient()).split();
    let req = RunRequest {
        run_id: RunId::new(),
        steps,
        launcher: launcher.clone(),
        lock,
    };
    let addr = WorkflowRunActor::new(req, reporter).start();
    let handle = handle(addr.clone().recipient());
    (heard, addr, handle, launcher)
}

fn no_lock() -> RunLock {
    RunLock::Callers(crate::lock::Grant {
        owner: crate::ids::OwnerId::Connection(crate::ids::ConnectionId::new()),
        epoch: 1,
    })
}

fn exit(lines: Vec<&'static str>, ms: u64, status: u32) -> Play {
    Play::Exit {
        lines,
        after: Duration::from_millis(ms),
        status,
    }
}

async fn ended(handle: &TaskHandle) {
    handle.done().wait().await;
    // the client's mailbox handles the end after the done signal
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[actix::test]
async fn steps_run_in_order_and_their_output_reaches_the_client_before_their_end() {
    tokio::time::pause();
    let steps = vec![command(0, "a"), command(1, "b")];
    let plays = vec![exit(vec!["one"], 10, 0), exit(vec!["two"], 10, 0)];
    let (heard, _run, handle, launcher) = start(steps, plays, no_lock());
    ended(&handle).await;
    assert_eq!(
        *heard.0.borrow(),
        [
            "start 0",
            "out one",
            "end 0 succeeded 0",
            "start 1",
            "out two",
            "end 1 succeeded 0"
        ]
    );
    assert_eq!(heard.1.borrow().as_ref().unwrap().status, RunStatus::Succeeded);
    assert_eq!(launcher.seen.borrow().started, ["a", "b"]);
}

#[actix::test]
async fn a_failed_step_stops_the_run_and_the_steps_after_it_never_start() {
    tokio::time::pause();
    let steps = vec![command(0, "a"), command(1, "b")];
    let (heard, _run, handle, launcher) = start(steps, vec![exit(vec![], 10, 2)], no_lock());
    ended(&handle).await;
    let outcome = heard.1.borrow().clone().unwrap();
    assert_eq!((outcome.status, outcome.stopped_at), (RunStatus::Failed, Some(0)));
    assert_eq!(outcome.error.unwrap().code, ErrorCode::SshCommandFailed);
    assert_eq!(launcher.seen.borrow().started, ["a"]);
}

#[actix::test]
async fn a_pause_that_nobody_confirms_expires_and_cancels_the_run() {
    tokio::time::pause();
    let steps = vec![pause(0, 30.0), command(1, "after")];
    let (heard, run, handle, launcher) = start(steps, vec![], no_lock());
    tokio::task::yield_now().await;
    assert_eq!(*heard.0.borrow(), ["start 0", "paused 0"]);
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert!(!handle.done().is_done(), "still waiting before its timeout");
    ended(&handle).await;
    let outcome = heard.1.borrow().clone().unwrap();
    assert_eq!(outcome.status, RunStatus::Cancelled);
    assert_eq!(outcome.error.unwrap().code, ErrorCode::WorkflowPauseExpired);
    assert!(
        launcher.seen.borrow().started.is_empty(),
        "the step after it never ran"
    );
    assert_eq!(
        heard.0.borrow().last().unwrap(),
        &format!("end 0 cancelled {}", ErrorCode::WorkflowPauseExpired.code())
    );
    // a confirmation that comes late finds nothing
    assert!(
        run.send(Confirm { by: "ana".into() }).await.is_err(),
        "the run has stopped"
    );
}

#[actix::test]
async fn a_confirmation_moves_the_run_on_and_a_second_one_gets_50015() {
    tokio::time::pause();
    let steps = vec![pause(0, 30.0), command(1, "after")];
    let (heard, run, handle, _) = start(steps, vec![Play::UntilStopped], no_lock());
    tokio::task::yield_now().await;
    assert_eq!(run.send(Confirm { by: "ana".into() }).await.unwrap().unwrap(), 0);
    let again = run.send(Confirm { by: "ana".into() }).await.unwrap().unwrap_err();
    assert_eq!(again.code, ErrorCode::WorkflowNotPaused);
    handle.stop().unwrap();
    ended(&handle).await;
    assert_eq!(
        heard.0.borrow()[..4],
        ["start 0", "paused 0", "end 0 succeeded 0", "start 1"]
    );
}

#[actix::test]
async fn a_step_that_ignores_its_stop_is_given_up_and_the_run_still_ends_in_time() {
    tokio::time::pause();
    let steps = vec![command(0, "stuck"), command(1, "never")];
    let (heard, _run, handle, launcher) = start(steps, vec![Play::IgnoresStop], no_lock());
    tokio::task::yield_now().await;
    let stopped_at = tokio::time::Instant::now();
    handle.stop().unwrap();
    ended(&handle).await;
    assert_eq!(launcher.seen.borrow().stops, 1, "the step was told to stop");
    let step_end = heard.0.borrow().last().unwrap().clone();
    assert_eq!(
        step_end,
        format!("end 0 cancelled {}", ErrorCode::TaskCancelTimeout.code())
    );
    let outcome = heard.1.borrow().clone().unwrap();
    assert_eq!(outcome.status, RunStatus::Cancelled);
    // given up at STEP_STOP_TIMEOUT, then the rest of its cleanup time
    // before the run's end; never past REVOKE_TIMEOUT
    let took = stopped_at.elapsed();
    assert!(took >= STEP_STOP_TIMEOUT, "{took:?}");
    assert!(took <= REVOKE_TIMEOUT + Duration::from_millis(50), "{took:?}");
    assert_eq!(
        launcher.seen.borrow().started,
        ["stuck"],
        "the next step never starts"
    );
}

#[actix::test]
async fn a_lock_revoked_during_a_pause_cancels_the_run_and_frees_the_lock_once_it_ended() {
    tokio::time::pause();
    let lock = SessionLockActor::new(BroadcastActor::default().start()).start();
    let run_id = RunId::new();
    let steps = vec![pause(0, 600.0), command(1, "after")];
    let heard = Heard::default();
    let client = Client(heard.clone()).start();
    let launcher = Scripted::new(vec![]);
    let (reporter, handle) = Pending::new(TaskId::next(), client.recipient()).split();
    // the run's address exists before the run, so the lock knows whom to
    // revoke (as the hub does it)
    let ctx: Context<WorkflowRunActor> = Context::new();
    let grant = lock
        .send(Acquire {
            holder: Holder::Run(WorkflowRunRef {
                run_id,
                workflow: "w".into(),
            }),
            user: "ana".into(),
            revoked: ctx.address().recipient(),
        })
        .await
        .unwrap()
        .unwrap();
    let req = RunRequest {
        run_id,
        steps,
        launcher: launcher.clone(),
        lock: RunLock::Own {
            lock: lock.clone(),
            grant,
        },
    };
    let run = ctx.run(WorkflowRunActor::new(req, reporter));
    let handle = handle(run.recipient());
    tokio::task::yield_now().await;
    assert_eq!(*heard.0.borrow(), ["start 0", "paused 0"]);

    let status = lock.send(ForceRelease).await.unwrap().unwrap();
    assert!(!status.active, "free once the run answered");
    assert!(handle.done().is_done(), "and the run had ended by then");
    let outcome = heard.1.borrow().clone().unwrap();
    assert_eq!(outcome.status, RunStatus::Cancelled);
    assert_eq!(outcome.error.unwrap().code, ErrorCode::NotSessionOwner);
    assert!(launcher.seen.borrow().started.is_empty());
    assert!(!lock.send(GetStatus).await.unwrap().active);
}

#[actix::test]
async fn a_run_that_took_the_lock_releases_it_before_its_client_hears_the_end() {
    tokio::time::pause();
    let lock = SessionLockActor::new(BroadcastActor::default().start()).start();
    let run_id = RunId::new();
    let ctx: Context<WorkflowRunActor> = Context::new();
    let grant = lock
        .send(Acquire {
            holder: Holder::Run(WorkflowRunRef {
                run_id,
                workflow: "w".into(),
            }),
            user: "ana".into(),
            revoked: ctx.address().recipient(),
        })
        .await
        .unwrap()
        .unwrap();
    let heard = Heard::default();
    let client = Client(heard.clone()).start();
    let (reporter, handle) = Pending::new(TaskId::next(), client.recipient()).split();
    let req = RunRequest {
        run_id,
        steps: vec![command(0, "a")],
        launcher: Scripted::new(vec![exit(vec![], 10, 0)]),
        lock: RunLock::Own {
            lock: lock.clone(),
            grant,
        },
    };
    let run = ctx.run(WorkflowRunActor::new(req, reporter));
    let handle = handle(run.recipient());
    handle.done().wait().await;
    assert!(!lock.send(GetStatus).await.unwrap().active);
}
