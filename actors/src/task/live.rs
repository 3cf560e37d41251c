//! [`LiveTasks`]: the tasks of one connection, stoppable without going
//! through that connection's mailbox.
//!
//! Why it exists: a WebSocket connection whose client stopped reading is
//! no longer polled (actix stops polling the response body once the
//! socket's write buffer is full), so a message to it (`LockRevoked`) is
//! never handled. The lock (on a force release) and the daemon's stall
//! watchdog stop the connection's tasks through this handle instead: the
//! task actors have their own mailboxes and are polled whatever the
//! connection does.
//!
//! Who owns it: the connection creates it and tracks each task it starts;
//! the lock and the watchdog hold clones. Why no race: one mutex guards
//! both the "closed" state and the list, so a task is either tracked
//! before a close (and stopped by it) or refused after it (and stopped by
//! the connection that tried to start it). A closed handle stays closed
//! until the connection is granted the lock again ([`LiveTasks::reopen`]),
//! unless it was closed for good ([`LiveTasks::kill`]: the connection is
//! being dropped).

use std::sync::{Arc, Mutex, MutexGuard};

use super::{Done, TaskHandle};

#[derive(Default)]
struct Inner {
    /// New tasks are refused while set.
    closed: bool,
    /// Set once the connection is being dropped: never reopened.
    dead: bool,
    /// The tasks started and not known to be done (pruned on each track).
    tasks: Vec<TaskHandle>,
}

/// The live tasks of one connection. Cheap to clone; every clone is the
/// same set.
#[derive(Clone, Default)]
pub struct LiveTasks(Arc<Mutex<Inner>>);

/// Why [`LiveTasks::track`] refused a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection's tasks were stopped (its lock was taken or it is being dropped)")]
pub struct TasksClosed;

impl LiveTasks {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the list half
        // changed (each change is one push or one retain): go on with it.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tracks a task just started. `Err` once closed: the caller must stop
    /// the task it started.
    pub fn track(&self, handle: &TaskHandle) -> Result<(), TasksClosed> {
        let mut inner = self.inner();
        if inner.closed {
            return Err(TasksClosed);
        }
        inner.tasks.retain(|t| !t.done().is_done());
        inner.tasks.push(handle.clone());
        Ok(())
    }

    /// Refuses new tasks and tells every tracked one to stop; the done
    /// signals of those not yet done.
    pub fn close_and_stop(&self) -> Vec<Done> {
        let mut inner = self.inner();
        inner.closed = true;
        let tasks = std::mem::take(&mut inner.tasks);
        drop(inner);
        tasks
            .into_iter()
            .filter(|t| !t.done().is_done())
            .map(|t| {
                // A task gone without finishing (`Err`) is done already:
                // its done signal resolves at once.
                let _ = t.stop();
                t.done()
            })
            .collect()
    }

    /// [`close_and_stop`](Self::close_and_stop), for good: the connection
    /// is being dropped.
    pub fn kill(&self) -> Vec<Done> {
        self.inner().dead = true;
        self.close_and_stop()
    }

    /// Accepts tasks again after a close, unless killed: the connection
    /// was granted the lock anew.
    pub fn reopen(&self) {
        let mut inner = self.inner();
        if !inner.dead {
            inner.closed = false;
        }
    }

    /// How many tracked tasks are not done yet.
    pub fn running(&self) -> usize {
        self.inner().tasks.iter().filter(|t| !t.done().is_done()).count()
    }
}

#[cfg(test)]
mod tests {
    use actix::{Actor, ActorContext, Context, Handler};

    use super::*;
    use crate::task::{Pending, Reporter, Stop, TaskId, TaskMessage};

    struct Client;
    impl Actor for Client {
        type Context = Context<Self>;
    }
    impl Handler<TaskMessage<(), ()>> for Client {
        type Result = ();
        fn handle(&mut self, _: TaskMessage<(), ()>, _: &mut Context<Self>) {}
    }

    struct Task(Option<Reporter<(), ()>>);
    impl Actor for Task {
        type Context = Context<Self>;
        fn stopped(&mut self, _: &mut Context<Self>) {
            if let Some(r) = self.0.take() {
                r.finish((), None);
            }
        }
    }
    impl Handler<Stop> for Task {
        type Result = ();
        fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }

    fn task(client: &actix::Addr<Client>) -> TaskHandle {
        let (reporter, handle) = Pending::new(TaskId::next(), client.clone().recipient()).split();
        handle(Task(Some(reporter)).start().recipient())
    }

    #[actix::test]
    async fn close_stops_every_tracked_task_and_refuses_new_ones_until_reopened() {
        let client = Client.start();
        let live = LiveTasks::default();
        let (a, b) = (task(&client), task(&client));
        live.track(&a).unwrap();
        live.track(&b).unwrap();
        assert_eq!(live.running(), 2);
        let dones = live.close_and_stop();
        assert_eq!(dones.len(), 2);
        futures_util::future::join_all(dones.into_iter().map(Done::wait)).await;
        assert!(a.done().is_done() && b.done().is_done());
        let c = task(&client);
        assert_eq!(live.track(&c), Err(TasksClosed));
        live.reopen();
        live.track(&c).unwrap();
        assert_eq!(live.running(), 1);
    }

    #[actix::test]
    async fn a_killed_set_is_never_reopened() {
        let client = Client.start();
        let live = LiveTasks::default();
        assert!(live.kill().is_empty());
        live.reopen();
        assert_eq!(live.track(&task(&client)), Err(TasksClosed));
    }
}
