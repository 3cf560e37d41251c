//! The hub with scripted steps (no SSH) and the in-memory store, under
//! paused time: the order of events to several watchers, a late watcher's
//! snapshot, who may watch, and the records of a run.

use std::collections::BTreeMap;
use std::sync::Mutex;

use actix::{ActorContext, ContextFutureSpawner, Handler};
use pinkpage_actors::access::{Credential, Principal, Role, ServerScope};
use pinkpage_actors::lock::GetStatus;
use pinkpage_actors::task::{Reporter, Stop};
use pinkpage_actors::terminal::shell::{Completion, FinishReason};
use pinkpage_actors::workflow::definition::{Bound, Workflow};
use pinkpage_actors::workflow::run::StepClients;

use super::*;
use crate::records::workflow::RunState;
use crate::settings::access::AccessSettings;
use crate::store::memory::MemoryStore;
use crate::store::{Stores, WorkflowStore};
use crate::workflows::events::Watched;

/// A command that prints its lines and exits 0 at once. Like a real
/// task, it awaits each line's delivery before the next message (the
/// backpressure of the task contract), so its end never overtakes its
/// output.
struct Prints(Option<Reporter<String, Completion>>, Vec<String>);

impl Actor for Prints {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(notifier) = self.0.as_ref().map(Reporter::notifier) else {
            return;
        };
        let lines = std::mem::take(&mut self.1);
        async move {
            for line in lines {
                notifier.send(line).await;
            }
        }
        .into_actor(self)
        .map(|(), _, ctx: &mut Context<Self>| ctx.stop())
        .wait(ctx);
    }
    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(r) = self.0.take() {
            let done = Completion {
                reason: FinishReason::Exit,
                exit_status: Some(0),
                error: None,
                bytes: 0,
            };
            r.finish(done, None);
        }
    }
}

impl Handler<Stop> for Prints {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Launches every command step as [`Prints`] of its command's words.
struct Printing;

impl StepLauncher for Printing {
    fn launch(
        &self,
        _step: usize,
        action: &Action,
        task_id: TaskId,
        to: &StepClients,
    ) -> Result<TaskHandle, AppError> {
        let Action::Command { command, .. } = action else {
            return Err(AppError::new(ErrorCode::Internal));
        };
        let lines = command.split(' ').map(|w| format!("{w}\n")).collect();
        let (reporter, handle) = Pending::new(task_id, to.shell.clone()).split();
        Ok(handle(Prints(Some(reporter), lines).start().recipient()))
    }
}

struct PrintingSteps;

impl StepsFor for PrintingSteps {
    fn launcher(&self, _: RunId, _: &Prepared, _: &Asker) -> Rc<dyn StepLauncher> {
        Rc::new(Printing)
    }
}

/// A connection: keeps each event it is told, as `tag: what`.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

struct Conn(Seen);

impl Actor for Conn {
    type Context = Context<Self>;
}

impl Handler<Watched> for Conn {
    type Result = ();
    fn handle(&mut self, w: Watched, _: &mut Context<Self>) {
        let what = match &*w.event {
            RunEvent::Started { .. } => "started".to_owned(),
            RunEvent::State(v) => format!("state {:?} at {:?}", v.state, v.current_step),
            RunEvent::StepStarted { step, .. } => format!("step {step}"),
            RunEvent::Output { data, .. } => format!("out {}", data.trim()),
            RunEvent::Paused { step, .. } => format!("paused {step}"),
            RunEvent::Confirmed { step, by } => format!("confirmed {step} by {by}"),
            RunEvent::StepFinished { step, state, .. } => format!("end {step} {}", state.as_str()),
            RunEvent::Finished { state, .. } => format!("finished {}", state.as_str()),
            _ => return,
        };
        self.0
             .0
            .lock()
            .unwrap()
            .push(format!("{}: {what}", w.tag.as_deref().unwrap_or("-")));
    }
}

impl Seen {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn principal(user: &str, role: Role) -> Principal {
    Principal {
        user: user.into(),
        role,
        servers: ServerScope::All,
        credential: Credential::Token("t".into()),
    }
}

fn asker(user: &str, role: Role) -> Asker {
    Asker {
        principal: principal(user, role),
        actor: "conn".into(),
        remote: None,
    }
}

fn watcher(tag: &str) -> (Watcher, Seen) {
    let seen = Seen::default();
    let w = Watcher {
        id: ConnectionId::new(),
        recipient: Conn(seen.clone()).start().recipient(),
        tag: Some(tag.to_owned()),
    };
    (w, seen)
}

fn prepared(steps: Vec<PlannedStep>) -> Prepared {
    Prepared {
        workflow: Arc::new(Workflow {
            name: "unload".into(),
            description: String::new(),
            params: Vec::new(),
            steps: Vec::new(),
        }),
        bound: Bound(BTreeMap::new()),
        steps,
        servers: BTreeMap::new(),
        transfers: BTreeMap::new(),
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

fn pause(index: usize) -> PlannedStep {
    PlannedStep {
        index,
        name: format!("step {index}"),
        continue_on_error: false,
        action: Action::Pause {
            message: "check the unload".into(),
            timeout_s: 600.0,
        },
    }
}

struct World {
    hub: Addr<WorkflowHub>,
    identity: Arc<Identity>,
    lock: Addr<SessionLockActor>,
    store: Arc<MemoryStore>,
    journal: Journal,
}

fn world() -> World {
    let store = Arc::new(MemoryStore::default());
    let journal = Journal::start(Stores::of(store.clone()), false);
    let broadcast = BroadcastActor::default().start();
    let lock = SessionLockActor::new(broadcast.clone()).start();
    let access = AccessSettings {
        allowed_origins: Vec::new(),
        allowed_hosts: Vec::new(),
        trusted_proxies: Vec::new(),
        proxy_user_header: None,
        proxy_autocreate_role: None,
        cookie_secure: false,
        session_idle: Duration::from_secs(60),
        session_max: Duration::from_secs(600),
        login_max_failures: 5,
        login_window: Duration::from_secs(60),
        login_max_delay: Duration::from_secs(30),
        sessions_per_user: 20,
        login_audit_interval: Duration::from_secs(60),
        login_audit_rows: 100,
    };
    let identity = Arc::new(Identity::new(access));
    let hub = WorkflowHub::new(
        journal.clone(),
        lock.clone(),
        Arc::new(PrintingSteps),
        identity.clone(),
        Arc::new(BTreeMap::from([("alpha".to_owned(), vec!["web".to_owned()])])),
        broadcast,
        Arc::new(InFlight::default()),
    )
    .start();
    World {
        hub,
        identity,
        lock,
        store,
        journal,
    }
}

/// Lets the actors run until they wait.
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

#[actix::test]
async fn several_watchers_see_one_order_and_a_late_one_starts_from_where_the_run_stands() {
    tokio::time::pause();
    let w = world();
    let (starter, starter_seen) = watcher("run-1");
    let steps = vec![command(0, "one two"), pause(1), command(2, "three")];
    let run_id = w
        .hub
        .send(StartRun {
            prepared: prepared(steps),
            asker: asker("ana", Role::Operator),
            watcher: Some(starter),
        })
        .await
        .unwrap()
        .unwrap();
    settle().await;
    assert!(
        w.lock.send(GetStatus).await.unwrap().active,
        "the run holds the lock"
    );

    // a second connection of the same user follows the paused run
    let (late, late_seen) = watcher("watch-1");
    w.hub
        .send(WatchRun {
            run_id: run_id.to_string(),
            asker: asker("ana", Role::Operator),
            watcher: late.clone(),
        })
        .await
        .unwrap()
        .unwrap();
    settle().await;
    assert_eq!(late_seen.all(), ["watch-1: state Paused at Some(1)"]);

    // it confirms: its answer is its own request's, everyone else's notice
    let mut confirmer = late;
    confirmer.tag = Some("confirm-1".into());
    let step = w
        .hub
        .send(ConfirmRun {
            run_id: run_id.to_string(),
            asker: asker("ana", Role::Operator),
            watcher: Some(confirmer),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(step, 1);
    settle().await;

    assert_eq!(
        starter_seen.all(),
        [
            "run-1: started",
            "run-1: step 0",
            "run-1: out one",
            "run-1: out two",
            "run-1: end 0 succeeded",
            "run-1: step 1",
            "run-1: paused 1",
            "run-1: confirmed 1 by ana",
            "run-1: end 1 succeeded",
            "run-1: step 2",
            "run-1: out three",
            "run-1: end 2 succeeded",
            "run-1: finished succeeded",
        ]
    );
    assert_eq!(
        late_seen.all(),
        [
            "watch-1: state Paused at Some(1)",
            "confirm-1: confirmed 1 by ana",
            "watch-1: end 1 succeeded",
            "watch-1: step 2",
            "watch-1: out three",
            "watch-1: end 2 succeeded",
            "watch-1: finished succeeded",
        ]
    );
    assert!(
        !w.lock.send(GetStatus).await.unwrap().active,
        "released at the end"
    );
}

#[actix::test]
async fn only_the_runs_user_or_an_admin_may_watch_and_a_finished_run_is_not_in_flight() {
    tokio::time::pause();
    let w = world();
    let run_id = w
        .hub
        .send(StartRun {
            prepared: prepared(vec![pause(0)]),
            asker: asker("ana", Role::Operator),
            watcher: None,
        })
        .await
        .unwrap()
        .unwrap();
    settle().await;
    let watch = |user: &str, role: Role, run: String| WatchRun {
        run_id: run,
        asker: asker(user, role),
        watcher: watcher("w").0,
    };
    let other = w
        .hub
        .send(watch("bob", Role::Operator, run_id.to_string()))
        .await
        .unwrap();
    assert_eq!(other.unwrap_err().code, ErrorCode::Forbidden);
    let admin = w
        .hub
        .send(watch("root", Role::Admin, run_id.to_string()))
        .await
        .unwrap();
    assert!(admin.is_ok());
    let unknown = w
        .hub
        .send(watch("ana", Role::Operator, RunId::new().to_string()))
        .await
        .unwrap();
    assert_eq!(unknown.unwrap_err().code, ErrorCode::NotFound);
    let garbage = w
        .hub
        .send(watch("ana", Role::Operator, "not-a-run".into()))
        .await
        .unwrap();
    assert_eq!(garbage.unwrap_err().code, ErrorCode::NotFound);
}

#[actix::test]
async fn a_cancelled_run_is_recorded_whole_in_order_and_the_steps_it_never_reached_are_skipped() {
    tokio::time::pause();
    let w = world();
    let (starter, seen) = watcher("r");
    // the pause is cancelled: the step after it is never reached
    let run_id = w
        .hub
        .send(StartRun {
            prepared: prepared(vec![command(0, "a"), pause(1), command(2, "never")]),
            asker: asker("ana", Role::Operator),
            watcher: Some(starter),
        })
        .await
        .unwrap()
        .unwrap();
    settle().await;
    w.hub
        .send(CancelRun {
            run_id: run_id.to_string(),
            asker: asker("ana", Role::Operator),
            watcher: None,
        })
        .await
        .unwrap()
        .unwrap();
    settle().await;
    tokio::time::timeout(Duration::from_secs(5), w.journal.flushed())
        .await
        .unwrap();
    assert_eq!(seen.all().last().unwrap(), "r: finished cancelled");
    let stored = w
        .store
        .get(run_id.to_string(), crate::records::Visible::All)
        .await
        .unwrap()
        .expect("the run is recorded");
    assert_eq!(stored.run.status, RunState::Cancelled);
    let states: Vec<&str> = stored.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(states, ["succeeded", "cancelled", "skipped"]);
    assert_eq!(stored.steps[0].output_tail.as_deref(), Some("a\n"));
    let audit = w.store.audit_actions();
    assert_eq!(
        audit,
        [
            "workflow.start",
            "workflow.step",
            "workflow.cancel",
            "workflow.step",
            "workflow.end"
        ]
    );
}

/// The directory holds one account, `ana`, an operator limited to `tags`,
/// with the token the test principals present.
fn ana_is(identity: &Identity, role: Role, tags: &[&str]) {
    use crate::accounts::{Loaded, TokenInfo, User};
    use crate::auth::directory::Directory;
    let loaded = Loaded {
        revision: identity.read().revision + 1,
        session_seq: 0,
        users: vec![User {
            id: 1,
            name: "ana".into(),
            role,
            servers: Some(tags.iter().map(|t| (*t).to_owned()).collect()),
            disabled: false,
            created_at: "2026-12-07T00:00:00Z".into(),
            changed_at: "2026-12-07T00:00:00Z".into(),
            has_password: false,
        }],
        tokens: vec![(
            TokenInfo {
                id: "t".into(),
                user: "ana".into(),
                label: "test".into(),
                created_at: "2026-12-07T00:00:00Z".into(),
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
            },
            String::new(),
        )],
        sessions: Vec::new(),
    };
    let mut dir = identity.write();
    let fresh = Directory::from_loaded(loaded, &dir);
    *dir = fresh;
}

#[actix::test]
async fn a_run_whose_starter_may_no_longer_use_its_server_is_cancelled_with_10010_and_one_still_covered_goes_on(
) {
    tokio::time::pause();
    let w = world();
    ana_is(&w.identity, Role::Operator, &["web"]);
    let (starter, seen) = watcher("r");
    let run_id = w
        .hub
        .send(StartRun {
            prepared: prepared(vec![command(0, "a"), pause(1), command(2, "never")]),
            asker: asker("ana", Role::Operator),
            watcher: Some(starter),
        })
        .await
        .unwrap()
        .unwrap();
    settle().await;
    assert_eq!(seen.all().last().unwrap(), "r: paused 1");

    // an access change that still covers the run: it stays paused
    w.hub.send(Event::AccessChanged).await.unwrap();
    settle().await;
    assert_eq!(seen.all().last().unwrap(), "r: paused 1");

    // ana now may use `db` servers only; alpha is `web`
    ana_is(&w.identity, Role::Operator, &["db"]);
    w.hub.send(Event::AccessChanged).await.unwrap();
    settle().await;
    tokio::time::timeout(Duration::from_secs(5), w.journal.flushed())
        .await
        .unwrap();
    assert_eq!(seen.all().last().unwrap(), "r: finished cancelled");
    let stored = w
        .store
        .get(run_id.to_string(), crate::records::Visible::All)
        .await
        .unwrap()
        .unwrap();
    let error = stored.run.error.expect("the run says why it ended");
    assert_eq!(error.code, 10010, "{error:?}");
    assert!(error.detail.as_deref().unwrap().contains("'alpha'"), "{error:?}");
    let states: Vec<&str> = stored.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(states, ["succeeded", "cancelled", "skipped"]);
    // a confirmation that comes after finds no run in flight
    let late = w
        .hub
        .send(ConfirmRun {
            run_id: run_id.to_string(),
            asker: asker("ana", Role::Operator),
            watcher: None,
        })
        .await
        .unwrap();
    assert_eq!(late.unwrap_err().code, ErrorCode::NotFound);
    assert!(!w.lock.send(GetStatus).await.unwrap().active, "the lock is free");
}

#[actix::test]
async fn a_run_is_withdrawn_when_its_starter_becomes_a_viewer_but_not_when_its_sign_in_ends() {
    tokio::time::pause();
    let w = world();
    ana_is(&w.identity, Role::Operator, &["web"]);
    let (starter, seen) = watcher("r");
    let mut ana = asker("ana", Role::Operator);
    // started from a sign-in session the directory does not hold (signed
    // out since): the run is judged by the account
    ana.principal.credential = Credential::Session("gone".into());
    w.hub
        .send(StartRun {
            prepared: prepared(vec![pause(0)]),
            asker: ana,
            watcher: Some(starter),
        })
        .await
        .unwrap()
        .unwrap();
    settle().await;
    w.hub.send(Event::AccessChanged).await.unwrap();
    settle().await;
    assert_eq!(
        seen.all().last().unwrap(),
        "r: paused 0",
        "a sign-out does not end a run"
    );
    ana_is(&w.identity, Role::Viewer, &["web"]);
    w.hub.send(Event::AccessChanged).await.unwrap();
    settle().await;
    assert_eq!(seen.all().last().unwrap(), "r: finished cancelled");
}
