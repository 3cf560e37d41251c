//! [`InFlight`]: the work a graceful shutdown waits for (each closed
//! connection's task cleanup, each workflow run). Whoever starts such work
//! holds an [`InFlightGuard`] until it ended; the shutdown
//! (`crate::shutdown`) waits for [`InFlight::drained`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Work that must end before the daemon exits: each connection's tasks
/// after it closed (their cleanup), each workflow run. Whoever starts such
/// work holds an [`InFlightGuard`] until it ended.
///
/// Who owns what: the count is atomic and only guards change it; the
/// `Notify` wakes [`InFlight::drained`] when it reaches zero, and a waiter
/// checks the count after registering, so a guard dropped in between is
/// not missed.
#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One piece of work in flight; dropping it ends it.
pub struct InFlightGuard(Arc<InFlight>);

impl InFlight {
    /// Counts one more piece of work until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    /// Work in flight now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Returns once no work is in flight.
    pub async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drained_waits_for_the_last_guard() {
        let in_flight = Arc::new(InFlight::default());
        in_flight.drained().await;
        let a = in_flight.enter();
        let b = in_flight.enter();
        assert_eq!(in_flight.count(), 2);
        let waiter = tokio::spawn({
            let in_flight = in_flight.clone();
            async move { in_flight.drained().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one guard still held");
        drop(b);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("drained once the last guard went")
            .unwrap();
        assert_eq!(in_flight.count(), 0);
    }
}
