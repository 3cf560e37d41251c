//! Operator terminals (issue 25): the scrollback each keeps, how long one
//! stays detached or idle before it closes, how many there may be, and how
//! many may watch a PTY. Listed with the rest in [`SETTINGS`](super::SETTINGS)
//! as the `*_DOC` constants; parsed into `Settings::terminals`.

use std::time::Duration;

use super::env::{Env, SettingDoc, SettingsError};

/// The operator terminals' settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalSettings {
    /// Bytes of output each terminal keeps for a re-attach.
    pub scrollback_bytes: usize,
    /// How long a terminal stays detached before its shell is closed.
    pub detach: Duration,
    /// How long a terminal may have no input and no output.
    pub idle: Duration,
    /// Terminals one user may have open (attached or detached).
    pub per_user: usize,
    /// Terminals the daemon may have open.
    pub max: usize,
    /// Read-only watchers one PTY may have.
    pub max_watchers: usize,
}

impl Default for TerminalSettings {
    fn default() -> Self {
        TerminalSettings {
            scrollback_bytes: 1 << 20,
            detach: Duration::from_secs(300),
            idle: Duration::from_secs(30 * 60),
            per_user: 10,
            max: 500,
            max_watchers: 10,
        }
    }
}

/// The variables, for the one list in `mod.rs`.
pub const DOCS: [SettingDoc; 6] = [
    SettingDoc {
        name: "PINKPAGE_TERMINAL_SCROLLBACK_BYTES",
        default: "1048576",
        meaning: "TERMINALS: output each operator terminal keeps for a re-attach (and late watchers); a detached terminal whose ring is full of unseen output stops reading, which pauses its remote program",
    },
    SettingDoc {
        name: "PINKPAGE_TERMINAL_DETACH_S",
        default: "300",
        meaning: "how long a terminal runs detached (its WebSocket gone) before its remote shell is closed with 54006 (fractions allowed)",
    },
    SettingDoc {
        name: "PINKPAGE_TERMINAL_IDLE_S",
        default: "1800",
        meaning: "a terminal with no input and no output this long is closed with 54005; terminal_idle_warning comes a minute before (half the time when it is under two minutes)",
    },
    SettingDoc {
        name: "PINKPAGE_TERMINALS_PER_USER",
        default: "10",
        meaning: "operator terminals one user may have open, attached or detached; past it terminal_open gets 54001",
    },
    SettingDoc {
        name: "PINKPAGE_TERMINALS_MAX",
        default: "500",
        meaning: "operator terminals the daemon may have open; past it terminal_open gets 54002 (each holds an SSH session: see PINKPAGE_SSH_MAX_SESSIONS_PER_SERVER)",
    },
    SettingDoc {
        name: "PINKPAGE_TERMINAL_MAX_WATCHERS",
        default: "10",
        meaning: "read-only watchers one PTY may have; past it terminal_watch gets 54004",
    },
];

pub(super) fn parse(env: &Env<'_>) -> Result<TerminalSettings, SettingsError> {
    let d = TerminalSettings::default();
    let positive = |n: &usize| *n >= 1;
    Ok(TerminalSettings {
        // at least one largest output message, at most 64 MiB a terminal
        scrollback_bytes: env.parse_or("PINKPAGE_TERMINAL_SCROLLBACK_BYTES", d.scrollback_bytes, |n| {
            (4096..=64 << 20).contains(n)
        })?,
        detach: env.seconds("PINKPAGE_TERMINAL_DETACH_S", d.detach.as_secs_f64())?,
        idle: env.seconds("PINKPAGE_TERMINAL_IDLE_S", d.idle.as_secs_f64())?,
        per_user: env.parse_or("PINKPAGE_TERMINALS_PER_USER", d.per_user, positive)?,
        max: env.parse_or("PINKPAGE_TERMINALS_MAX", d.max, positive)?,
        max_watchers: env.parse_or("PINKPAGE_TERMINAL_MAX_WATCHERS", d.max_watchers, positive)?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse_map(vars: &[(&str, &str)]) -> Result<TerminalSettings, SettingsError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        let lookup = |n: &str| map.get(n).map(|v| v.to_string());
        parse(&Env(&lookup))
    }

    #[test]
    fn the_defaults_are_the_issues() {
        let t = parse_map(&[]).unwrap();
        assert_eq!(t, TerminalSettings::default());
        assert_eq!(t.scrollback_bytes, 1 << 20);
        assert_eq!(t.detach, Duration::from_secs(300));
        assert_eq!(t.idle, Duration::from_secs(1800));
        assert_eq!((t.per_user, t.max, t.max_watchers), (10, 500, 10));
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (name, value) in [
            ("PINKPAGE_TERMINAL_SCROLLBACK_BYTES", "10"),
            ("PINKPAGE_TERMINAL_DETACH_S", "0"),
            ("PINKPAGE_TERMINALS_PER_USER", "0"),
            ("PINKPAGE_TERMINAL_MAX_WATCHERS", "x"),
        ] {
            let e = parse_map(&[(name, value)]).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
        }
    }
}
