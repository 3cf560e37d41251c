//! Limits on the work one client can hold the daemon to (issue 11): the
//! memory every running diff may reserve together, and how long a REST
//! request's body may send nothing; and (issue 23) how large a request
//! body may be, signed in and not. Each is a `PINKPAGE_*` variable with a
//! default; `mod.rs` lists them with the rest ([`DIFF_BUDGET_DOC`],
//! [`BODY_IDLE_TIMEOUT_DOC`], [`BODY_MAX_DOC`], [`ANON_BODY_MAX_DOC`]) and
//! keeps the parsed values in `Settings::work_limits`.

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
        meaning: "end a REST request whose body sends nothing this long with 10009 (HTTP 408); an upload is aborted, its temporary file removed and its SSH session closed (fractions allowed)",
};

/// Default of `PINKPAGE_BODY_MAX_BYTES`: the largest JSON body a route
/// takes (a workflow's parameters, a diff request) is a few KiB; actix-web's
/// own default would have been 2 MiB, preallocated from `Content-Length`.
pub const DEFAULT_BODY_MAX_BYTES: usize = 64 * 1024;

/// Default of `PINKPAGE_ANON_BODY_MAX_BYTES`: the largest login the API
/// document allows (a name of 64 characters and a password of 1024, even
/// with every character sent as an escaped surrogate pair, 12 bytes: about
/// 13 KiB) and nothing more.
pub const DEFAULT_ANON_BODY_MAX_BYTES: usize = 16 * 1024;

/// `PINKPAGE_BODY_MAX_BYTES`, for the one list in `mod.rs`.
pub const BODY_MAX_DOC: SettingDoc = SettingDoc {
    name: "PINKPAGE_BODY_MAX_BYTES",
    default: "65536",
    meaning: "largest request body of a signed-in caller on any route but the streamed upload (PUT /api/v1/bmx5/files); past it 10011 (HTTP 413), refused from Content-Length before the body is read",
};

/// `PINKPAGE_ANON_BODY_MAX_BYTES`, for the one list in `mod.rs`.
pub const ANON_BODY_MAX_DOC: SettingDoc = SettingDoc {
    name: "PINKPAGE_ANON_BODY_MAX_BYTES",
    default: "16384",
    meaning: "largest request body of a caller without credentials (POST /api/v1/auth/login); past it 10011 (HTTP 413)",
};

/// The parsed limits.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkLimits {
    /// Bytes all running diffs may reserve at once.
    pub diff_budget_bytes: u64,
    /// How long a request's body may send nothing.
    pub body_idle_timeout: Duration,
    /// The largest body of a signed-in caller (uploads stream instead).
    pub body_max_bytes: usize,
    /// The largest body of a caller without credentials.
    pub anon_body_max_bytes: usize,
}

/// Reads the limits from `env`.
pub(super) fn parse(env: &Env<'_>) -> Result<WorkLimits, SettingsError> {
    Ok(WorkLimits {
        diff_budget_bytes: env.parse_or("PINKPAGE_DIFF_BUDGET_BYTES", DEFAULT_DIFF_BUDGET_BYTES, |n| {
            *n > 0
        })?,
        body_idle_timeout: env.seconds("PINKPAGE_BODY_IDLE_TIMEOUT_S", DEFAULT_BODY_IDLE_TIMEOUT_S)?,
        body_max_bytes: env.parse_or("PINKPAGE_BODY_MAX_BYTES", DEFAULT_BODY_MAX_BYTES, |n| {
            (1024..=64 << 20).contains(n)
        })?,
        anon_body_max_bytes: env.parse_or(
            "PINKPAGE_ANON_BODY_MAX_BYTES",
            DEFAULT_ANON_BODY_MAX_BYTES,
            |n| (1024..=1 << 20).contains(n),
        )?,
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
        assert_eq!(limits.body_max_bytes, 64 * 1024);
        assert_eq!(
            limits.anon_body_max_bytes,
            16 * 1024,
            "a few KB at most without credentials"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let e = parse_vars(&[("PINKPAGE_DIFF_BUDGET_BYTES", "0")]).unwrap_err();
        assert_eq!(e.variable, "PINKPAGE_DIFF_BUDGET_BYTES");
        let e = parse_vars(&[("PINKPAGE_BODY_IDLE_TIMEOUT_S", "-1")]).unwrap_err();
        assert_eq!(e.variable, "PINKPAGE_BODY_IDLE_TIMEOUT_S");
        for (name, value) in [
            ("PINKPAGE_BODY_MAX_BYTES", "100"),
            ("PINKPAGE_ANON_BODY_MAX_BYTES", "lots"),
            ("PINKPAGE_ANON_BODY_MAX_BYTES", "2097152"),
        ] {
            assert_eq!(parse_vars(&[(name, value)]).unwrap_err().variable, name);
        }
        let limits = parse_vars(&[("PINKPAGE_BODY_IDLE_TIMEOUT_S", "0.5")]).unwrap();
        assert_eq!(limits.body_idle_timeout, Duration::from_millis(500));
    }
}
