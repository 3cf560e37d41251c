//! The audit rows of failed and throttled logins, bounded: anyone can
//! cause them without signing in, so they must not flood the trail.
//!
//! Time is cut into intervals (`PINKPAGE_LOGIN_AUDIT_INTERVAL_S`). Within
//! one:
//! - the first `rows` failed logins (`PINKPAGE_LOGIN_AUDIT_ROWS`) are
//!   written one by one, each with its reason and `count: 1`;
//! - failed logins past them, and every throttled attempt, are counted per
//!   action, name, address and reason, and written when the interval ends
//!   as one row each, with the `count`, the `first` and `last` attempt and
//!   the `interval_s`;
//! - at most `rows` such summary rows; attempts past them are counted in
//!   one row per action without a name or address (`others: true`).
//!
//! So an interval writes at most `2 × rows + 2` of these rows, however many
//! attempts it saw. The counts are exact: the `count`s of an interval's
//! rows add up to the attempts it saw.
//!
//! Owned by [`super::Identity`] behind a mutex taken for a map update; the
//! rows it gives back are written by the caller (the API, which owns the
//! journal). The clock is passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use pinkpage_actors::ErrorCode;

use crate::records::{timestamp, NewAuditEvent, Outcome};

/// A failed login (its password was checked, or the name is unknown).
pub const FAILED: &str = "auth.login.failed";
/// An attempt answered "wait" (429) without its password being checked.
pub const THROTTLED: &str = "auth.login.throttled";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    action: &'static str,
    /// The name as the trail shows it (an unknown name is a fingerprint).
    name: String,
    addr: Option<IpAddr>,
    reason: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    count: u64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

impl Tally {
    fn new(at: DateTime<Utc>) -> Tally {
        Tally {
            count: 0,
            first: at,
            last: at,
        }
    }

    fn add(&mut self, at: DateTime<Utc>) {
        self.count += 1;
        self.first = self.first.min(at);
        self.last = self.last.max(at);
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct LoginAudit {
    interval: Duration,
    rows: usize,
    /// When the current interval began; `None` until the first attempt.
    started: Option<DateTime<Utc>>,
    /// Failed logins written one by one in this interval.
    written: usize,
    tallies: HashMap<Key, Tally>,
    /// Per action: attempts past the summary rows' bound.
    others: HashMap<&'static str, Tally>,
    /// Summary rows of intervals that ended, not yet taken by [`Self::due`].
    done: Vec<NewAuditEvent>,
}

impl LoginAudit {
    /// Intervals of `interval`; `rows` (at least 1) one-by-one rows and
    /// summary rows in each.
    pub fn new(interval: Duration, rows: usize) -> LoginAudit {
        LoginAudit {
            interval,
            rows: rows.max(1),
            started: None,
            written: 0,
            tallies: HashMap::new(),
            others: HashMap::new(),
            done: Vec::new(),
        }
    }

    /// Closes the current interval if it ended by `now` (or with `all`):
    /// its summary rows wait in `done`.
    fn roll(&mut self, now: DateTime<Utc>, all: bool) {
        let Some(started) = self.started else {
            return;
        };
        let ended = chrono::Duration::from_std(self.interval)
            .ok()
            .and_then(|i| started.checked_add_signed(i))
            .is_some_and(|end| end <= now);
        if ended || all {
            let rows = self.summaries();
            self.done.extend(rows);
            self.started = None;
            self.written = 0;
        }
    }

    fn interval_at(&mut self, now: DateTime<Utc>) {
        self.roll(now, false);
        self.started.get_or_insert(now);
    }

    /// A failed login of `name` (as the trail shows it) from `addr`, for
    /// `reason`, at `now`: `true` when it is to be written now, one by one
    /// (the caller writes it with `count: 1`); `false` when it was counted
    /// for the interval's summary.
    pub fn failed(
        &mut self,
        name: &str,
        addr: Option<IpAddr>,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> bool {
        self.interval_at(now);
        if self.written < self.rows {
            self.written += 1;
            return true;
        }
        self.count(FAILED, name, addr, Some(reason), now);
        false
    }

    /// A throttled attempt, counted for the interval's summary.
    pub fn throttled(&mut self, name: &str, addr: Option<IpAddr>, now: DateTime<Utc>) {
        self.interval_at(now);
        self.count(THROTTLED, name, addr, None, now);
    }

    fn count(
        &mut self,
        action: &'static str,
        name: &str,
        addr: Option<IpAddr>,
        reason: Option<&'static str>,
        now: DateTime<Utc>,
    ) {
        let key = Key {
            action,
            name: name.to_owned(),
            addr,
            reason,
        };
        if let Some(t) = self.tallies.get_mut(&key) {
            t.add(now);
        } else if self.tallies.len() < self.rows {
            self.tallies
                .entry(key)
                .or_insert_with(|| Tally::new(now))
                .add(now);
        } else {
            self.others
                .entry(action)
                .or_insert_with(|| Tally::new(now))
                .add(now);
        }
    }

    /// The summary rows of the intervals that ended by `now` (with `all`,
    /// at shutdown, the current one's too); a new interval begins with the
    /// next attempt.
    pub fn due(&mut self, now: DateTime<Utc>, all: bool) -> Vec<NewAuditEvent> {
        self.roll(now, all);
        std::mem::take(&mut self.done)
    }

    /// The current interval's summary rows, oldest first; empties it.
    fn summaries(&mut self) -> Vec<NewAuditEvent> {
        let interval_s = self.interval.as_secs_f64();
        let mut rows: Vec<NewAuditEvent> = self
            .tallies
            .drain()
            .map(|(key, t)| {
                let mut detail = json!({
                    "name": key.name,
                    "count": t.count,
                    "first": timestamp(t.first),
                    "last": timestamp(t.last),
                    "interval_s": interval_s,
                });
                if let Some(reason) = key.reason {
                    detail["reason"] = json!(reason);
                }
                let mut event = NewAuditEvent::new(key.name.clone(), key.action)
                    .on(key.name.clone())
                    .by(Some(&key.name), key.addr.map(|a| a.to_string()));
                event.ended(Outcome::Refused, Some(refusal(key.action)));
                event.at = t.first;
                event.detail = Some(detail);
                event
            })
            .collect();
        rows.extend(self.others.drain().map(|(action, t)| {
            let mut event = NewAuditEvent::new("anonymous", action);
            event.ended(Outcome::Refused, Some(refusal(action)));
            event.at = t.first;
            event.detail = Some(json!({
                "others": true,
                "count": t.count,
                "first": timestamp(t.first),
                "last": timestamp(t.last),
                "interval_s": interval_s,
            }));
            event
        }));
        rows.sort_by_key(|e| e.at);
        rows
    }
}

/// The code a refused login was answered with: 10007 when it was told to
/// wait, 10002 when its name or password was wrong.
fn refusal(action: &str) -> u32 {
    if action == THROTTLED {
        ErrorCode::LoginThrottled.code()
    } else {
        ErrorCode::Unauthenticated.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    fn count(rows: &[NewAuditEvent], action: &str) -> u64 {
        rows.iter()
            .filter(|r| r.action == action)
            .map(|r| r.detail.as_ref().unwrap()["count"].as_u64().unwrap())
            .sum()
    }

    #[test]
    fn throttled_attempts_are_one_row_per_name_and_address_and_interval() {
        let mut a = LoginAudit::new(Duration::from_secs(60), 100);
        let t0 = Utc::now();
        let ms = chrono::Duration::milliseconds;
        for i in 0..3000 {
            a.throttled("ana", addr(1), t0 + ms(i));
        }
        for i in 0..5 {
            a.throttled("ana", addr(2), t0 + ms(i));
        }
        assert!(a.due(t0 + ms(59_999), false).is_empty(), "the interval runs");
        let rows = a.due(t0 + ms(60_000), false);
        assert_eq!(rows.len(), 2, "{rows:?}");
        let first = &rows
            .iter()
            .find(|r| r.remote_addr.as_deref() == Some("10.0.0.1"))
            .unwrap();
        assert_eq!(first.action, THROTTLED);
        assert_eq!(first.user.as_deref(), Some("ana"));
        assert_eq!(first.at, t0);
        let d = first.detail.as_ref().unwrap();
        assert_eq!(d["count"], 3000);
        assert_eq!(d["interval_s"], 60.0);
        assert_eq!(d["last"], timestamp(t0 + ms(2999)));
        // a new interval starts empty
        assert!(a.due(t0 + ms(200_000), true).is_empty());
    }

    #[test]
    fn failed_logins_are_written_one_by_one_up_to_the_bound_then_counted() {
        let mut a = LoginAudit::new(Duration::from_secs(60), 3);
        let t0 = Utc::now();
        let written: Vec<bool> = (0..10u8)
            .map(|i| {
                a.failed(
                    &format!("unknown:{i}"),
                    addr(i),
                    "unknown name or no password",
                    t0,
                )
            })
            .collect();
        assert_eq!(
            written,
            [true, true, true, false, false, false, false, false, false, false]
        );
        let rows = a.due(t0 + chrono::Duration::minutes(1), false);
        // three summary rows, the other four in one row
        assert_eq!(rows.len(), 4, "{rows:?}");
        assert_eq!(
            count(&rows, FAILED),
            7,
            "the counts add up to the attempts not written"
        );
        let others = rows
            .iter()
            .find(|r| r.detail.as_ref().unwrap()["others"] == true)
            .unwrap();
        assert_eq!(others.detail.as_ref().unwrap()["count"], 4);
        assert_eq!(others.remote_addr, None);
        assert!(rows
            .iter()
            .filter(|r| r.user.is_some())
            .all(|r| r.detail.as_ref().unwrap()["reason"] == "unknown name or no password"));
        // the next interval writes one by one again
        assert!(a.failed(
            "ana",
            addr(1),
            "wrong password",
            t0 + chrono::Duration::minutes(2)
        ));
    }

    #[test]
    fn an_interval_writes_a_bounded_number_of_rows_however_many_attempts() {
        let rows_bound = 10;
        let mut a = LoginAudit::new(Duration::from_secs(60), rows_bound);
        let t0 = Utc::now();
        let mut one_by_one = 0;
        for i in 0..50_000u32 {
            let from = Some(IpAddr::from(i.to_be_bytes()));
            if a.failed(&format!("n{i}"), from, "wrong password", t0) {
                one_by_one += 1;
            }
            a.throttled(&format!("n{i}"), from, t0);
        }
        let rows = a.due(t0 + chrono::Duration::minutes(1), false);
        assert!(one_by_one + rows.len() <= 2 * rows_bound + 2, "{}", rows.len());
        assert_eq!(count(&rows, THROTTLED), 50_000);
        assert_eq!(count(&rows, FAILED) + one_by_one as u64, 50_000);
    }

    #[test]
    fn an_attempt_after_the_interval_ended_starts_the_next_one() {
        let mut a = LoginAudit::new(Duration::from_secs(60), 10);
        let t0 = Utc::now();
        a.throttled("ana", addr(1), t0);
        // the task that writes summaries has not looked yet
        a.throttled("ana", addr(1), t0 + chrono::Duration::seconds(61));
        let rows = a.due(t0 + chrono::Duration::seconds(62), false);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].detail.as_ref().unwrap()["count"], 1);
        let rows = a.due(t0 + chrono::Duration::seconds(121), false);
        assert_eq!(rows.len(), 1, "the second attempt is the next interval's");
    }

    #[test]
    fn at_shutdown_the_interval_so_far_is_written() {
        let mut a = LoginAudit::new(Duration::from_secs(60), 10);
        let t0 = Utc::now();
        a.throttled("ana", addr(1), t0);
        assert_eq!(a.due(t0, true).len(), 1);
    }
}
