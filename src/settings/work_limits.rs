//! Limits on the work one client can hold the daemon to (issue 11): the
//! memory every running diff may reserve together, and how long a REST
//! upload's body may send nothing. Each is a `PINKPAGE_*` variable with a
//! default; `mod.rs` lists them with the rest ([`DIFF_BUDGET_DOC`],
//! [`BODY_IDLE_TIMEOUT_DOC`]) and keeps the
//! parsed values in `Settings::work_limits`.

use std::time::Duration;

use super::env::{Env, SettingDoc, SettingsError};

/// Default of `PINKPAGE_DIFF_BUDGET_BYTES`: 512 MiB, room for 25 diffs of
/// two 10 MiB files (the default `PINKPAGE_DIFF_MAX_BYTES`) at once.
pub const DEFAULT_DIFF_BUDGET_BYTES: u64 = 512 << 20;

/// Default of `PINKPAGE_BODY_IDLE_TIMEOUT_S`: long enough for a slow link
/// or a paused `curl`, short enough that a stalled upload does not hold an
/// SSH session and a temporary file for long.
pub const DEFAULT_BODY_IDLE_TIMEOUT_S: f64 = 30.0;

/// `PINKPAGE_DIFF_BUDGET_BYTES`, for the one list in `mod.rs`.
pub const DIFF_BUDGET_DOC: SettingDoc = SettingDoc {
        name: "PINKPAGE_DIFF_BUDGET_BYTES",
        default: "536870912",
        meaning: "DIFF: bytes all running diffs may reserve at once (each reserves the most it may hold: twice PINKPAGE_DIFF_MAX_BYTES for files and commands); past it a diff is refused with 53001",
};

/// `PINKPAGE_BODY_IDLE_TIMEOUT_S`, for the one list in `mod.rs`.
pub const BODY_IDLE_TIMEOUT_DOC: SettingDoc = SettingDoc {
        name: "PINKPAGE_BODY_IDLE_TIMEOUT_S",
        default: "30",
        meaning: "abort a REST upload whose body sends nothing this long (10009; its temporary file removed, its SSH session closed; fractions allowed)",
};

/// The parsed limits.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkLimits {
    /// Bytes all running diffs may reserve at once.
    pub diff_budget_bytes: u64,
    /// How long an upload's body may send nothing.
    pub body_idle_timeout: Duration,
}

/// Reads the limits from `env`.
pub(super) fn parse(env: &Env<'_>) -> Result<WorkLimits, SettingsError> {
    Ok(WorkLimits {
        diff_budget_bytes: env.parse_or("PINKPAGE_DIFF_BUDGET_BYTES", DEFAULT_DIFF_BUDGET_BYTES, |n| {
            *n > 0
        })?,
        body_idle_timeout: env.seconds("PINKPAGE_BODY_IDLE_TIMEOUT_S", DEFAULT_BODY_IDLE_TIMEOUT_S)?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse_vars(vars: &[(&str, &str)]) -> Result<WorkLimits, SettingsError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |name: &str| map.get(name).cloned();
        parse(&Env(&lookup))
    }

    #[test]
    fn defaults_apply_when_unset() {
        let limits = parse_vars(&[]).unwrap();
        assert_eq!(limits.diff_budget_bytes, 512 << 20);
        assert_eq!(limits.body_idle_timeout, Duration::from_secs(30));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let e = parse_vars(&[("PINKPAGE_DIFF_BUDGET_BYTES", "0")]).unwrap_err();
        assert_eq!(e.variable, "PINKPAGE_DIFF_BUDGET_BYTES");
        let e = parse_vars(&[("PINKPAGE_BODY_IDLE_TIMEOUT_S", "-1")]).unwrap_err();
        assert_eq!(e.variable, "PINKPAGE_BODY_IDLE_TIMEOUT_S");
        let limits = parse_vars(&[("PINKPAGE_BODY_IDLE_TIMEOUT_S", "0.5")]).unwrap();
        assert_eq!(limits.body_idle_timeout, Duration::from_millis(500));
    }
}
