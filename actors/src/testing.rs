//! Test helpers shared by every test of the workspace: the engine's unit
//! tests (`cfg(test)`), and the daemon's unit and integration tests, whose
//! dev-dependency on this crate turns on the `testing` feature. A release
//! build has none of it.
//!
//! It lives here, in the engine, because the engine is the one crate both
//! others see: a helper under the daemon's `cfg(test)` would be invisible
//! to the engine, and one under the engine's `cfg(test)` invisible to the
//! daemon.
//!
//! [`eventually`] is the one way a test waits for what has no event to
//! await: an actor's mailbox closing, a process appearing or ending, a row
//! being written. It polls a probe, bounded, and fails the test with a
//! message naming what never happened. Where an event exists (a message,
//! a channel, a `done()` signal) tests await it instead.
//!
//! Under paused time (`tokio::time::pause()`) each look lets virtual time
//! run on by [`POLL`] and the bound is virtual too: fine for state made
//! inside the runtime (actors, tasks), wrong for state made outside it (a
//! process), which needs real time.

use std::time::Duration;

use tokio::time::Instant;

/// How long [`eventually`] waits before it gives up: long enough for a
/// loaded 2-core machine, short enough that a broken test fails in one
/// sitting.
pub const WAIT: Duration = Duration::from_secs(10);

/// Time between two looks.
pub const POLL: Duration = Duration::from_millis(25);

/// What a probe may answer: `bool` (done or not), `Option<T>` (the value
/// once there) or `Result<T, E>` (the value, or what was seen instead,
/// which the failure message shows).
pub trait Settled {
    /// What [`eventually`] returns once settled.
    type Value;
    /// `Ok` once the awaited state is there; otherwise what was seen, if
    /// the probe says.
    fn settled(self) -> Result<Self::Value, Option<String>>;
}

impl Settled for bool {
    type Value = ();
    fn settled(self) -> Result<(), Option<String>> {
        self.then_some(()).ok_or(None)
    }
}

impl<T> Settled for Option<T> {
    type Value = T;
    fn settled(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: std::fmt::Display> Settled for Result<T, E> {
    type Value = T;
    fn settled(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// Polls `probe` until it settles and returns its value; fails the test
/// after [`WAIT`] with "`what` never happened" and the last thing seen.
pub async fn eventually<S: Settled>(what: &str, probe: impl AsyncFnMut() -> S) -> S::Value {
    eventually_within(WAIT, what, probe).await
}

/// [`eventually`] with its own bound, for waits that are known to be long
/// (health sweeps, many servers) or must be short.
pub async fn eventually_within<S: Settled>(
    within: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> S,
) -> S::Value {
    let deadline = Instant::now() + within;
    loop {
        let seen = match probe().await.settled() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            match seen {
                Some(seen) => panic!("{what} never happened within {within:?}; last seen: {seen}"),
                None => panic!("{what} never happened within {within:?}"),
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[should_panic(expected = "the moon turns blue never happened within 100ms; last seen: grey")]
    async fn eventually_gives_up_naming_what_and_the_last_thing_seen() {
        eventually_within(Duration::from_millis(100), "the moon turns blue", async || {
            Err::<(), _>("grey")
        })
        .await;
    }

    #[tokio::test]
    async fn eventually_returns_the_value_once_settled() {
        let mut looks = 0;
        let value = eventually("the third look", async || {
            looks += 1;
            (looks == 3).then_some(looks)
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn under_paused_time_the_bound_is_virtual() {
        let started = Instant::now();
        let mut looks = 0;
        eventually("the fifth look", async || {
            looks += 1;
            looks == 5
        })
        .await;
        assert_eq!(started.elapsed(), POLL * 4);
    }
}
