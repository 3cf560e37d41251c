//! Retention (issue 28): how long the records of finished work are kept
//! before the daemon deletes them (`crate::retention`), and how often it
//! looks. Listed with the rest in [`SETTINGS`](super::SETTINGS) as
//! [`DOCS`]; parsed into `Settings::retention`. A reload may change them
//! while the daemon runs: the sweep reads them afresh each time.
//!
//! The audit trail has a limit of its own because it is usually kept
//! longer than the records it describes (compliance asks for the trail,
//! nobody asks for a year of BMX4 output); by default it follows the
//! records' limit, so one variable is enough for the common case.
//! Recordings keep their own limits (`recordings.rs`).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::env::{Env, SettingDoc, SettingsError};

/// Default of `PINKPAGE_RETENTION_DAYS` (the issue's).
pub const DEFAULT_DAYS: u32 = 90;

/// The longest limit taken, in days: a century. Keeps the limit's date
/// inside what a timestamp can hold (a larger number is a typo, and `0`
/// already says "forever").
pub const MAX_DAYS: u32 = 36_500;

/// Default of `PINKPAGE_RETENTION_INTERVAL_S`: an hour, so a day's worth
/// of expired rows goes in 24 small sweeps rather than one large one.
pub const DEFAULT_INTERVAL_S: f64 = 3600.0;

/// The variables, for the one list in `mod.rs`.
pub const DOCS: [SettingDoc; 3] = [
    SettingDoc {
        name: "PINKPAGE_RETENTION_DAYS",
        default: "90",
        meaning: "RETENTION: finished BMX4 runs (with their results), finished workflow runs (with their steps) and health transitions older than this many days are deleted, in small batches; 0 keeps them forever",
    },
    SettingDoc {
        name: "PINKPAGE_AUDIT_RETENTION_DAYS",
        default: "unset",
        meaning: "audit rows older than this many days are cut, whole prefixes at a time, each cut recorded in the chain (`audit.cut`); this also ends the records of SSH sessions, commands and transfers, which live only in the audit trail; unset: PINKPAGE_RETENTION_DAYS; 0 keeps them forever",
    },
    SettingDoc {
        name: "PINKPAGE_RETENTION_INTERVAL_S",
        default: "3600",
        meaning: "how often the retention sweep runs (it also runs at start-up); fractions allowed",
    },
];

/// The parsed limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Days finished runs and health transitions are kept; 0: forever.
    pub records_days: u32,
    /// Days audit rows are kept; 0: forever.
    pub audit_days: u32,
    /// Time between sweeps.
    pub interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            records_days: DEFAULT_DAYS,
            audit_days: DEFAULT_DAYS,
            interval: Duration::from_secs_f64(DEFAULT_INTERVAL_S),
        }
    }
}

impl RetentionSettings {
    /// Records that ended before this time go, at `now`; `None`: none go.
    pub fn records_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        before(now, self.records_days)
    }

    /// Audit rows from before this time go, at `now`; `None`: none go.
    pub fn audit_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        before(now, self.audit_days)
    }
}

fn before(now: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    match days {
        0 => None,
        // `days` is at most MAX_DAYS: no overflow from any `now` a clock gives
        days => now.checked_sub_signed(chrono::Duration::days(i64::from(days))),
    }
}

pub(super) fn parse(env: &Env<'_>) -> Result<RetentionSettings, SettingsError> {
    let days = |n: &u32| *n <= MAX_DAYS;
    let records_days = env.parse_or("PINKPAGE_RETENTION_DAYS", DEFAULT_DAYS, days)?;
    Ok(RetentionSettings {
        records_days,
        audit_days: env.parse_or("PINKPAGE_AUDIT_RETENTION_DAYS", records_days, days)?,
        interval: env.seconds("PINKPAGE_RETENTION_INTERVAL_S", DEFAULT_INTERVAL_S)?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse_map(vars: &[(&str, &str)]) -> Result<RetentionSettings, SettingsError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        let lookup = |n: &str| map.get(n).map(|v| v.to_string());
        parse(&Env(&lookup))
    }

    #[test]
    fn the_defaults_keep_ninety_days_and_sweep_hourly() {
        let r = parse_map(&[]).unwrap();
        assert_eq!(r, RetentionSettings::default());
        assert_eq!((r.records_days, r.audit_days), (90, 90));
        assert_eq!(r.interval, Duration::from_secs(3600));
    }

    #[test]
    fn the_audit_limit_follows_the_records_limit_unless_set() {
        let r = parse_map(&[("PINKPAGE_RETENTION_DAYS", "30")]).unwrap();
        assert_eq!((r.records_days, r.audit_days), (30, 30));
        let r = parse_map(&[
            ("PINKPAGE_RETENTION_DAYS", "30"),
            ("PINKPAGE_AUDIT_RETENTION_DAYS", "400"),
        ])
        .unwrap();
        assert_eq!((r.records_days, r.audit_days), (30, 400));
        let r = parse_map(&[
            ("PINKPAGE_RETENTION_DAYS", "0"),
            ("PINKPAGE_AUDIT_RETENTION_DAYS", "7"),
        ])
        .unwrap();
        assert_eq!((r.records_days, r.audit_days), (0, 7));
    }

    #[test]
    fn zero_keeps_forever_and_a_limit_is_counted_back_from_now() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = RetentionSettings {
            records_days: 0,
            audit_days: 10,
            interval: Duration::from_secs(1),
        };
        assert_eq!(r.records_before(now), None);
        assert_eq!(
            r.audit_before(now).map(crate::records::timestamp).as_deref(),
            Some("2026-11-27T12:00:00.000Z")
        );
        let longest = RetentionSettings {
            records_days: MAX_DAYS,
            ..r
        };
        assert!(longest.records_before(DateTime::<Utc>::MIN_UTC).is_none());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (name, value) in [
            ("PINKPAGE_RETENTION_DAYS", "-1"),
            ("PINKPAGE_RETENTION_DAYS", "forever"),
            ("PINKPAGE_AUDIT_RETENTION_DAYS", "36501"),
            ("PINKPAGE_RETENTION_INTERVAL_S", "0"),
        ] {
            let e = parse_map(&[(name, value)]).unwrap_err();
            assert_eq!(e.variable, name, "{e}");
        }
    }
}
