//! Slowing down password guessing: failed logins are counted per account
//! name and per client address; past `max_failures` within the window,
//! every further attempt on that name or from that address waits, the wait
//! doubling with each failure (1 s, 2 s, 4 s, ... up to the window), and is
//! answered 429 with `Retry-After` without checking the password at all.
//!
//! A good login clears the name's count (not the address's: one address
//! guessing many names stays slowed). The clock is passed in, so the rules
//! are tested without waiting.
//!
//! Attempts in flight count too: [`LoginThrottle::begin`] reserves one
//! before the password is checked and [`LoginThrottle::finish`] settles
//! it, so a hundred parallel guesses get no more tries than a hundred
//! sequential ones (past the limit, the rest wait a second and retry).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most keys remembered; beyond it the oldest are forgotten first, so a
/// flood of made-up names cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Name(String),
    Addr(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    /// Attempts begun and not yet finished.
    pending: u32,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

/// The failure counters. Owned by [`super::Identity`] behind a mutex.
#[derive(Debug)]
pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    records: HashMap<Key, Record>,
}

impl LoginThrottle {
    /// Counters allowing `max_failures` within `window`.
    pub fn new(max_failures: u32, window: Duration) -> LoginThrottle {
        LoginThrottle {
            max_failures,
            window,
            records: HashMap::new(),
        }
    }

    fn keys(name: &str, addr: Option<IpAddr>) -> Vec<Key> {
        let mut keys = vec![Key::Name(name.to_ascii_lowercase())];
        if let Some(a) = addr {
            keys.push(Key::Addr(a));
        }
        keys
    }

    /// How long an attempt for `name` from `addr` must still wait at `now`;
    /// `None` lets it through.
    pub fn wait(&self, name: &str, addr: Option<IpAddr>, now: Instant) -> Option<Duration> {
        Self::keys(name, addr)
            .iter()
            .filter_map(|k| self.records.get(k))
            .filter_map(|r| r.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Reserves an attempt for `name` from `addr`, or says how long to
    /// wait: while blocked, or while failures plus attempts in flight
    /// already reach the limit (then one second: they are about to settle).
    pub fn begin(&mut self, name: &str, addr: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        if let Some(wait) = self.wait(name, addr, now) {
            return Err(wait);
        }
        let keys = Self::keys(name, addr);
        let window = self.window;
        let busy = keys.iter().filter_map(|k| self.records.get(k)).any(|r| {
            let failures = if now.duration_since(r.last_failure) > window {
                0
            } else {
                r.failures
            };
            failures + r.pending >= self.max_failures
        });
        if busy {
            return Err(Duration::from_secs(1));
        }
        self.forget_old(now);
        for key in keys {
            self.records
                .entry(key)
                .or_insert(Record {
                    failures: 0,
                    pending: 0,
                    last_failure: now,
                    blocked_until: None,
                })
                .pending += 1;
        }
        Ok(())
    }

    /// Settles an attempt reserved by [`LoginThrottle::begin`]: `Some(true)`
    /// a good login, `Some(false)` a failed one, `None` one that ended
    /// without a verdict (the store failed).
    pub fn finish(&mut self, name: &str, addr: Option<IpAddr>, now: Instant, outcome: Option<bool>) {
        for key in Self::keys(name, addr) {
            if let Some(r) = self.records.get_mut(&key) {
                r.pending = r.pending.saturating_sub(1);
            }
        }
        match outcome {
            Some(true) => self.succeeded(name),
            Some(false) => self.failed(name, addr, now),
            None => {}
        }
    }

    /// Counts a failed attempt.
    pub fn failed(&mut self, name: &str, addr: Option<IpAddr>, now: Instant) {
        self.forget_old(now);
        for key in Self::keys(name, addr) {
            let r = self.records.entry(key).or_insert(Record {
                failures: 0,
                pending: 0,
                last_failure: now,
                blocked_until: None,
            });
            if now.duration_since(r.last_failure) > self.window {
                r.failures = 0;
            }
            r.failures += 1;
            r.last_failure = now;
            if r.failures >= self.max_failures {
                let doublings = (r.failures - self.max_failures).min(20);
                let wait = Duration::from_secs(1 << doublings).min(self.window);
                r.blocked_until = Some(now + wait);
            }
        }
    }

    /// Clears the name's count after a good login (attempts still in
    /// flight for it stay counted).
    pub fn succeeded(&mut self, name: &str) {
        let key = Key::Name(name.to_ascii_lowercase());
        if let Some(r) = self.records.get_mut(&key) {
            if r.pending == 0 {
                self.records.remove(&key);
            } else {
                r.failures = 0;
                r.blocked_until = None;
            }
        }
    }

    fn forget_old(&mut self, now: Instant) {
        let window = self.window;
        if self.records.len() >= MAX_KEYS {
            self.records
                .retain(|_, r| r.pending > 0 || now.duration_since(r.last_failure) <= window);
        }
        while self.records.len() >= MAX_KEYS {
            let Some(oldest) = self
                .records
                .iter()
                .min_by_key(|(_, r)| r.last_failure)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.records.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn failures_past_the_limit_wait_longer_each_time() {
        let mut t = LoginThrottle::new(3, Duration::from_secs(900));
        let t0 = Instant::now();
        for i in 0..2 {
            t.failed("ana", addr(1), t0 + Duration::from_millis(i));
            assert_eq!(t.wait("ana", addr(1), t0 + Duration::from_millis(i)), None);
        }
        t.failed("ana", addr(1), t0);
        assert_eq!(t.wait("ana", addr(1), t0), Some(Duration::from_secs(1)));
        assert_eq!(t.wait("ana", addr(1), t0 + Duration::from_secs(1)), None);
        t.failed("ana", addr(1), t0 + Duration::from_secs(1));
        assert_eq!(
            t.wait("ana", addr(1), t0 + Duration::from_secs(1)),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn a_name_is_slowed_from_every_address_and_an_address_for_every_name() {
        let mut t = LoginThrottle::new(2, Duration::from_secs(900));
        let now = Instant::now();
        t.failed("ana", addr(1), now);
        t.failed("ANA", addr(2), now);
        assert!(
            t.wait("ana", addr(3), now).is_some(),
            "the name is slowed everywhere"
        );
        let mut t = LoginThrottle::new(2, Duration::from_secs(900));
        t.failed("a", addr(9), now);
        t.failed("b", addr(9), now);
        assert!(
            t.wait("c", addr(9), now).is_some(),
            "the address is slowed for every name"
        );
        assert!(t.wait("c", addr(8), now).is_none());
    }

    #[test]
    fn a_good_login_clears_the_name_and_old_failures_are_forgotten() {
        let mut t = LoginThrottle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        t.failed("ana", None, now);
        t.succeeded("ana");
        t.failed("ana", None, now);
        assert!(t.wait("ana", None, now).is_none());
        t.failed("bo", None, now);
        t.failed("bo", None, now + Duration::from_secs(61));
        assert!(t.wait("bo", None, now + Duration::from_secs(61)).is_none());
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let mut t = LoginThrottle::new(2, Duration::from_secs(900));
        let now = Instant::now();
        assert!(t.begin("ana", addr(1), now).is_ok());
        assert!(t.begin("ana", addr(2), now).is_ok());
        // two in flight for the name: a third waits, from any address
        assert_eq!(t.begin("ana", addr(3), now), Err(Duration::from_secs(1)));
        t.finish("ana", addr(1), now, Some(false));
        t.finish("ana", addr(2), now, Some(false));
        // two failures: blocked for a second
        assert_eq!(t.begin("ana", addr(3), now), Err(Duration::from_secs(1)));
        // a finish without a verdict frees its place and counts nothing
        let mut t = LoginThrottle::new(1, Duration::from_secs(900));
        assert!(t.begin("bo", None, now).is_ok());
        t.finish("bo", None, now, None);
        assert!(t.begin("bo", None, now).is_ok());
    }

    #[test]
    fn the_wait_never_exceeds_the_window() {
        let mut t = LoginThrottle::new(1, Duration::from_secs(30));
        let now = Instant::now();
        for _ in 0..40 {
            t.failed("ana", None, now);
        }
        assert_eq!(t.wait("ana", None, now), Some(Duration::from_secs(30)));
    }
}
