//! [`DiffBudget`]: the bytes every running diff may hold, daemon-wide.
//!
//! A diff holds both sides in memory (two files, two command outputs, two
//! directory listings) plus the comparison. Each is capped, but nothing
//! capped how many run at once: 1,000 `diff_files` of 10 MiB files held
//! 20 GB. So a diff reserves the most it may hold before it starts, and is
//! refused with 53001 when the reservation does not fit; nothing waits, so
//! a refused client is told at once and may retry.
//!
//! Why no race: the held total is one atomic counter, and a reservation is
//! a compare-and-swap that either adds its bytes under the limit or adds
//! nothing. The [`Reservation`] gives its bytes back when dropped, so every
//! path that ends a diff (reply, error, cancel, a client gone, a panic)
//! releases it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{AppError, ErrorCode};

/// The daemon's diff budget; clones share it.
#[derive(Clone)]
pub struct DiffBudget(Arc<Shared>);

struct Shared {
    /// Most bytes held at once.
    limit: u64,
    /// Bytes reserved by running diffs.
    held: AtomicU64,
}

impl fmt::Debug for DiffBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiffBudget")
            .field("limit", &self.0.limit)
            .field("held", &self.held())
            .finish()
    }
}

impl DiffBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        DiffBudget(Arc::new(Shared {
            limit,
            held: AtomicU64::new(0),
        }))
    }

    /// Bytes reserved now (for tests and the log).
    pub fn held(&self) -> u64 {
        self.0.held.load(Ordering::Acquire)
    }

    /// Reserves `bytes` until the [`Reservation`] is dropped, or refuses
    /// with 53001 when they do not fit under the limit now.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation, AppError> {
        let limit = self.0.limit;
        let taken = self
            .0
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|total| *total <= limit)
            });
        match taken {
            Ok(_) => Ok(Reservation {
                budget: Arc::clone(&self.0),
                bytes,
            }),
            Err(held) => Err(AppError::with_detail(
                ErrorCode::DiffBudgetExhausted,
                format!(
                    "this diff may hold {bytes} bytes; running diffs hold {held} of {limit} \
                     (PINKPAGE_DIFF_BUDGET_BYTES)"
                ),
            )),
        }
    }
}

/// Bytes held by one diff; given back when dropped.
#[must_use = "the bytes are given back as soon as the reservation is dropped"]
pub struct Reservation {
    budget: Arc<Shared>,
    bytes: u64,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation").field("bytes", &self.bytes).finish()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_under_the_limit_and_give_their_bytes_back_when_dropped() {
        let budget = DiffBudget::new(100);
        let a = budget.reserve(60).unwrap();
        let refused = budget.reserve(41).unwrap_err();
        assert_eq!(refused.code, ErrorCode::DiffBudgetExhausted);
        assert!(refused.detail.unwrap().contains("hold 60 of 100"));
        let b = budget.reserve(40).unwrap();
        assert_eq!(budget.held(), 100);
        drop(a);
        drop(b);
        assert_eq!(budget.held(), 0);
        let _c = budget.reserve(100).unwrap();
    }

    #[test]
    fn a_diff_larger_than_the_whole_budget_is_refused_without_overflow() {
        let budget = DiffBudget::new(100);
        let _a = budget.reserve(1).unwrap();
        assert!(budget.reserve(101).is_err());
        assert!(budget.reserve(u64::MAX).is_err());
        assert_eq!(budget.held(), 1);
    }

    #[test]
    fn concurrent_reservations_never_exceed_the_limit() {
        let budget = DiffBudget::new(1000);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let budget = budget.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        if let Ok(r) = budget.reserve(300) {
                            assert!(budget.held() <= 1000);
                            drop(r);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(budget.held(), 0);
    }
}
