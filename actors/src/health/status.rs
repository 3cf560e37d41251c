//! Server health as clients see it (SPEC section 8), and the pure state
//! machine that turns check results into it ([`HealthTracker`]). The
//! `HealthMonitorActor` produces it; the broadcast registry keeps the latest
//! map for welcome messages.

use serde::Serialize;

/// The health of one server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerHealthStatus {
    /// Configured server name.
    pub server_name: String,
    /// Host checked.
    pub host: String,
    /// `true` healthy, `false` unhealthy, `null` unknown: not checked yet,
    /// or only failed fewer times in a row than the failure threshold since
    /// the daemon started (the counters show how far it is).
    pub is_healthy: Option<bool>,
    /// When the last check finished (ISO 8601, UTC), `null` before the first.
    pub last_checked: Option<String>,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
    /// Good checks in a row.
    pub consecutive_successes: u32,
    /// TCP connect + banner time of the last good check, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Why the last check failed, when it did.
    pub last_error: Option<String>,
}

impl ServerHealthStatus {
    /// The status of a server that has not been checked yet.
    pub fn unchecked(server_name: &str, host: &str) -> Self {
        ServerHealthStatus {
            server_name: server_name.to_owned(),
            host: host.to_owned(),
            is_healthy: None,
            last_checked: None,
            consecutive_failures: 0,
            consecutive_successes: 0,
            latency_ms: None,
            last_error: None,
        }
    }
}

/// How many results in a row it takes to change a server's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Failed checks in a row that make a healthy or unknown server
    /// unhealthy.
    pub failures: u32,
    /// Good checks in a row that make an unhealthy server healthy.
    pub successes: u32,
}

impl Default for Thresholds {
    /// The SPEC's 2 failures / 1 success.
    fn default() -> Self {
        Thresholds {
            failures: 2,
            successes: 1,
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckOutcome {
    /// The port answered with an SSH 2 banner.
    Up {
        /// TCP connect + banner time.
        latency: std::time::Duration,
    },
    /// It did not; `error` says why, for operators.
    Down {
        /// Why the check failed (never a secret: it is about a socket).
        error: String,
    },
}

/// Whether a recorded result changed the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `is_healthy` flipped (or was set for the first time).
    Flipped {
        /// The verdict before; `None` for a server's first verdict.
        previous: Option<bool>,
    },
    /// The verdict is still unknown and this failure counted towards it:
    /// clients are told, so they see the count, not only silence.
    Pending,
    /// Only counters, time, latency or error of a known verdict changed.
    Updated,
}

/// The verdict of one server over time: counters in, `is_healthy` out.
///
/// Pure (no I/O, no clock), so every transition is unit-tested.
///
/// As in the seed, failures need `thresholds.failures` in a row before a
/// server is called unhealthy, at start too: one lost connection is not an
/// outage, whether or not a verdict was known before it. Until then the
/// verdict stays unknown (`None`) and the counters say how far it is. A good
/// check is proof sshd answered, so the first one makes an unknown server
/// healthy at once; `thresholds.successes` only slows the way back from a
/// known failure, to stop a verdict flapping.
#[derive(Debug, Clone)]
pub struct HealthTracker {
    status: ServerHealthStatus,
    thresholds: Thresholds,
}

impl HealthTracker {
    /// A server not checked yet.
    pub fn new(server_name: &str, host: &str, thresholds: Thresholds) -> Self {
        HealthTracker {
            status: ServerHealthStatus::unchecked(server_name, host),
            thresholds,
        }
    }

    /// The status now.
    pub fn status(&self) -> &ServerHealthStatus {
        &self.status
    }

    /// Folds in one result that finished at `checked_at` (ISO 8601, UTC).
    pub fn record(&mut self, outcome: &CheckOutcome, checked_at: String) -> Change {
        let s = &mut self.status;
        let previous = s.is_healthy;
        s.last_checked = Some(checked_at);
        let up = match outcome {
            CheckOutcome::Up { latency } => {
                s.consecutive_successes = s.consecutive_successes.saturating_add(1);
                s.consecutive_failures = 0;
                s.latency_ms = Some(latency.as_secs_f64() * 1000.0);
                s.last_error = None;
                true
            }
            CheckOutcome::Down { error } => {
                s.consecutive_failures = s.consecutive_failures.saturating_add(1);
                s.consecutive_successes = 0;
                // latency_ms stays: it is the last *good* check's.
                s.last_error = Some(error.clone());
                false
            }
        };
        s.is_healthy = match previous {
            None if up => Some(true),
            None if s.consecutive_failures >= self.thresholds.failures => Some(false),
            None => None,
            Some(true) if s.consecutive_failures >= self.thresholds.failures => Some(false),
            Some(false) if s.consecutive_successes >= self.thresholds.successes => Some(true),
            unchanged => unchanged,
        };
        if s.is_healthy.is_none() {
            Change::Pending
        } else if s.is_healthy == previous {
            Change::Updated
        } else {
            Change::Flipped { previous }
        }
    }
}

/// What the `HealthMonitorActor` tells whoever shows health to clients
/// (the broadcast registry, which keeps the latest for welcome messages):
/// the engine's health domain defines the message, so it never depends on
/// who listens.
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "()")]
pub enum HealthNews {
    /// The latest status of a server, nothing to announce (counters moved).
    Updated(ServerHealthStatus),
    /// A status every client must be told (a flip, or a failure that
    /// leaves the verdict unknown).
    Changed(ServerHealthStatus),
    /// The server is no longer configured: forget its status.
    Removed(String),
}

/// A server's verdict flipped; sent by the `HealthMonitorActor` to whoever
/// keeps the history (the daemon's SQLite store). The engine only defines
/// the message, so it never learns where the history lives.
#[derive(Debug, Clone, actix::Message)]
#[rtype(result = "()")]
pub struct HealthTransition {
    /// The status just after the flip (`last_checked` is when it happened).
    pub status: ServerHealthStatus,
    /// The verdict before; `None` for the first verdict.
    pub previous: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn up() -> CheckOutcome {
        CheckOutcome::Up {
            latency: Duration::from_millis(3),
        }
    }

    fn down() -> CheckOutcome {
        CheckOutcome::Down {
            error: "connection refused".into(),
        }
    }

    fn tracker() -> HealthTracker {
        HealthTracker::new("web1", "10.0.0.5", Thresholds::default())
    }

    fn at(n: u32) -> String {
        format!("2025-01-01T12:00:{n:02}Z")
    }

    #[test]
    fn a_new_server_is_not_yet_checked() {
        let s = tracker().status().clone();
        assert_eq!(s.is_healthy, None);
        assert_eq!(s.last_checked, None);
    }

    #[test]
    fn the_first_good_check_makes_a_new_server_healthy() {
        let mut t = tracker();
        assert_eq!(t.record(&up(), at(0)), Change::Flipped { previous: None });
        assert_eq!(t.status().is_healthy, Some(true));
        assert_eq!(t.status().latency_ms, Some(3.0));
    }

    // Issue 16 item 8 changed this test: it was "the first result sets the
    // verdict either way"; a first failure now leaves it unknown, as the
    // seed does, and only the threshold makes a new server unhealthy.
    #[test]
    fn a_new_server_is_unhealthy_only_after_the_failure_threshold_with_counters_shown_meanwhile() {
        let mut t = tracker();
        assert_eq!(t.record(&down(), at(0)), Change::Pending);
        let s = t.status();
        assert_eq!(s.is_healthy, None);
        assert_eq!((s.consecutive_failures, s.consecutive_successes), (1, 0));
        assert_eq!(s.last_checked.as_deref(), Some(at(0).as_str()));
        assert_eq!(s.last_error.as_deref(), Some("connection refused"));

        assert_eq!(t.record(&down(), at(1)), Change::Flipped { previous: None });
        assert_eq!(t.status().is_healthy, Some(false));
        assert_eq!(t.status().consecutive_failures, 2);
    }

    #[test]
    fn a_good_check_while_unknown_makes_the_server_healthy_and_resets_the_count() {
        let mut t = tracker();
        t.record(&down(), at(0));
        assert_eq!(t.record(&up(), at(1)), Change::Flipped { previous: None });
        assert_eq!(t.status().is_healthy, Some(true));
        assert_eq!(t.status().consecutive_failures, 0);
        // a later failure starts the count again against a known verdict
        assert_eq!(t.record(&down(), at(2)), Change::Updated);
        assert_eq!(t.status().is_healthy, Some(true));
    }

    #[test]
    fn with_a_threshold_of_one_the_first_failure_decides() {
        let mut t = HealthTracker::new(
            "web1",
            "h",
            Thresholds {
                failures: 1,
                successes: 1,
            },
        );
        assert_eq!(t.record(&down(), at(0)), Change::Flipped { previous: None });
        assert_eq!(t.status().is_healthy, Some(false));
    }

    #[test]
    fn one_failure_does_not_make_a_healthy_server_unhealthy_two_do() {
        let mut t = tracker();
        t.record(&up(), at(0));
        assert_eq!(t.record(&down(), at(1)), Change::Updated);
        assert_eq!(t.status().is_healthy, Some(true));
        assert_eq!(t.status().consecutive_failures, 1);
        assert_eq!(t.record(&down(), at(2)), Change::Flipped { previous: Some(true) });
        assert_eq!(t.status().is_healthy, Some(false));
        assert_eq!(t.status().last_checked.as_deref(), Some(at(2).as_str()));
    }

    #[test]
    fn a_success_between_failures_resets_the_count() {
        let mut t = tracker();
        t.record(&up(), at(0));
        t.record(&down(), at(1));
        t.record(&up(), at(2));
        assert_eq!(t.record(&down(), at(3)), Change::Updated);
        assert_eq!(t.status().is_healthy, Some(true));
    }

    // Issue 16 item 8 changed this test: it started unhealthy after one
    // failure; reaching "unhealthy" now takes the two failures of the
    // threshold, so the second one is the flip and a third only updates.
    #[test]
    fn one_success_makes_an_unhealthy_server_healthy_again() {
        let mut t = tracker();
        t.record(&down(), at(0));
        assert_eq!(t.record(&down(), at(1)), Change::Flipped { previous: None });
        assert_eq!(t.record(&down(), at(2)), Change::Updated);
        assert_eq!(
            t.record(&up(), at(3)),
            Change::Flipped {
                previous: Some(false)
            }
        );
        let s = t.status();
        assert_eq!(
            (
                s.consecutive_successes,
                s.consecutive_failures,
                s.last_error.clone()
            ),
            (1, 0, None)
        );
    }

    #[test]
    fn custom_thresholds_are_honoured() {
        let mut t = HealthTracker::new(
            "web1",
            "h",
            Thresholds {
                failures: 3,
                successes: 2,
            },
        );
        t.record(&up(), at(0));
        t.record(&down(), at(1));
        t.record(&down(), at(2));
        assert_eq!(t.status().is_healthy, Some(true));
        assert!(matches!(t.record(&down(), at(3)), Change::Flipped { .. }));
        assert_eq!(t.record(&up(), at(4)), Change::Updated);
        assert!(matches!(t.record(&up(), at(5)), Change::Flipped { .. }));
        assert_eq!(t.status().is_healthy, Some(true));
    }

    #[test]
    fn a_failure_keeps_the_last_good_latency() {
        let mut t = tracker();
        t.record(&up(), at(0));
        t.record(&down(), at(1));
        assert_eq!(t.status().latency_ms, Some(3.0));
    }
}
