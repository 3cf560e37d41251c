//! `TaskSlot`: the one running task of a connection, as a state machine
//! the connection owns (no actor of its own: the connection handles one
//! message at a time, so every transition below is atomic).
//!
//! ```text
//!   Idle --reserve--> Starting --attach--> Running --cancel--> Stopping
//!    ^                   |                   |                    |
//!    |    abort_start / cancel (nothing ran) |   finished(id)     | finished(id)
//!    +-------------------+-------------------+--------------------+ give_up(id) (50012)
//! ```
//!
//! Ids make late events harmless: `finished` and `give_up` act only on the
//! task they name, so the end of a task that was given up never frees the
//! slot of the task that replaced it, and a give-up timer that fires after
//! its task finished does nothing. The errors the slot decides come from
//! here and nowhere else: 50010 (busy), 50011 (nothing to cancel), 50012
//! (no end within the stop timeout), 50013 (the task could not be told to
//! stop), 50014 (its cleanup failed).

use super::{TaskGone, TaskHandle, TaskId, STOP_TIMEOUT};
use crate::error::{AppError, ErrorCode};

/// What the slot needs of a running task: a way to ask it to stop.
pub trait Stoppable {
    /// Asks the task to stop; `Err` when it cannot be told.
    fn request_stop(&self) -> Result<(), TaskGone>;
}

impl Stoppable for TaskHandle {
    fn request_stop(&self) -> Result<(), TaskGone> {
        self.stop()
    }
}

enum State<I, H> {
    Idle,
    /// Accepted; the task is being set up (a store write, a lookup).
    Starting {
        id: TaskId,
        info: I,
    },
    /// The task runs; `stopping` once a stop was sent.
    Running {
        id: TaskId,
        info: I,
        handle: H,
        stopping: bool,
    },
}

impl<I, H> State<I, H> {
    /// A task that has just started.
    fn running(id: TaskId, info: I, handle: H) -> Self {
        State::Running {
            id,
            info,
            handle,
            stopping: false,
        }
    }
}

/// What `cancel` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Cancel<I> {
    /// The task was told to stop: arm the give-up timer for this id.
    StopSent(TaskId),
    /// A stop was already sent; nothing more to do.
    AlreadyStopping(TaskId),
    /// The task had not started: the slot is free, nothing ran; its info
    /// comes back so the client can be told it was cancelled.
    NotStarted(TaskId, I),
}

/// The slot. `I` is what the connection keeps about the task (server,
/// request id, ...), `H` how to stop it.
pub struct TaskSlot<I, H = TaskHandle> {
    state: State<I, H>,
}

impl<I, H> Default for TaskSlot<I, H> {
    fn default() -> Self {
        TaskSlot { state: State::Idle }
    }
}

impl<I, H: Stoppable> TaskSlot<I, H> {
    /// Whether a task is starting or running.
    pub fn is_busy(&self) -> bool {
        !matches!(self.state, State::Idle)
    }

    /// The current task's id, if any.
    pub fn current(&self) -> Option<TaskId> {
        match &self.state {
            State::Idle => None,
            State::Starting { id, .. } | State::Running { id, .. } => Some(*id),
        }
    }

    /// What the connection keeps about task `id`, if it is the current one.
    pub fn info(&self, id: TaskId) -> Option<&I> {
        match &self.state {
            State::Starting { id: cur, info } | State::Running { id: cur, info, .. } if *cur == id => {
                Some(info)
            }
            _ => None,
        }
    }

    /// The running task's handle (to send it input), if one runs and is
    /// not stopping.
    pub fn running(&self) -> Option<(&H, &I)> {
        match &self.state {
            State::Running {
                handle,
                info,
                stopping: false,
                ..
            } => Some((handle, info)),
            _ => None,
        }
    }

    /// The current task's id and what the connection keeps about it, while
    /// it is starting or running and no stop was sent yet: the work a
    /// re-judging of access looks at.
    pub fn live(&self) -> Option<(TaskId, &I)> {
        match &self.state {
            State::Starting { id, info }
            | State::Running {
                id,
                info,
                stopping: false,
                ..
            } => Some((*id, info)),
            _ => None,
        }
    }

    /// The handle of the current task, stopping or not.
    pub fn handle(&self) -> Option<&H> {
        match &self.state {
            State::Running { handle, .. } => Some(handle),
            _ => None,
        }
    }

    /// 50010 while a task is starting or running.
    fn ensure_free(&self) -> Result<(), AppError> {
        if self.is_busy() {
            return Err(AppError::with_detail(
                ErrorCode::TaskAlreadyRunning,
                "cancel it or wait for it to finish",
            ));
        }
        Ok(())
    }

    /// Takes the slot for a new task: its id, or 50010 while one is
    /// starting or running. Synchronous, so two racing requests on one
    /// connection cannot both get it.
    pub fn reserve(&mut self, info: I) -> Result<TaskId, AppError> {
        self.ensure_free()?;
        let id = TaskId::next();
        self.state = State::Starting { id, info };
        Ok(id)
    }

    /// Puts task `id`, started already, in a free slot: for tasks that
    /// start synchronously (no `Starting` state). 50010 when busy; the
    /// caller must then stop the task it started.
    pub fn occupy(&mut self, id: TaskId, info: I, handle: H) -> Result<(), (AppError, H)> {
        if let Err(e) = self.ensure_free() {
            return Err((e, handle));
        }
        self.state = State::running(id, info, handle);
        Ok(())
    }

    /// Task `id` was started. `Err(handle)` when the slot no longer waits
    /// for it (it was cancelled while starting): the caller must stop it.
    pub fn attach(&mut self, id: TaskId, handle: H) -> Result<(), H> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Starting { id: cur, info } if cur == id => {
                self.state = State::running(id, info, handle);
                Ok(())
            }
            other => {
                self.state = other;
                Err(handle)
            }
        }
    }

    /// Task `id` could not be started; frees the slot if it still waits
    /// for it. Returns its info.
    pub fn abort_start(&mut self, id: TaskId) -> Option<I> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Starting { id: cur, info } if cur == id => Some(info),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Stops the current task. 50011 when there is none; 50013 (and the
    /// slot freed) when it cannot be told to stop, which means it is gone
    /// without its `Finished`.
    pub fn cancel(&mut self) -> Result<Cancel<I>, AppError> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Idle => Err(AppError::with_detail(
                ErrorCode::NoRunningTask,
                "nothing is running",
            )),
            State::Starting { id, info } => Ok(Cancel::NotStarted(id, info)),
            State::Running {
                id,
                info,
                handle,
                stopping,
            } => {
                let sent = stopping || handle.request_stop().is_ok();
                if !sent {
                    // left Idle: the task is gone without its `Finished`
                    return Err(AppError::with_detail(
                        ErrorCode::TaskCancelFailed,
                        "the task could not be told to stop; it is gone",
                    ));
                }
                self.state = State::Running {
                    id,
                    info,
                    handle,
                    stopping: true,
                };
                Ok(if stopping {
                    Cancel::AlreadyStopping(id)
                } else {
                    Cancel::StopSent(id)
                })
            }
        }
    }

    /// Task `id` sent `Finished`. Frees the slot if `id` is current and
    /// returns its info with the 50014 to report when its cleanup failed;
    /// `None` for a task that is no longer current (given up on).
    pub fn finished(&mut self, id: TaskId, cleanup_error: Option<AppError>) -> Option<(I, Option<AppError>)> {
        if self.current() != Some(id) {
            return None;
        }
        let info = match std::mem::replace(&mut self.state, State::Idle) {
            State::Starting { info, .. } | State::Running { info, .. } => info,
            State::Idle => return None,
        };
        let cleanup = cleanup_error.map(|e| {
            if e.code == ErrorCode::TaskCleanupFailed {
                e
            } else {
                AppError::with_detail(ErrorCode::TaskCleanupFailed, e.to_string())
            }
        });
        Some((info, cleanup))
    }

    /// The stop timer of task `id` fired. If that task is still current
    /// and stopping, it is given up: the slot is freed and its info comes
    /// back with the 50012 to report. Otherwise (it finished meanwhile, or
    /// was never stopped) nothing happens.
    pub fn give_up(&mut self, id: TaskId) -> Option<(I, AppError)> {
        match &self.state {
            State::Running {
                id: cur,
                stopping: true,
                ..
            } if *cur == id => {}
            _ => return None,
        }
        let State::Running { info, .. } = std::mem::replace(&mut self.state, State::Idle) else {
            return None;
        };
        Some((
            info,
            AppError::with_detail(
                ErrorCode::TaskCancelTimeout,
                format!("no stop within {STOP_TIMEOUT:?}"),
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    /// A task that counts the stops it was sent, or cannot be told.
    #[derive(Clone)]
    struct Fake {
        stops: Rc<Cell<u32>>,
        gone: bool,
    }

    impl Fake {
        fn new() -> Self {
            Fake {
                stops: Rc::new(Cell::new(0)),
                gone: false,
            }
        }
    }

    impl Stoppable for Fake {
        fn request_stop(&self) -> Result<(), TaskGone> {
            if self.gone {
                return Err(TaskGone);
            }
            self.stops.set(self.stops.get() + 1);
            Ok(())
        }
    }

    fn running(slot: &mut TaskSlot<&'static str, Fake>, task: &Fake) -> TaskId {
        let id = slot.reserve("t").unwrap();
        slot.attach(id, task.clone()).ok().unwrap();
        id
    }

    #[test]
    fn start_runs_one_task_and_finish_frees_the_slot() {
        let mut slot = TaskSlot::<&str, Fake>::default();
        let task = Fake::new();
        let id = running(&mut slot, &task);
        assert!(slot.is_busy());
        assert_eq!(slot.running().map(|(_, i)| *i), Some("t"));
        let (info, cleanup) = slot.finished(id, None).unwrap();
        assert_eq!((info, cleanup), ("t", None));
        assert!(!slot.is_busy());
    }

    #[test]
    fn a_start_while_starting_or_running_is_refused_with_50010() {
        let mut slot = TaskSlot::<&str, Fake>::default();
        let id = slot.reserve("first").unwrap();
        assert_eq!(
            slot.reserve("second").unwrap_err().code,
            ErrorCode::TaskAlreadyRunning
        );
        slot.attach(id, Fake::new()).ok().unwrap();
        assert_eq!(
            slot.reserve("third").unwrap_err().code,
            ErrorCode::TaskAlreadyRunning
        );
        assert_eq!(slot.info(id), Some(&"first"));
    }

    #[test]
    fn cancel_sends_one_stop_and_is_idempotent() {
        let mut slot = TaskSlot::<&str, Fake>::default();
        let task = Fake::new();
        let id = running(&mut slot, &task);
        assert_eq!(slot.cancel().unwrap(), Cancel::StopSent(id));
        assert_eq!(slot.cancel().unwrap(), Cancel::AlreadyStopping(id));
        assert_eq!(task.stops.get(), 1);
        // a stopping task takes no more input
        assert!(slot.running().is_none());
        assert!(slot.finished(id, None).is_some());
        assert_eq!(slot.cancel().unwrap_err().code, ErrorCode::NoRunningTask);
    }

    #[test]
    fn cancel_while_starting_frees_the_slot_and_the_late_start_is_refused() {
        let mut slot = TaskSlot::<&str, Fake>::default();
        let id = slot.reserve("t").unwrap();
        assert_eq!(slot.cancel().unwrap(), Cancel::NotStarted(id, "t"));
        assert!(!slot.is_busy());
        let late = Fake::new();
        assert!(
            slot.attach(id, late).is_err(),
            "the caller must stop a task nobody waits for"
        );
    }

    #[test]
    fn finish_racing_cancel_frees_once_and_the_give_up_timer_does_nothing() {
        let mut slot = TaskSlot::<&str, Fake>::default();
        let id = running(&mut slot, &Fake::new());
        assert_eq!(slot.cancel().unwrap(), Cancel::StopSent(id));
        assert!(slot.finished(id, None).is_some());
        // the timer armed by the cancel fires after the task ended
        assert!(slot.give_up(id).is_none());
        // and a new task is not touched by it
        let next = running(&mut slot, &Fake::new());
        assert!(slot.give_up(id).is_none());
        assert_eq!(slot.current(), Some(next));
    }

    #[test]
    fn a_task_that_does_not_stop_is_given_up_with_50012_and_its_late_end_is_ignored() {
        let mut slot = TaskSlot::<&str, Fake>::default();
        let id = running(&mut slot, &Fake::new());
        // the timer of a task that was never stopped does nothing
        assert!(slot.give_up(id).is_none());
        slot.cancel().unwrap();
        let (info, err) = slot.give_up(id).unwrap();
        assert_eq!(info, "t");
        assert_eq!(err.code, ErrorCode::TaskCancelTimeout);
        let next = running(&mut slot, &Fake::new());
        assert!(
            slot.finished(id, None).is_none(),
            "a late end must not free the newer task"
        );
        assert_eq!(slot.current(), Some(next));
    }

    #[test]
    fn a_cleanup_failure_comes_back_as_50014() {
        let mut slot = TaskSlot::<&str, Fake>::default();
        let id = running(&mut slot, &Fake::new());
        let failure = AppError::with_detail(ErrorCode::SftpFailed, "cannot remove temp");
        let (_, cleanup) = slot.finished(id, Some(failure)).unwrap();
        let cleanup = cleanup.unwrap();
        assert_eq!(cleanup.code, ErrorCode::TaskCleanupFailed);
        assert!(cleanup.detail.unwrap().contains("cannot remove temp"));
    }

    #[test]
    fn a_task_that_cannot_be_told_to_stop_gives_50013_and_frees_the_slot() {
        let mut slot = TaskSlot::<&str, Fake>::default();
        let gone = Fake {
            gone: true,
            ..Fake::new()
        };
        running(&mut slot, &gone);
        assert_eq!(slot.cancel().unwrap_err().code, ErrorCode::TaskCancelFailed);
        assert!(!slot.is_busy());
    }

    #[test]
    fn occupy_takes_a_free_slot_only() {
        let mut slot = TaskSlot::<&str, Fake>::default();
        let id = TaskId::next();
        slot.occupy(id, "a", Fake::new()).ok().unwrap();
        assert_eq!(slot.current(), Some(id));
        let (err, _) = slot.occupy(TaskId::next(), "b", Fake::new()).err().unwrap();
        assert_eq!(err.code, ErrorCode::TaskAlreadyRunning);
        assert_eq!(slot.info(id), Some(&"a"));
    }

    #[test]
    fn ids_are_never_reused() {
        let mut slot = TaskSlot::<&str, Fake>::default();
        let a = slot.reserve("a").unwrap();
        slot.abort_start(a).unwrap();
        let b = slot.reserve("b").unwrap();
        assert_ne!(a, b);
        assert!(slot.abort_start(a).is_none());
    }
}
