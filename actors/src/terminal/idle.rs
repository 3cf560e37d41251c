//! [`IdleClock`]: when an idle operator terminal is warned and closed.
//!
//! Idle means no input and no output (WAVE2). A terminal idle for
//! `idle` is closed; `warn_before` earlier (a minute by default, at most
//! half the idle time) its clients get `terminal_idle_warning`. Any input
//! or output starts the count again and allows a new warning. Pure logic
//! on the caller's clock, tested under paused time.

use std::time::Duration;

use tokio::time::Instant;

/// Default warning lead: a minute.
pub const DEFAULT_WARN_BEFORE: Duration = Duration::from_secs(60);

/// What the terminal does next about idleness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleStep {
    /// Nothing until `at`; ask again then.
    WaitUntil(Instant),
    /// Warn now that it closes in this long, then ask again.
    Warn(Duration),
    /// Close now.
    Close,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct IdleClock {
    idle: Duration,
    warn_before: Duration,
    last: Instant,
    warned: bool,
}

impl IdleClock {
    /// A clock closing after `idle` without activity, warning
    /// `min(warn_before, idle / 2)` before; active as of `now`.
    pub fn new(idle: Duration, warn_before: Duration, now: Instant) -> Self {
        IdleClock {
            idle,
            warn_before: warn_before.min(idle / 2),
            last: now,
            warned: false,
        }
    }

    /// Input or output at `now`.
    pub fn active(&mut self, now: Instant) {
        self.last = now;
        self.warned = false;
    }

    /// When it closes if nothing happens.
    pub fn closes_at(&self) -> Instant {
        self.last + self.idle
    }

    /// What to do at `now`.
    pub fn step(&mut self, now: Instant) -> IdleStep {
        let close_at = self.closes_at();
        if now >= close_at {
            return IdleStep::Close;
        }
        let warn_at = close_at - self.warn_before;
        if now >= warn_at && !self.warned {
            self.warned = true;
            return IdleStep::Warn(close_at - now);
        }
        if self.warned {
            IdleStep::WaitUntil(close_at)
        } else {
            IdleStep::WaitUntil(warn_at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn it_warns_a_minute_before_and_closes_at_the_idle_time() {
        let t0 = Instant::now();
        let mut c = IdleClock::new(30 * 60 * S, DEFAULT_WARN_BEFORE, t0);
        assert_eq!(c.step(t0), IdleStep::WaitUntil(t0 + 29 * 60 * S));
        tokio::time::advance(29 * 60 * S).await;
        assert_eq!(c.step(Instant::now()), IdleStep::Warn(60 * S));
        // warned once only
        assert_eq!(c.step(Instant::now()), IdleStep::WaitUntil(t0 + 30 * 60 * S));
        tokio::time::advance(60 * S).await;
        assert_eq!(c.step(Instant::now()), IdleStep::Close);
    }

    #[tokio::test(start_paused = true)]
    async fn activity_after_a_warning_starts_over_and_allows_a_new_warning() {
        let t0 = Instant::now();
        let mut c = IdleClock::new(10 * S, DEFAULT_WARN_BEFORE, t0);
        // a short idle time warns at half of it
        assert_eq!(c.step(t0), IdleStep::WaitUntil(t0 + 5 * S));
        tokio::time::advance(5 * S).await;
        assert_eq!(c.step(Instant::now()), IdleStep::Warn(5 * S));
        tokio::time::advance(4 * S).await;
        c.active(Instant::now());
        let t1 = Instant::now();
        assert_eq!(c.step(t1), IdleStep::WaitUntil(t1 + 5 * S));
        tokio::time::advance(5 * S).await;
        assert_eq!(c.step(Instant::now()), IdleStep::Warn(5 * S));
    }
}
