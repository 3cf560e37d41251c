//! Server health as clients see it (SPEC section 8). The
//! `HealthMonitorActor` produces it; the broadcast registry keeps the latest
//! map for welcome messages.

use serde::Serialize;

/// The health of one server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerHealthStatus {
    /// Configured server name.
    pub server_name: String,
    /// Host checked.
    pub host: String,
    /// `true` healthy, `false` unhealthy, `null` not checked yet.
    pub is_healthy: Option<bool>,
    /// When the last check finished (ISO 8601, UTC), `null` before the first.
    pub last_checked: Option<String>,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
    /// Good checks in a row.
    pub consecutive_successes: u32,
    /// TCP connect + banner time of the last good check, in milliseconds.
    pub latency_ms: Option<f64>,
    /// Why the last check failed, when it did.
    pub last_error: Option<String>,
}

impl ServerHealthStatus {
    /// The status of a server that has not been checked yet.
    pub fn unchecked(server_name: &str, host: &str) -> Self {
        ServerHealthStatus {
            server_name: server_name.to_owned(),
            host: host.to_owned(),
            is_healthy: None,
            last_checked: None,
            consecutive_failures: 0,
            consecutive_successes: 0,
            latency_ms: None,
            last_error: None,
        }
    }
}
