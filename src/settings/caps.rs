//! The caps that keep one client from holding what others need: WebSocket
//! connections (in all and per user), concurrent operations per
//! connection, and SSH sessions per server with their queue wait. Parsed
//! with the rest of [`Settings`](super::Settings); names and defaults are
//! in [`SETTINGS`](super::SETTINGS) and `docs/configuration.md`.

use std::time::Duration;

use super::env::{Env, SettingsError};

/// WAVE2: the defaults must allow 10,000 WebSocket clients.
const DEFAULT_WS_MAX: usize = 10_000;
/// WAVE2: the defaults must allow 200 SSH sessions per server.
const DEFAULT_SSH_MAX_PER_SERVER: usize = 200;

/// The caps, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapSettings {
    /// WebSocket connections in all (30001).
    pub ws_max: usize,
    /// WebSocket connections per user (30002).
    pub ws_max_per_user: usize,
    /// Concurrent operations per connection (10008).
    pub ops_per_connection: usize,
    /// SSH sessions per server across the daemon.
    pub ssh_sessions_per_server: usize,
    /// How long a new SSH session waits for a slot before 20003.
    pub ssh_session_wait: Duration,
}

impl Default for CapSettings {
    fn default() -> Self {
        CapSettings {
            ws_max: DEFAULT_WS_MAX,
            ws_max_per_user: DEFAULT_WS_MAX,
            ops_per_connection: 16,
            ssh_sessions_per_server: DEFAULT_SSH_MAX_PER_SERVER,
            ssh_session_wait: Duration::from_secs(10),
        }
    }
}

/// Reads the caps; each must be at least 1 (a cap of 0 would refuse
/// everything, which is what stopping the daemon is for).
pub(super) fn parse(env: &Env<'_>) -> Result<CapSettings, SettingsError> {
    let d = CapSettings::default();
    let positive = |n: &usize| *n >= 1;
    let caps = CapSettings {
        ws_max: env.parse_or("PINKPAGE_WS_MAX_CONNECTIONS", d.ws_max, positive)?,
        ws_max_per_user: env.parse_or(
            "PINKPAGE_WS_MAX_CONNECTIONS_PER_USER",
            d.ws_max_per_user,
            positive,
        )?,
        ops_per_connection: env.parse_or(
            "PINKPAGE_WS_MAX_OPS_PER_CONNECTION",
            d.ops_per_connection,
            positive,
        )?,
        ssh_sessions_per_server: env.parse_or(
            "PINKPAGE_SSH_MAX_SESSIONS_PER_SERVER",
            d.ssh_sessions_per_server,
            positive,
        )?,
        ssh_session_wait: env.seconds("PINKPAGE_SSH_SESSION_WAIT_S", 10.0)?,
    };
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn caps(vars: &[(&str, &str)]) -> Result<CapSettings, SettingsError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        let lookup = move |k: &str| map.get(k).map(|v| v.to_string());
        parse(&Env(&lookup))
    }

    #[test]
    fn the_defaults_allow_ten_thousand_websockets_and_two_hundred_sessions_per_server() {
        let c = caps(&[]).unwrap();
        assert_eq!(c, CapSettings::default());
        assert_eq!(c.ws_max, 10_000);
        assert!(c.ws_max_per_user >= 10_000);
        assert_eq!(c.ssh_sessions_per_server, 200);
    }

    #[test]
    fn a_cap_of_zero_or_a_word_is_refused_naming_its_variable() {
        for (name, value) in [
            ("PINKPAGE_WS_MAX_CONNECTIONS", "0"),
            ("PINKPAGE_WS_MAX_CONNECTIONS_PER_USER", "many"),
            ("PINKPAGE_WS_MAX_OPS_PER_CONNECTION", "-1"),
            ("PINKPAGE_SSH_MAX_SESSIONS_PER_SERVER", "0"),
            ("PINKPAGE_SSH_SESSION_WAIT_S", "0"),
        ] {
            let err = caps(&[(name, value)]).unwrap_err();
            assert_eq!(err.variable, name);
        }
        let c = caps(&[
            ("PINKPAGE_SSH_SESSION_WAIT_S", "0.5"),
            ("PINKPAGE_WS_MAX_CONNECTIONS", "3"),
        ])
        .unwrap();
        assert_eq!(c.ssh_session_wait, Duration::from_millis(500));
        assert_eq!(c.ws_max, 3);
    }
}
