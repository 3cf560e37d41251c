//! The caps that keep one client from holding what others need: WebSocket
//! connections (in all and per user), connections not yet through
//! admission per address, descriptors kept from clients, the memory of
//! incomplete WebSocket messages, concurrent operations per connection,
//! and SSH sessions per server with their queue wait. Parsed with the rest
//! of [`Settings`](super::Settings); names and defaults are in
//! [`SETTINGS`](super::SETTINGS) (this file's newer ones as `*_DOC`,
//! listed there) and `docs/configuration.md`.

use std::time::Duration;

use super::env::{Env, SettingDoc, SettingsError};

/// WAVE2: the defaults must allow 10,000 WebSocket clients.
const DEFAULT_WS_MAX: usize = 10_000;
/// WAVE2 ("Caps defaults"): one user may not take what others need, so a
/// user's share is well below the daemon's.
const DEFAULT_WS_MAX_PER_USER: usize = 100;
/// WAVE2: the defaults must allow 200 SSH sessions per server.
const DEFAULT_SSH_MAX_PER_SERVER: usize = 200;
/// The largest WebSocket message any type may be (`ws::protocol`'s
/// `MAX_FRAME_BYTES`; a test there keeps the two equal): the shared frame
/// budget must hold at least one, or such a message could never be read.
pub const LARGEST_MESSAGE_BYTES: usize = 64 * 1024;

/// `PINKPAGE_MAX_PENDING_PER_ADDRESS`, for the one list in `mod.rs`.
pub const PENDING_DOC: SettingDoc = SettingDoc {
    name: "PINKPAGE_MAX_PENDING_PER_ADDRESS",
    default: "20",
    meaning: "connections from one client address not yet through admission (request head still arriving, or not yet authenticated); a request past it gets 30005 (HTTP 429) and its connection is closed. Trusted proxies are not counted",
};

/// `PINKPAGE_RESERVED_FDS`, for the one list in `mod.rs`.
pub const RESERVED_FDS_DOC: SettingDoc = SettingDoc {
    name: "PINKPAGE_RESERVED_FDS",
    default: "256",
    meaning: "file descriptors client connections never take (kept for SSH sessions, the store, health checks); the rest bound accepted connections and WebSockets (see docs/configuration.md)",
};

/// `PINKPAGE_REQUEST_HEAD_TIMEOUT_S`, for the one list in `mod.rs`.
pub const REQUEST_HEAD_TIMEOUT_DOC: SettingDoc = SettingDoc {
    name: "PINKPAGE_REQUEST_HEAD_TIMEOUT_S",
    default: "5",
    meaning: "a new connection that has not sent its whole request head this long gets 408 and is closed (fractions allowed)",
};

/// `PINKPAGE_WS_FRAME_ALLOWANCE_BYTES`, for the one list in `mod.rs`.
pub const FRAME_ALLOWANCE_DOC: SettingDoc = SettingDoc {
    name: "PINKPAGE_WS_FRAME_ALLOWANCE_BYTES",
    default: "8192",
    meaning: "bytes of an incomplete WebSocket message each connection may hold on its own; a longer message (up to 64 KiB) first reserves its size from PINKPAGE_WS_FRAME_BUDGET_BYTES",
};

/// `PINKPAGE_WS_FRAME_BUDGET_BYTES`, for the one list in `mod.rs`.
pub const FRAME_BUDGET_DOC: SettingDoc = SettingDoc {
    name: "PINKPAGE_WS_FRAME_BUDGET_BYTES",
    default: "33554432",
    meaning: "bytes all WebSocket connections together may hold of incomplete messages beyond their allowance; when it is spent a connection stops reading until a reservation is given back",
};

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
    /// Connections from one client address not yet through admission
    /// (30005).
    pub pending_per_address: usize,
    /// File descriptors client connections never take.
    pub reserved_fds: usize,
    /// How long a new connection may take to send its request head.
    pub request_head_timeout: Duration,
    /// Bytes of an incomplete WebSocket message a connection holds
    /// without a reservation.
    pub ws_frame_allowance: usize,
    /// Bytes all connections may hold of incomplete messages beyond their
    /// allowance.
    pub ws_frame_budget: usize,
}

impl Default for CapSettings {
    fn default() -> Self {
        CapSettings {
            ws_max: DEFAULT_WS_MAX,
            ws_max_per_user: DEFAULT_WS_MAX_PER_USER,
            ops_per_connection: 16,
            ssh_sessions_per_server: DEFAULT_SSH_MAX_PER_SERVER,
            ssh_session_wait: Duration::from_secs(10),
            pending_per_address: 20,
            reserved_fds: 256,
            request_head_timeout: Duration::from_secs(5),
            ws_frame_allowance: 8 * 1024,
            ws_frame_budget: 32 << 20,
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
        pending_per_address: env.parse_or(
            "PINKPAGE_MAX_PENDING_PER_ADDRESS",
            d.pending_per_address,
            positive,
        )?,
        // 0 is allowed (a test of what the reserve is for), never advised
        reserved_fds: env.parse_or("PINKPAGE_RESERVED_FDS", d.reserved_fds, |_| true)?,
        request_head_timeout: env.seconds(
            "PINKPAGE_REQUEST_HEAD_TIMEOUT_S",
            d.request_head_timeout.as_secs_f64(),
        )?,
        // at least a control frame and a small request; a reservation
        // is never needed past the largest message
        ws_frame_allowance: env.parse_or("PINKPAGE_WS_FRAME_ALLOWANCE_BYTES", d.ws_frame_allowance, |n| {
            (256..=LARGEST_MESSAGE_BYTES).contains(n)
        })?,
        // at least one largest message, and what a semaphore can count
        ws_frame_budget: env.parse_or("PINKPAGE_WS_FRAME_BUDGET_BYTES", d.ws_frame_budget, |n| {
            (LARGEST_MESSAGE_BYTES..=1 << 30).contains(n)
        })?,
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
        assert_eq!(c.ssh_sessions_per_server, 200);
    }

    #[test]
    fn the_defaults_leave_room_for_everyone_else() {
        let c = caps(&[]).unwrap();
        assert_eq!(
            c.ws_max_per_user, 100,
            "one user's share is well below the daemon's"
        );
        assert_eq!(c.pending_per_address, 20);
        assert_eq!(c.reserved_fds, 256);
        assert_eq!(c.ws_frame_allowance, 8192);
        assert_eq!(c.ws_frame_budget, 32 << 20);
        assert_eq!(c.request_head_timeout, Duration::from_secs(5));
    }

    #[test]
    fn a_cap_of_zero_or_a_word_is_refused_naming_its_variable() {
        for (name, value) in [
            ("PINKPAGE_WS_MAX_CONNECTIONS", "0"),
            ("PINKPAGE_WS_MAX_CONNECTIONS_PER_USER", "many"),
            ("PINKPAGE_WS_MAX_OPS_PER_CONNECTION", "-1"),
            ("PINKPAGE_SSH_MAX_SESSIONS_PER_SERVER", "0"),
            ("PINKPAGE_SSH_SESSION_WAIT_S", "0"),
            ("PINKPAGE_MAX_PENDING_PER_ADDRESS", "0"),
            ("PINKPAGE_RESERVED_FDS", "-1"),
            ("PINKPAGE_REQUEST_HEAD_TIMEOUT_S", "0"),
            ("PINKPAGE_WS_FRAME_ALLOWANCE_BYTES", "100"),
            ("PINKPAGE_WS_FRAME_ALLOWANCE_BYTES", "65537"),
            ("PINKPAGE_WS_FRAME_BUDGET_BYTES", "65535"),
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
