//! Health transitions: one record each time a server's `is_healthy` flips.
//! The engine's `HealthMonitorActor` produces them
//! (`pinkpage_actors::health::HealthTransition`, stamped with the time of
//! the check that decided); [`HealthEvent`] is one as stored.

use serde::Serialize;

/// A stored transition.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HealthEvent {
    /// Row id, assigned by the store; increases with time.
    pub id: i64,
    /// When the check that decided it finished (RFC 3339, UTC).
    pub at: String,
    /// Configured server name.
    pub server_name: String,
    /// Host checked.
    pub host: String,
    /// The new verdict.
    pub is_healthy: bool,
    /// The verdict before; `null` for the server's first result.
    pub previous: Option<bool>,
    /// Why the last check failed, when it did.
    pub error: Option<String>,
    /// Latency of the last good check, in milliseconds.
    pub latency_ms: Option<f64>,
}
