//! A watcher's feed: the events of a run on their way to one connection,
//! in order, with a bound.
//!
//! The hub pushes every event for a watcher into the watcher's own queue,
//! synchronously and in the order the run produced them; one forwarding
//! task per watcher hands them to the connection one at a time
//! (`send().await`, so a connection that does not read stops the
//! forwarder, not the hub). The queue counts the bytes not yet taken:
//! - the run's **primary** watcher (the connection that started it) gives
//!   backpressure: the run's next output waits until that feed is below
//!   [`HIGH_WATER`] (a command's output is then slowed, as in STUB);
//! - any other watcher (a connection that confirmed or cancelled) is best
//!   effort: once it is [`MAX_BEHIND`] behind it is dropped, so no watcher
//!   but the starter can slow a run, and none can grow the daemon.
//!
//! A feed whose connection is gone is closed and never waited for.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Recipient;
use pinkpage_actors::{ConnectionId, RunId};
use tokio::sync::{mpsc, Notify};

use super::events::{RunEvent, Watched, Watcher};

/// Bytes the primary watcher may have queued before the run's output waits.
pub const HIGH_WATER: usize = 256 * 1024;

/// Bytes another watcher may fall behind before it is dropped.
pub const MAX_BEHIND: usize = 4 * 1024 * 1024;

/// Shared by the hub (pushing) and the forwarder (taking).
#[derive(Default)]
struct Queue {
    bytes: AtomicUsize,
    closed: AtomicBool,
    drained: Notify,
}

/// One watcher's feed, kept by the hub.
pub struct Feed {
    /// The watching connection.
    pub id: ConnectionId,
    /// The watcher's own tag for the run's events.
    pub tag: Option<String>,
    /// Whether this watcher gives the run backpressure.
    pub primary: bool,
    tx: mpsc::UnboundedSender<(Option<String>, Arc<RunEvent>)>,
    queue: Arc<Queue>,
}

impl Feed {
    /// A feed of run `run_id`'s events to `watcher`, with its forwarding
    /// task started.
    pub fn new(run_id: RunId, watcher: Watcher, primary: bool) -> Feed {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Option<String>, Arc<RunEvent>)>();
        let queue = Arc::new(Queue::default());
        let shared = queue.clone();
        let recipient: Recipient<Watched> = watcher.recipient;
        actix::spawn(async move {
            while let Some((tag, event)) = rx.recv().await {
                let len = event.weight();
                let delivered = recipient.send(Watched { run_id, tag, event }).await.is_ok();
                shared.bytes.fetch_sub(len, Ordering::AcqRel);
                shared.drained.notify_waiters();
                if !delivered {
                    break;
                }
            }
            shared.closed.store(true, Ordering::Release);
            shared.drained.notify_waiters();
        });
        Feed {
            id: watcher.id,
            tag: watcher.tag,
            primary,
            tx,
            queue,
        }
    }

    /// Queues `event` with the feed's own tag; `false` when this watcher
    /// is gone or (not being the primary) too far behind: the hub then
    /// drops it.
    pub fn push(&self, event: &Arc<RunEvent>) -> bool {
        self.push_tagged(event, self.tag.clone())
    }

    /// [`push`](Self::push) with another tag (the answer to a request of
    /// this watcher that is not the one it watches by, a confirmation).
    pub fn push_tagged(&self, event: &Arc<RunEvent>, tag: Option<String>) -> bool {
        if self.queue.closed.load(Ordering::Acquire) {
            return false;
        }
        if !self.primary && self.queue.bytes.load(Ordering::Acquire) > MAX_BEHIND {
            return false;
        }
        self.queue.bytes.fetch_add(event.weight(), Ordering::AcqRel);
        self.tx.send((tag, event.clone())).is_ok()
    }

    /// Resolves once this feed is below [`HIGH_WATER`] or closed.
    pub fn below_high_water(&self) -> impl std::future::Future<Output = ()> + 'static {
        let queue = self.queue.clone();
        async move {
            loop {
                // registered before the check, so a drain in between wakes it
                let drained = queue.drained.notified();
                if queue.closed.load(Ordering::Acquire) || queue.bytes.load(Ordering::Acquire) <= HIGH_WATER {
                    return;
                }
                drained.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use actix::{Actor, Context, Handler};

    use super::*;

    /// A connection that takes events only when told to, keeping the text
    /// of each output.
    struct Slow {
        seen: Arc<std::sync::Mutex<Vec<String>>>,
        gate: Arc<tokio::sync::Semaphore>,
    }
    impl Actor for Slow {
        type Context = Context<Self>;
    }
    impl Handler<Watched> for Slow {
        type Result = actix::ResponseFuture<()>;
        fn handle(&mut self, w: Watched, _: &mut Context<Self>) -> Self::Result {
            let (seen, gate) = (self.seen.clone(), self.gate.clone());
            Box::pin(async move {
                gate.acquire().await.unwrap().forget();
                if let RunEvent::Output { data, .. } = &*w.event {
                    seen.lock().unwrap().push(data.clone());
                }
            })
        }
    }

    type Seen = Arc<std::sync::Mutex<Vec<String>>>;

    fn slow() -> (Watcher, Seen, Arc<tokio::sync::Semaphore>) {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let addr = Slow {
            seen: seen.clone(),
            gate: gate.clone(),
        }
        .start();
        let watcher = Watcher {
            id: ConnectionId::new(),
            recipient: addr.recipient(),
            tag: None,
        };
        (watcher, seen, gate)
    }

    fn output(data: String) -> Arc<RunEvent> {
        Arc::new(RunEvent::Output {
            step: 0,
            server: "alpha".into(),
            data,
        })
    }

    #[actix::test]
    async fn events_arrive_in_order_and_the_primary_holds_output_back_until_it_drains() {
        let (watcher, seen, gate) = slow();
        let feed = Feed::new(RunId::new(), watcher, true);
        let chunk = "x".repeat(100 * 1024);
        for i in 0..5 {
            assert!(feed.push(&output(format!("{i}{chunk}"))));
        }
        let mut waiting = Box::pin(feed.below_high_water());
        assert!(
            futures_util::poll!(waiting.as_mut()).is_pending(),
            "500 KiB queued is above the high water mark"
        );
        gate.add_permits(5);
        waiting.await;
        tokio::task::yield_now().await;
        let got: Vec<char> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|f| f.chars().next().unwrap())
            .collect();
        assert_eq!(got[..3], ['0', '1', '2']);
    }

    #[actix::test]
    async fn another_watcher_that_falls_too_far_behind_is_dropped_not_waited_for() {
        let (watcher, _, _gate) = slow();
        let feed = Feed::new(RunId::new(), watcher, false);
        let chunk = "y".repeat(1024 * 1024);
        let mut accepted = 0;
        while feed.push(&output(chunk.clone())) {
            accepted += 1;
            assert!(accepted < 10, "never dropped");
        }
        assert!(accepted >= 4, "dropped early: {accepted} MiB");
    }

    #[actix::test]
    async fn a_feed_whose_connection_is_gone_is_closed_and_never_blocks() {
        /// Takes one event, then stops (a connection going away).
        struct Gone;
        impl Actor for Gone {
            type Context = Context<Self>;
        }
        impl Handler<Watched> for Gone {
            type Result = ();
            fn handle(&mut self, _: Watched, ctx: &mut Context<Self>) {
                use actix::ActorContext;
                ctx.stop();
            }
        }
        let watcher = Watcher {
            id: ConnectionId::new(),
            recipient: Gone.start().recipient(),
            tag: None,
        };
        let feed = Feed::new(RunId::new(), watcher, true);
        assert!(feed.push(&output("a".repeat(HIGH_WATER * 2))));
        feed.below_high_water().await;
        // once closed, pushes are refused
        pinkpage_actors::testing::eventually("the feed closing", async || !feed.push(&output("b".into())))
            .await;
    }
}
