//! A terminal's place among the operator terminals and its live numbers:
//! the two things an `OperatorTerminal` holds of the book. A leaf, so the
//! book (which keeps each terminal's address) and the terminal (which
//! holds its seat) do not import each other.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::ids::TerminalId;

/// A terminal's place in the book; dropping it frees the place (the book
/// made it with the release to run).
pub struct TerminalSeat {
    terminal_id: TerminalId,
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for TerminalSeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalSeat")
            .field("terminal_id", &self.terminal_id)
            .finish()
    }
}

impl TerminalSeat {
    /// The seat of terminal `terminal_id`, running `release` when dropped.
    pub(crate) fn new(terminal_id: TerminalId, release: Box<dyn FnOnce() + Send>) -> Self {
        TerminalSeat {
            terminal_id,
            release: Some(release),
        }
    }

    /// The terminal's id.
    pub fn terminal_id(&self) -> TerminalId {
        self.terminal_id
    }
}

impl Drop for TerminalSeat {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

/// Numbers a running terminal keeps up to date for listings.
#[derive(Debug)]
pub struct TerminalStats {
    /// Connections attached now.
    pub attached: AtomicUsize,
    /// When there was last input or output.
    pub last_activity: Mutex<tokio::time::Instant>,
}

impl Default for TerminalStats {
    fn default() -> Self {
        TerminalStats {
            attached: AtomicUsize::new(0),
            last_activity: Mutex::new(tokio::time::Instant::now()),
        }
    }
}

impl TerminalStats {
    /// Marks input or output now.
    pub fn active(&self) {
        *self.last_activity.lock().unwrap_or_else(|p| p.into_inner()) = tokio::time::Instant::now();
    }

    /// How long since the last input or output.
    pub fn idle(&self) -> std::time::Duration {
        self.last_activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

/// Marks `stats` attached by one more (`delta` 1) or one fewer (-1).
pub fn attached(stats: &TerminalStats, delta: isize) {
    if delta > 0 {
        stats.attached.fetch_add(1, Ordering::Relaxed);
    } else {
        let _ = stats
            .attached
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}
