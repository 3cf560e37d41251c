//! Recordings of PTYs (issue 26): whether typed input is kept, what
//! happens when recordings cannot be written, and how long and how much
//! is kept. Listed with the rest in [`SETTINGS`](super::SETTINGS) as
//! [`DOCS`]; parsed into `Settings::recordings`. Whether a server's PTYs
//! are recorded at all is the servers file's `record` (default true).

use super::env::{Env, SettingDoc, SettingsError};

/// The recordings' settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSettings {
    /// Keep `i` events (typed input). Off: input carries passwords typed
    /// at prompts.
    pub input: bool,
    /// Open new PTYs even when their recording cannot start.
    pub fail_open: bool,
    /// Recordings older than this many days are removed (0: never by
    /// age).
    pub max_age_days: u32,
    /// The oldest recordings are removed while all of them hold more than
    /// this many bytes (0: no limit by size).
    pub max_bytes: u64,
}

impl Default for RecordingSettings {
    fn default() -> Self {
        RecordingSettings {
            input: false,
            fail_open: false,
            max_age_days: 90,
            max_bytes: 10 << 30,
        }
    }
}

/// The variables, for the one list in `mod.rs`.
pub const DOCS: [SettingDoc; 4] = [
    SettingDoc {
        name: "PINKPAGE_RECORD_INPUT",
        default: "false",
        meaning: "RECORDINGS: also record typed input (`i` events) in each PTY's asciicast file; off by default because input carries passwords typed at prompts",
    },
    SettingDoc {
        name: "PINKPAGE_RECORD_FAIL_OPEN",
        default: "false",
        meaning: "open new PTYs (commands, scripts, workflow steps, terminals) even when their recording cannot be started (a full or failing disk); by default they are refused with 56001, as work is refused while audit rows cannot be written",
    },
    SettingDoc {
        name: "PINKPAGE_RECORDINGS_MAX_AGE_DAYS",
        default: "90",
        meaning: "recordings older than this many days are removed, oldest first, each audited (`recording.expire`); 0 keeps them whatever their age",
    },
    SettingDoc {
        name: "PINKPAGE_RECORDINGS_MAX_BYTES",
        default: "10737418240",
        meaning: "while all recordings hold more than this many bytes, the oldest finished ones are removed (10 GiB by default; 0: no limit by size)",
    },
];

pub(super) fn parse(env: &Env<'_>) -> Result<RecordingSettings, SettingsError> {
    let d = RecordingSettings::default();
    Ok(RecordingSettings {
        input: env.parse_or("PINKPAGE_RECORD_INPUT", d.input, |_| true)?,
        fail_open: env.parse_or("PINKPAGE_RECORD_FAIL_OPEN", d.fail_open, |_| true)?,
        max_age_days: env.parse_or("PINKPAGE_RECORDINGS_MAX_AGE_DAYS", d.max_age_days, |_| true)?,
        max_bytes: env.parse_or("PINKPAGE_RECORDINGS_MAX_BYTES", d.max_bytes, |_| true)?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse_map(vars: &[(&str, &str)]) -> Result<RecordingSettings, SettingsError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        let lookup = |n: &str| map.get(n).map(|v| v.to_string());
        parse(&Env(&lookup))
    }

    #[test]
    fn the_defaults_are_the_issues() {
        let r = parse_map(&[]).unwrap();
        assert_eq!(r, RecordingSettings::default());
        assert!(!r.input, "input is off by default: it carries passwords");
        assert!(!r.fail_open, "recording fails closed by default");
        assert_eq!((r.max_age_days, r.max_bytes), (90, 10 << 30));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (name, value) in [
            ("PINKPAGE_RECORD_INPUT", "maybe"),
            ("PINKPAGE_RECORDINGS_MAX_AGE_DAYS", "-1"),
            ("PINKPAGE_RECORDINGS_MAX_BYTES", "ten"),
        ] {
            let e = parse_map(&[(name, value)]).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
        }
    }
}
