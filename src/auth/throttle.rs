//! Slowing down password guessing without locking anyone out.
//!
//! Failed logins are counted per client address, per account name, and
//! per name and address together. Past `max_failures` failures, the next
//! attempt must wait 1 s after the last failure, then 2 s, 4 s, ... never
//! more than `max_delay`; failures older than `window` are forgotten. A
//! waiting attempt is answered at once (429 with `Retry-After`) without
//! its password being checked, and changes no count: only a checked
//! failure makes the next wait longer, so nobody can lengthen a wait by
//! asking more often.
//!
//! Which counts slow whom:
//! - an **address**'s failures slow every attempt from it, whatever the
//!   name (one address guessing many names);
//! - a **name**'s failures slow the addresses that failed on it: an
//!   address that has failed on a name waits as if it had made all of the
//!   name's failures (so many addresses guessing one name each get one
//!   guess per `max_delay` once the name is past the limit), counted from
//!   its own last failure. An address that has not failed on the name is
//!   not held back by the name: a burst against an admin's name slows the
//!   guessers, never the admin signing in from elsewhere, and an admin who
//!   mistyped waits at most `max_delay` after the mistake, however often
//!   others guess.
//!
//! A good login clears the name's count and its address's failures on the
//! name, not the address's own count: one address guessing many names stays
//! slowed. The clock is passed in, so the rules are tested without waiting.
//!
//! Attempts in flight count too: [`LoginThrottle::begin`] reserves one
//! before the password is checked and [`LoginThrottle::finish`] settles
//! it, so a hundred parallel guesses get no more tries than a hundred
//! sequential ones (the rest are told to come back in a second, when those
//! in flight have settled).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most keys remembered; beyond it the oldest are forgotten first, so a
/// flood of made-up names cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

/// What an attempt in flight is told: they settle within a password check.
const SETTLING: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Name(String),
    Addr(IpAddr),
    /// A name and an address that failed on it.
    Pair(String, IpAddr),
}

#[derive(Debug, Clone, Copy, Default)]
struct Record {
    failures: u32,
    /// Attempts begun and not yet finished.
    pending: u32,
    /// The last checked failure; `None` while only attempts in flight.
    last_failure: Option<Instant>,
}

/// The failure counters. Owned by [`super::Identity`] behind a mutex,
/// taken for a map update only.
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    max_delay: Duration,
    records: HashMap<Key, Record>,
}

impl LoginThrottle {
    /// Counters allowing `max_failures` failures before attempts wait,
    /// remembering failures for `window`, and never making anyone wait
    /// longer than `max_delay`.
    pub fn new(max_failures: u32, window: Duration, max_delay: Duration) -> LoginThrottle {
        LoginThrottle {
            max_failures,
            window,
            max_delay,
            records: HashMap::new(),
        }
    }

    /// The wait after `failures` failures: nothing below the limit, then
    /// 1 s doubling, at most `max_delay`.
    fn delay(&self, failures: u32) -> Duration {
        if failures < self.max_failures {
            return Duration::ZERO;
        }
        let doublings = (failures - self.max_failures).min(30);
        Duration::from_secs(1u64 << doublings).min(self.max_delay)
    }

    /// `r`'s failures still remembered at `now`.
    fn failures(&self, r: &Record, now: Instant) -> u32 {
        match r.last_failure {
            Some(t) if now.saturating_duration_since(t) <= self.window => r.failures,
            _ => 0,
        }
    }

    fn name_key(name: &str) -> Key {
        Key::Name(name.to_ascii_lowercase())
    }

    /// What an attempt is judged on: (counted failures, attempts in
    /// flight, last failure) for its address and for its name as it
    /// concerns this address (without an address: the name alone).
    fn judged(&self, name: &str, addr: Option<IpAddr>, now: Instant) -> Vec<(u32, u32, Option<Instant>)> {
        let get = |k: &Key| self.records.get(k).copied().unwrap_or_default();
        let name_rec = get(&Self::name_key(name));
        let name_failures = self.failures(&name_rec, now);
        match addr {
            None => vec![(name_failures, name_rec.pending, name_rec.last_failure)],
            Some(a) => {
                let addr_rec = get(&Key::Addr(a));
                let pair = get(&Key::Pair(name.to_ascii_lowercase(), a));
                let pair_failures = self.failures(&pair, now);
                // an address that failed on the name (or is trying it
                // right now) bears the name's count; one that did not, does not
                let pair_count = if pair_failures + pair.pending > 0 {
                    pair_failures.max(name_failures)
                } else {
                    0
                };
                vec![
                    (
                        self.failures(&addr_rec, now),
                        addr_rec.pending,
                        addr_rec.last_failure,
                    ),
                    (pair_count, pair.pending, pair.last_failure),
                ]
            }
        }
    }

    /// How long an attempt for `name` from `addr` must still wait at `now`
    /// because of checked failures; `None` lets it through.
    pub fn wait(&self, name: &str, addr: Option<IpAddr>, now: Instant) -> Option<Duration> {
        self.judged(name, addr, now)
            .into_iter()
            .filter_map(|(failures, _, last)| Some(last? + self.delay(failures)))
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// The keys an attempt counts on.
    fn keys(name: &str, addr: Option<IpAddr>) -> Vec<Key> {
        let mut keys = vec![Self::name_key(name)];
        if let Some(a) = addr {
            keys.push(Key::Addr(a));
            keys.push(Key::Pair(name.to_ascii_lowercase(), a));
        }
        keys
    }

    /// Reserves an attempt for `name` from `addr`, or says how long to
    /// wait: while a checked failure's delay runs, or while attempts in
    /// flight could bring a delay when they fail (then a second: they are
    /// about to settle).
    pub fn begin(&mut self, name: &str, addr: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        if let Some(wait) = self.wait(name, addr, now) {
            return Err(wait);
        }
        let busy = self
            .judged(name, addr, now)
            .into_iter()
            .any(|(failures, pending, _)| pending > 0 && !self.delay(failures + pending).is_zero());
        if busy {
            return Err(SETTLING);
        }
        self.forget_old(now);
        for key in Self::keys(name, addr) {
            self.records.entry(key).or_default().pending += 1;
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
                if r.pending == 0 && r.last_failure.is_none() {
                    self.records.remove(&key);
                }
            }
        }
        match outcome {
            Some(true) => self.succeeded(name, addr),
            Some(false) => self.failed(name, addr, now),
            None => {}
        }
    }

    /// Counts a checked failure.
    pub fn failed(&mut self, name: &str, addr: Option<IpAddr>, now: Instant) {
        self.forget_old(now);
        for key in Self::keys(name, addr) {
            let window = self.window;
            let r = self.records.entry(key).or_default();
            if r.last_failure
                .is_none_or(|t| now.saturating_duration_since(t) > window)
            {
                r.failures = 0;
            }
            r.failures = r.failures.saturating_add(1);
            r.last_failure = Some(now);
        }
    }

    /// Clears the name's count and this address's failures on it after a
    /// good login (attempts still in flight stay counted).
    pub fn succeeded(&mut self, name: &str, addr: Option<IpAddr>) {
        let mut keys = vec![Self::name_key(name)];
        if let Some(a) = addr {
            keys.push(Key::Pair(name.to_ascii_lowercase(), a));
        }
        for key in keys {
            if let Some(r) = self.records.get_mut(&key) {
                if r.pending == 0 {
                    self.records.remove(&key);
                } else {
                    r.failures = 0;
                    r.last_failure = None;
                }
            }
        }
    }

    fn forget_old(&mut self, now: Instant) {
        let window = self.window;
        let stale = |r: &Record| {
            r.pending == 0
                && r.last_failure
                    .is_none_or(|t| now.saturating_duration_since(t) > window)
        };
        if self.records.len() >= MAX_KEYS {
            self.records.retain(|_, r| !stale(r));
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

    const S: Duration = Duration::from_secs(1);

    fn addr(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    /// The defaults: five free failures, remembered 900 s, waits of at
    /// most 30 s.
    fn defaults() -> LoginThrottle {
        LoginThrottle::new(5, 900 * S, 30 * S)
    }

    /// One checked attempt that fails, or the wait it was told.
    fn guess(t: &mut LoginThrottle, name: &str, from: Option<IpAddr>, at: Instant) -> Result<(), Duration> {
        t.begin(name, from, at)?;
        t.finish(name, from, at, Some(false));
        Ok(())
    }

    #[test]
    fn one_wrong_guess_every_30_s_for_ten_minutes_does_not_lock_the_admin_out() {
        let mut guessed = defaults();
        let t0 = Instant::now();
        let attacker = addr(66);
        // 21 guesses at the admin's name, one every 30 s: each is checked
        // (30 s is the longest wait), so the name's count keeps growing
        for i in 0..=20 {
            assert_eq!(
                guess(&mut guessed, "root-admin", attacker, t0 + 30 * S * i),
                Ok(()),
                "guess {i}"
            );
        }
        let ten_minutes = t0 + 600 * S;
        assert_eq!(
            guessed.wait("root-admin", attacker, ten_minutes),
            Some(30 * S),
            "the guesser itself is slowed to the longest wait"
        );
        let admin = addr(1);

        // the admin, from its own address, is let in at once
        let mut t = guessed.clone();
        assert_eq!(t.begin("root-admin", admin, ten_minutes + S), Ok(()));
        t.finish("root-admin", admin, ten_minutes + S, Some(true));

        // an admin who mistypes while the guessing goes on waits at most
        // 30 s after the mistake, whatever the guesser does meanwhile
        let mut t = guessed;
        let mistake = ten_minutes + S;
        assert_eq!(guess(&mut t, "root-admin", admin, mistake), Ok(()));
        let wait = t
            .wait("root-admin", admin, mistake)
            .expect("a mistake on a name under attack waits");
        assert!(wait <= 30 * S, "{wait:?}");
        assert_eq!(
            guess(&mut t, "root-admin", attacker, ten_minutes + 30 * S),
            Ok(())
        );
        assert_eq!(guess(&mut t, "root-admin", attacker, mistake + wait), Err(29 * S));
        assert_eq!(t.begin("root-admin", admin, mistake + wait), Ok(()));
        t.finish("root-admin", admin, mistake + wait, Some(true));
    }

    #[test]
    fn a_burst_from_one_address_waits_longer_each_time_and_slows_no_other_address() {
        let mut t = defaults();
        let t0 = Instant::now();
        let burst = addr(9);
        for i in 0..5 {
            assert_eq!(guess(&mut t, "ana", burst, t0 + Duration::from_millis(i)), Ok(()));
        }
        let mut now = t0 + Duration::from_millis(4);
        let mut waits = Vec::new();
        for _ in 0..8 {
            // asking again while waiting changes nothing
            let wait = guess(&mut t, "ana", burst, now).unwrap_err();
            assert_eq!(guess(&mut t, "ana", burst, now + wait / 2), Err(wait - wait / 2));
            waits.push(wait.as_secs());
            now += wait;
            assert_eq!(guess(&mut t, "ana", burst, now), Ok(()));
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        // meanwhile other addresses sign in at once, as ana or anyone
        assert_eq!(t.wait("ana", addr(10), now), None);
        assert_eq!(t.begin("ana", addr(10), now), Ok(()));
        assert_eq!(t.begin("bo", addr(11), now), Ok(()));
        // the burst's address is slowed for every name
        assert!(t.wait("bo", burst, now).is_some());
    }

    #[test]
    fn after_the_limit_the_right_password_is_let_in_once_the_delay_ran() {
        let mut t = defaults();
        let t0 = Instant::now();
        for _ in 0..5 {
            guess(&mut t, "ana", addr(1), t0).unwrap();
        }
        assert_eq!(t.begin("ana", addr(1), t0), Err(S));
        assert_eq!(t.begin("ana", addr(1), t0 + S), Ok(()));
        t.finish("ana", addr(1), t0 + S, Some(true));
        // the name and the pair are cleared; the address keeps its count
        assert_eq!(t.wait("ana", addr(2), t0 + S), None);
        guess(&mut t, "ana", addr(1), t0 + S).unwrap();
        assert_eq!(t.wait("ana", addr(1), t0 + S), Some(2 * S));
    }

    #[test]
    fn many_addresses_guessing_one_name_each_get_one_guess_per_longest_wait() {
        let mut t = defaults();
        let t0 = Instant::now();
        for i in 0..40 {
            assert_eq!(
                guess(&mut t, "ana", addr(i), t0),
                Ok(()),
                "address {i}'s first guess"
            );
        }
        // every guesser now bears the name's 40 failures
        for i in 0..40 {
            assert_eq!(t.wait("ana", addr(i), t0), Some(30 * S));
        }
        // parallel guesses from a fresh address: one is checked
        assert_eq!(t.begin("ana", addr(200), t0), Ok(()));
        assert_eq!(t.begin("ana", addr(200), t0), Err(SETTLING));
    }

    #[test]
    fn attempts_in_flight_count_against_the_limit() {
        let mut t = LoginThrottle::new(2, 900 * S, 30 * S);
        let now = Instant::now();
        assert!(t.begin("ana", addr(1), now).is_ok());
        assert!(t.begin("bo", addr(1), now).is_ok());
        // two in flight from the address: a third waits for them
        assert_eq!(t.begin("cy", addr(1), now), Err(SETTLING));
        t.finish("ana", addr(1), now, Some(false));
        t.finish("bo", addr(1), now, Some(false));
        // two failures: a second's wait
        assert_eq!(t.begin("cy", addr(1), now), Err(S));
        // a finish without a verdict frees its place and counts nothing
        let mut t = LoginThrottle::new(1, 900 * S, 30 * S);
        assert!(t.begin("bo", None, now).is_ok());
        t.finish("bo", None, now, None);
        assert!(t.begin("bo", None, now).is_ok());
    }

    #[test]
    fn without_an_address_the_name_alone_is_counted() {
        let mut t = LoginThrottle::new(2, 900 * S, 30 * S);
        let now = Instant::now();
        guess(&mut t, "ana", None, now).unwrap();
        guess(&mut t, "ANA", None, now).unwrap();
        assert_eq!(t.wait("ana", None, now), Some(S));
        assert_eq!(t.wait("bo", None, now), None);
    }

    #[test]
    fn old_failures_are_forgotten() {
        let mut t = LoginThrottle::new(2, 60 * S, 30 * S);
        let now = Instant::now();
        guess(&mut t, "bo", addr(1), now).unwrap();
        guess(&mut t, "bo", addr(1), now + 61 * S).unwrap();
        assert_eq!(t.wait("bo", addr(1), now + 61 * S), None);
    }

    #[test]
    fn the_wait_never_exceeds_the_longest_delay() {
        let mut t = LoginThrottle::new(1, 900 * S, 30 * S);
        let now = Instant::now();
        for _ in 0..40 {
            t.failed("ana", addr(1), now);
        }
        assert_eq!(t.wait("ana", addr(1), now), Some(30 * S));
        let mut t = LoginThrottle::new(1, 900 * S, Duration::from_millis(1500));
        for _ in 0..3 {
            t.failed("ana", addr(1), now);
        }
        assert_eq!(t.wait("ana", addr(1), now), Some(Duration::from_millis(1500)));
    }
}
