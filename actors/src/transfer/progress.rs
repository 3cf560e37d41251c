//! The progress throttle: at most one `scp_progress` per interval, however
//! many chunks move in between.

use std::time::Duration;

use tokio::time::Instant;

/// The least time between two progress events (SPEC: at most ~10 a second).
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Lets an update through when the previous one is at least `interval` old.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    /// When the last update went out; `None` before the first.
    last: Option<Instant>,
}

impl Throttle {
    /// A throttle that lets the first update through at once.
    pub fn new(interval: Duration) -> Self {
        Throttle { interval, last: None }
    }

    /// Whether an update may go out now; if so, it counts as sent.
    pub fn ready(&mut self) -> bool {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_first_update_goes_out_at_once_and_the_next_after_the_interval() {
        let mut t = Throttle::new(PROGRESS_INTERVAL);
        assert!(t.ready());
        assert!(!t.ready());
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(!t.ready());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(t.ready());
        assert!(!t.ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_updates_over_one_second_lets_at_most_eleven_through() {
        let mut t = Throttle::new(PROGRESS_INTERVAL);
        let mut sent = 0;
        // one update per millisecond, as fast chunks would ask
        for _ in 0..1000 {
            if t.ready() {
                sent += 1;
            }
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!((10..=11).contains(&sent), "{sent}");
    }
}
