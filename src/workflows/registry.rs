//! The runs in flight and the decisions about them: who started each, who
//! may drive it (confirm, cancel) or watch it, where it stands (the live
//! view a late watcher gets first), and the watchers' feeds. Owned by the
//! hub alone (`super::hub`); plain data, unit-tested without actors.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix::Addr;
use pinkpage_actors::access::{Need, Principal};
use pinkpage_actors::lock::Grant;
use pinkpage_actors::task::{TaskHandle, TaskId};
use pinkpage_actors::workflow::plan::PlannedStep;
use pinkpage_actors::workflow::run::WorkflowRunActor;
use pinkpage_actors::{AppError, ConnectionId, ErrorCode, RunId};

use super::events::{RunEvent, RunView, Watcher};
use super::feed::Feed;
use crate::auth::rejudge::Servers;
use crate::in_flight::InFlightGuard;
use crate::records::workflow::{RunState, StepState};
use crate::records::NewAuditEvent;

/// Who asks, for audit rows and the same-user check.
#[derive(Clone)]
pub struct Asker {
    /// The caller.
    pub principal: Principal,
    /// Connection id, or `rest`.
    pub actor: String,
    /// The caller's address.
    pub remote: Option<String>,
}

impl Asker {
    /// An audit row of `action` by this caller.
    pub fn audit(&self, action: &str) -> NewAuditEvent {
        NewAuditEvent::new(self.actor.clone(), action).by(Some(&self.principal.user), self.remote.clone())
    }
}

/// How a run in flight holds the session lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockHeld {
    /// It took the lock itself (the lock's owner is the run).
    Own,
    /// It works under this grant of the connection that started it.
    Callers(Grant),
}

/// One run in flight.
pub struct Entry {
    /// The run.
    pub run_id: RunId,
    /// Its workflow.
    pub workflow: String,
    /// Who started it.
    pub started_by: Asker,
    /// Its plan.
    pub steps: Arc<[PlannedStep]>,
    /// Where it stands, step by step: the live view, in the history's
    /// states.
    pub state: RunState,
    /// Each step's state.
    pub step_states: Vec<StepState>,
    /// The step running or paused at, or the last one reached.
    pub current_step: Option<usize>,
    /// The run's actor (for confirmations).
    pub addr: Addr<WorkflowRunActor>,
    /// Its task handle (for a cancel).
    pub handle: TaskHandle,
    /// How it holds the lock.
    pub lock: LockHeld,
    /// The connections watching, each through its own ordered feed; the
    /// starter's (if any) is the primary.
    pub feeds: Vec<Feed>,
    /// The `workflow_confirm`s in flight, oldest first, with each
    /// request's tag: the run takes confirmations in that order, so the
    /// first one's `Confirmed` answers its request.
    pub confirmers: Vec<(ConnectionId, Option<String>)>,
    /// Why it was cancelled when its starter's access changed (10010;
    /// once): the error its end carries.
    pub withdrawn: Option<AppError>,
    /// Held while the run is in flight: a graceful shutdown waits for it.
    pub in_flight: InFlightGuard,
}

impl Entry {
    /// Every server its plan acts on, each once.
    pub fn servers(&self) -> Vec<&str> {
        pinkpage_actors::workflow::plan::servers_of(&self.steps)
    }

    /// The same user, or an administrator, who may still use every server
    /// of the run (10003 otherwise): who may confirm, cancel or watch a
    /// run. `servers` is the configuration as it is now, so an account
    /// whose tags were narrowed drives nothing on servers it lost, even in
    /// the moment before the run is withdrawn.
    pub fn may_be_driven_by(&self, asker: &Asker, servers: &dyn Servers) -> Result<(), AppError> {
        let who = &asker.principal;
        if who.user != self.started_by.principal.user && !who.meets(Need::Admin) {
            return Err(AppError::with_detail(
                ErrorCode::Forbidden,
                "only the user who started the run, or an administrator, may confirm, cancel or watch it",
            ));
        }
        for name in self.servers() {
            if !servers.tags(name).is_some_and(|tags| who.may_use(&tags)) {
                return Err(AppError::with_detail(
                    ErrorCode::Forbidden,
                    format!("{} may not use server '{name}', which this run acts on", who.user),
                ));
            }
        }
        Ok(())
    }

    /// Adds a watcher (once per connection); the first, its starter,
    /// holds the run's output back when it does not read.
    pub fn watch(&mut self, watcher: Watcher, primary: bool) {
        if !self.feeds.iter().any(|f| f.id == watcher.id) {
            self.feeds.push(Feed::new(self.run_id, watcher, primary));
        }
    }

    /// Tells every watcher `event`, in order; drops the feeds of
    /// connections that are gone or too far behind.
    pub fn tell(&mut self, event: RunEvent) -> Arc<RunEvent> {
        self.note(&event);
        let event = Arc::new(event);
        self.feeds.retain(|f| f.push(&event));
        event
    }

    /// Resolves once the starter's feed (if any) is below its high water
    /// mark: the backpressure for output.
    pub fn primary_drained(&self) -> Option<impl std::future::Future<Output = ()> + 'static> {
        self.feeds.iter().find(|f| f.primary).map(Feed::below_high_water)
    }

    /// Tells `Confirmed`: as the answer to the oldest confirmation in
    /// flight (its request's tag) to the connection that sent it, and as a
    /// notice to everyone else.
    pub fn tell_confirmed(&mut self, event: RunEvent) {
        let confirmer = (!self.confirmers.is_empty()).then(|| self.confirmers.remove(0));
        let event = Arc::new(event);
        self.feeds.retain(|f| match &confirmer {
            Some((id, tag)) if *id == f.id => f.push_tagged(&event, tag.clone()),
            _ => f.push(&event),
        });
    }

    /// Keeps the live view in step with what the run reports.
    fn note(&mut self, event: &RunEvent) {
        let mut set = |step: usize, state: StepState| {
            if let Some(s) = self.step_states.get_mut(step) {
                *s = state;
            }
        };
        match event {
            RunEvent::StepStarted { step, .. } => {
                set(*step, StepState::Running);
                self.current_step = Some(*step);
                self.state = RunState::Running;
            }
            RunEvent::Paused { step, .. } => {
                set(*step, StepState::Paused);
                self.state = RunState::Paused;
            }
            RunEvent::StepFinished { step, state, .. } => {
                set(*step, *state);
                if self.state == RunState::Paused {
                    self.state = RunState::Running;
                }
            }
            RunEvent::Finished { state, .. } => {
                self.state = *state;
                // the steps never reached, as the history says it
                for s in &mut self.step_states {
                    if *s == StepState::Pending {
                        *s = StepState::Skipped;
                    }
                }
            }
            _ => {}
        }
    }

    /// Where the run stands now.
    pub fn view(&self) -> RunView {
        RunView {
            workflow: self.workflow.clone(),
            state: self.state,
            current_step: self.current_step,
            steps: self
                .steps
                .iter()
                .cloned()
                .zip(self.step_states.iter().copied())
                .collect(),
        }
    }
}

/// Every run in flight, by id and by the task id its messages carry.
#[derive(Default)]
pub struct Runs {
    by_run: HashMap<RunId, Entry>,
    by_task: HashMap<TaskId, RunId>,
}

impl Runs {
    /// Adds a run whose actor reports with task `task_id`.
    pub fn insert(&mut self, task_id: TaskId, entry: Entry) {
        self.by_task.insert(task_id, entry.run_id);
        self.by_run.insert(entry.run_id, entry);
    }

    /// The run `run_id` names, in flight (10004 otherwise, also for a name
    /// that is not a run id).
    pub fn get_mut(&mut self, run_id: &str) -> Result<&mut Entry, AppError> {
        RunId::parse(run_id)
            .and_then(|id| self.by_run.get_mut(&id))
            .ok_or_else(|| {
                AppError::with_detail(
                    ErrorCode::NotFound,
                    format!("no workflow run '{run_id}' is in flight"),
                )
            })
    }

    /// The run whose actor reports with `task_id`.
    pub fn by_task(&mut self, task_id: TaskId) -> Option<&mut Entry> {
        let run = self.by_task.get(&task_id)?;
        self.by_run.get_mut(run)
    }

    /// Removes the run whose actor reported its end with `task_id`.
    pub fn remove(&mut self, task_id: TaskId) -> Option<Entry> {
        let run = self.by_task.remove(&task_id)?;
        self.by_run.remove(&run)
    }

    /// Every run in flight.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.by_run.values_mut()
    }
}

/// A starting run's view: every step pending.
pub fn pending(steps: usize) -> Vec<StepState> {
    vec![StepState::Pending; steps]
}

/// The parameters as they are shown (`workflow_started`).
pub type Params = BTreeMap<String, String>;
