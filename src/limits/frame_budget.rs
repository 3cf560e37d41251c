//! [`FrameBudget`]: the bytes every WebSocket's incomplete messages may
//! hold together beyond each connection's own allowance
//! (`PINKPAGE_WS_FRAME_BUDGET_BYTES`).
//!
//! A connection keeps up to `PINKPAGE_WS_FRAME_ALLOWANCE_BYTES` of a
//! message still arriving on its own; a longer one (a pasted script, an
//! inline upload: the rare large message, at most 64 KiB) first reserves
//! what it will hold past that here. When the budget is spent the
//! connection stops reading its socket until a reservation is given back
//! (TCP slows the client down); a reservation is held only while its
//! message arrives, and a client that stops mid-message is dropped by the
//! heartbeat after `PINKPAGE_WS_TIMEOUT_S`, so the wait is bounded. The
//! reader that spends it is `crate::ws::reader`.
//!
//! Who owns what: the count is a tokio semaphore of one permit per byte
//! (fair: bytes given back go to waiting reservations in order, before a
//! new one can take them), shared by every connection through `AppState`; a
//! [`Reservation`] is an owned permit, given back when dropped, whatever
//! ends the message.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The daemon-wide budget of incomplete-message bytes. Cheap to clone.
#[derive(Clone)]
pub struct FrameBudget {
    bytes: Arc<Semaphore>,
    capacity: usize,
}

/// Bytes reserved from a [`FrameBudget`]; given back when dropped.
pub struct Reservation(OwnedSemaphorePermit);

impl Reservation {
    /// How many bytes it holds.
    pub fn bytes(&self) -> usize {
        self.0.num_permits()
    }

    /// Adds `more` to this reservation (both from the same budget).
    pub fn merge(&mut self, more: Reservation) {
        self.0.merge(more.0);
    }
}

impl FrameBudget {
    /// A budget of `capacity` bytes (at most 1 GiB, as settings allow).
    pub fn new(capacity: usize) -> FrameBudget {
        FrameBudget {
            bytes: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// `bytes` at once, or `None` when the budget has less free.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let n = u32::try_from(bytes).ok()?;
        self.bytes.clone().try_acquire_many_owned(n).ok().map(Reservation)
    }

    /// `bytes`, once they are free. Never resolves for more than the
    /// capacity: callers ask for at most the largest message, and the
    /// settings keep the capacity above that.
    pub fn reserve(&self, bytes: usize) -> impl Future<Output = Reservation> + 'static {
        let semaphore = self.bytes.clone();
        let n = u32::try_from(bytes).unwrap_or(u32::MAX);
        async move {
            match semaphore.acquire_many_owned(n).await {
                Ok(permit) => Reservation(permit),
                // the semaphore is never closed
                Err(_) => std::future::pending().await,
            }
        }
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> usize {
        self.capacity - self.bytes.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_come_back_when_dropped_and_a_waiter_gets_its_turn() {
        let budget = FrameBudget::new(100);
        let mut a = budget.try_reserve(60).unwrap();
        assert!(budget.try_reserve(50).is_none());
        a.merge(budget.try_reserve(30).unwrap());
        assert_eq!((a.bytes(), budget.in_use()), (90, 90));

        let waiter = tokio::spawn(budget.reserve(50));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "granted with only 10 bytes free");
        drop(a);
        let got = waiter.await.unwrap();
        assert_eq!((got.bytes(), budget.in_use()), (50, 50));
        drop(got);
        assert_eq!(budget.in_use(), 0);
    }
}
