//! The task contract: what every actor that does work for a client
//! (`SshShellActor`, `TransferActor`, `ScriptRunActor`, `BatchRunActor`,
//! diff jobs) promises, and the connection-side [`slot::TaskSlot`] that
//! relies on it.
//!
//! The promise:
//! - A task has a daemon-unique [`TaskId`], given by whoever starts it.
//! - [`Stop`] always means `ctx.stop()`. Cleanup (close the channel, signal
//!   the remote command, remove temporary files) runs in `stopping` /
//!   `stopped`, detached if it must await, and is bounded by
//!   [`CLEANUP_TIMEOUT`].
//! - Everything it tells its client is a [`TaskMessage`] carrying its
//!   `task_id`, so a client never takes a notice of a task it gave up on
//!   for one of the task that replaced it.
//! - It ends with exactly one [`TaskEvent::Finished`], sent after its
//!   cleanup, with the cleanup's failure (50014) if any. Nothing follows.
//! - Whoever holds its [`TaskHandle`] can await [`TaskHandle::done`]: it
//!   resolves once `Finished` was sent, or once the task is gone without
//!   sending it (a panic, a stopped arbiter), so no waiter waits forever.
//!
//! [`live::LiveTasks`] lets the lock and the daemon's stall watchdog stop
//! a connection's tasks without going through that connection's mailbox.
//!
//! [`Reporter`] is the task's half of the contract: it carries the id, the
//! client's `Recipient` and the done signal, and `finish` consumes it, so
//! "exactly one Finished" is checked by the compiler.

pub mod live;
pub mod slot;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::{Message, Recipient};
use tokio::sync::watch;

use crate::error::AppError;

/// How long a task's cleanup may take before it is reported as failed
/// (50014); below [`STOP_TIMEOUT`], so a slow cleanup is reported before the
/// client gives the task up.
pub const CLEANUP_TIMEOUT: Duration = Duration::from_secs(4);

/// How long a client waits for `Finished` after sending [`Stop`] before it
/// gives the task up (50012) and frees its slot.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A daemon-unique task id (never reused while the daemon runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

impl TaskId {
    /// A fresh id.
    pub fn next() -> TaskId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TaskId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A task that is gone without having sent `Finished`: it cannot be told
/// to stop (50013).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the task is gone without finishing")]
pub struct TaskGone;

/// Stop now. Every task handles it with `ctx.stop()`; idempotent.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// What a task says: a notice of its own kind `N`, or the end.
#[derive(Debug)]
pub enum TaskEvent<N, O> {
    /// Output, progress, a result: whatever the task reports on the way.
    Notice(N),
    /// The end, after cleanup; nothing follows.
    Finished {
        /// How the work ended.
        outcome: O,
        /// The cleanup's failure (50014), if it failed or ran out of time.
        cleanup_error: Option<AppError>,
    },
}

/// One message from task `task_id` to its client.
#[derive(Debug)]
pub struct TaskMessage<N, O> {
    /// Which task says it.
    pub task_id: TaskId,
    /// What it says.
    pub event: TaskEvent<N, O>,
}

impl<N: 'static, O: 'static> Message for TaskMessage<N, O> {
    type Result = ();
}

/// The task's half of the contract. See the module docs.
pub struct Reporter<N: Send + 'static, O: Send + 'static> {
    task_id: TaskId,
    client: Recipient<TaskMessage<N, O>>,
    /// Set to `true` once `Finished` was sent; dropping it unset tells the
    /// waiters the task is gone all the same.
    done: watch::Sender<bool>,
}

impl<N: Send + 'static, O: Send + 'static> Reporter<N, O> {
    /// The id this reporter stamps on every message.
    pub fn task_id(&self) -> TaskId {
        self.task_id
    }

    /// Sends a notice without waiting (for small, bounded notices).
    pub fn notice(&self, notice: N) {
        self.client.do_send(TaskMessage {
            task_id: self.task_id,
            event: TaskEvent::Notice(notice),
        });
    }

    /// The task's own done signal: for a task that must answer someone
    /// only once it has finished (a workflow run told its lock is gone).
    pub fn done(&self) -> Done {
        Done(self.done.subscribe())
    }

    /// A cheap clone of the sending side, for futures that outlive a
    /// borrow of the reporter (the output pump).
    pub fn notifier(&self) -> Notifier<N, O> {
        Notifier {
            task_id: self.task_id,
            client: self.client.clone(),
        }
    }

    /// Sends `Finished` and marks the task done. Consumes the reporter:
    /// there is exactly one.
    pub fn finish(self, outcome: O, cleanup_error: Option<AppError>) {
        self.client.do_send(TaskMessage {
            task_id: self.task_id,
            event: TaskEvent::Finished {
                outcome,
                cleanup_error,
            },
        });
        let _ = self.done.send(true);
    }
}

/// A clone of a [`Reporter`]'s notice side (it cannot finish the task).
pub struct Notifier<N: Send + 'static, O: Send + 'static> {
    task_id: TaskId,
    client: Recipient<TaskMessage<N, O>>,
}

impl<N: Send + 'static, O: Send + 'static> Clone for Notifier<N, O> {
    fn clone(&self) -> Self {
        Notifier {
            task_id: self.task_id,
            client: self.client.clone(),
        }
    }
}

impl<N: Send + 'static, O: Send + 'static> Notifier<N, O> {
    /// Sends a notice and waits until the client's mailbox took it: the
    /// backpressure for output, so a client that does not read slows the
    /// task instead of growing a queue. `false` once the client is gone.
    pub async fn send(&self, notice: N) -> bool {
        self.client
            .send(TaskMessage {
                task_id: self.task_id,
                event: TaskEvent::Notice(notice),
            })
            .await
            .is_ok()
    }

    /// See [`Reporter::notice`].
    pub fn do_send(&self, notice: N) {
        self.client.do_send(TaskMessage {
            task_id: self.task_id,
            event: TaskEvent::Notice(notice),
        });
    }
}

/// Resolves once the task is done (see the module docs). Cloneable: the
/// connection, `end_session` and a lock revocation may all wait on it.
#[derive(Clone)]
pub struct Done(watch::Receiver<bool>);

impl Done {
    /// Waits until `Finished` was sent or the task is gone.
    pub async fn wait(mut self) {
        // Err: the reporter was dropped without finishing; the task is gone.
        let _ = self.0.wait_for(|done| *done).await;
    }

    /// Whether the task is already done.
    pub fn is_done(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Whether the task is gone without having sent `Finished`.
    fn vanished(&self) -> bool {
        !*self.0.borrow() && self.0.has_changed().is_err()
    }
}

/// The client's half: how to stop the task and learn that it is done.
#[derive(Clone)]
pub struct TaskHandle {
    /// The task's id.
    pub task_id: TaskId,
    stop: Recipient<Stop>,
    done: Done,
}

impl TaskHandle {
    /// Asks the task to stop. `Err` when it cannot be told (its mailbox is
    /// closed: it is gone), which the slot reports as 50013.
    pub fn stop(&self) -> Result<(), TaskGone> {
        match self.stop.try_send(Stop) {
            Ok(()) => Ok(()),
            // A full mailbox still holds the stop: it will be handled.
            Err(actix::dev::SendError::Full(_)) => {
                self.stop.do_send(Stop);
                Ok(())
            }
            // The actor is gone. If it is still cleaning up, or already
            // sent `Finished`, that end is on its way: not a failure. Only a
            // task gone without finishing cannot be stopped.
            Err(actix::dev::SendError::Closed(_)) if self.done.vanished() => Err(TaskGone),
            Err(actix::dev::SendError::Closed(_)) => Ok(()),
        }
    }

    /// Resolves once the task is done.
    pub fn done(&self) -> Done {
        self.done.clone()
    }
}

/// A new task's two halves: the [`Reporter`] goes into the task actor, the
/// [`TaskHandle`] (completed with the actor's address by [`Pending::started`])
/// to its client.
pub struct Pending<N: Send + 'static, O: Send + 'static> {
    /// Goes into the task.
    pub reporter: Reporter<N, O>,
    done: Done,
}

impl<N: Send + 'static, O: Send + 'static> Pending<N, O> {
    /// Both halves of task `task_id`, reporting to `client`.
    pub fn new(task_id: TaskId, client: Recipient<TaskMessage<N, O>>) -> Self {
        let (tx, rx) = watch::channel(false);
        Pending {
            reporter: Reporter {
                task_id,
                client,
                done: tx,
            },
            done: Done(rx),
        }
    }

    /// Splits into the reporter (for the task) and a function that makes
    /// the handle once the task's `Recipient<Stop>` exists.
    pub fn split(self) -> (Reporter<N, O>, impl FnOnce(Recipient<Stop>) -> TaskHandle) {
        let task_id = self.reporter.task_id;
        let done = self.done;
        (self.reporter, move |stop| TaskHandle { task_id, stop, done })
    }
}

#[cfg(test)]
mod tests {
    use actix::{Actor, ActorContext, Context, Handler};

    use super::*;

    /// A client that records what its task told it.
    #[derive(Default)]
    struct Client {
        seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }
    impl Actor for Client {
        type Context = Context<Self>;
    }
    /// What the client saw so far (answered after every earlier message).
    #[derive(actix::Message)]
    #[rtype(result = "Vec<String>")]
    struct Seen;
    impl Handler<Seen> for Client {
        type Result = actix::MessageResult<Seen>;
        fn handle(&mut self, _: Seen, _: &mut Context<Self>) -> Self::Result {
            actix::MessageResult(self.seen.lock().unwrap().clone())
        }
    }
    impl Handler<TaskMessage<u32, &'static str>> for Client {
        type Result = ();
        fn handle(&mut self, msg: TaskMessage<u32, &'static str>, _: &mut Context<Self>) {
            let line = match msg.event {
                TaskEvent::Notice(n) => format!("{} notice {n}", msg.task_id),
                TaskEvent::Finished { outcome, .. } => format!("{} finished {outcome}", msg.task_id),
            };
            self.seen.lock().unwrap().push(line);
        }
    }

    /// A task that stops on `Stop` and holds its reporter until then.
    struct Task(Option<Reporter<u32, &'static str>>);
    impl Actor for Task {
        type Context = Context<Self>;
        fn stopped(&mut self, _: &mut Context<Self>) {
            if let Some(r) = self.0.take() {
                r.finish("stopped", None);
            }
        }
    }
    impl Handler<Stop> for Task {
        type Result = ();
        fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }

    #[actix::test]
    async fn messages_carry_the_task_id_and_done_resolves_after_finished() {
        let client = Client::default().start();
        let id = TaskId::next();
        let (reporter, handle) = Pending::new(id, client.clone().recipient()).split();
        reporter.notice(7);
        let task = Task(Some(reporter)).start();
        let handle = handle(task.recipient());
        assert!(!handle.done().is_done());
        handle.stop().unwrap();
        handle.done().wait().await;
        assert!(handle.done().is_done());
        // `finish` queued the message before marking done, so the client
        // has it before it answers this
        assert_eq!(
            client.send(Seen).await.unwrap(),
            vec![format!("{id} notice 7"), format!("{id} finished stopped")]
        );
        // stopping a task that already finished is not a failure
        assert!(handle.stop().is_ok());
    }

    #[actix::test]
    async fn a_task_gone_without_finishing_resolves_done_and_cannot_be_stopped() {
        let client = Client::default().start();
        let (reporter, handle) = Pending::new(TaskId::next(), client.recipient()).split();
        let task = Task(None).start();
        let handle = handle(task.clone().recipient());
        drop(reporter); // the task lost its reporter without finishing
        task.send(Stop).await.unwrap();
        handle.done().wait().await;
        // the mailbox closes once the actor has fully stopped: no event
        // says when, so poll (bounded)
        crate::testing::eventually("the task's mailbox closes", async || !task.connected()).await;
        assert_eq!(handle.stop(), Err(TaskGone));
    }
}
