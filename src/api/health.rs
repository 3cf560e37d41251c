//! `GET /api/v1/health`: is the daemon up, which version, for how long,
//! can it write its audit trail, and how much of its capped capacity is in
//! use (totals only: the endpoint is anonymous, so no server or user is
//! named).

use actix_web::{get, web, HttpResponse};
use serde::Serialize;

use crate::journal::JournalHealth;
use crate::state::AppState;

/// The daemon's own health.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DaemonHealth {
    /// `ok` while the daemon serves; `degraded` while audit rows cannot be
    /// written (`store` says more).
    pub status: &'static str,
    /// Crate version.
    pub version: &'static str,
    /// The `ENV` setting (dev, prod, ...).
    pub env: String,
    /// Seconds since start.
    pub uptime_s: f64,
    /// When the daemon started (RFC 3339, UTC).
    pub started_at: String,
    /// The audit trail's writer: `degraded` while rows cannot be written
    /// (new remote actions get 40000 then), rows waiting, failed writes
    /// and dropped rows.
    pub store: JournalHealth,
    /// Open WebSocket connections (capped by `PINKPAGE_WS_MAX_CONNECTIONS`).
    pub websocket_connections: usize,
    /// Of those, the ones whose output has not drained for two heartbeats
    /// (a client that stopped reading; dropped at `PINKPAGE_WS_TIMEOUT_S`).
    pub websocket_connections_not_draining: usize,
    /// SSH sessions open now, all servers together (capped per server by
    /// `PINKPAGE_SSH_MAX_SESSIONS_PER_SERVER`).
    pub ssh_sessions: usize,
    /// Requests waiting for an SSH session slot now.
    pub ssh_sessions_waiting: usize,
}

/// The daemon's health, version and uptime.
#[utoipa::path(tag = "daemon", responses((status = 200, body = DaemonHealth)))]
#[get("/api/v1/health")]
pub async fn daemon_health(state: web::Data<AppState>) -> HttpResponse {
    let store = state.journal.health();
    HttpResponse::Ok().json(DaemonHealth {
        status: store.status,
        version: env!("CARGO_PKG_VERSION"),
        env: state.settings().env_name.clone(),
        uptime_s: state.started.elapsed().as_secs_f64(),
        started_at: state
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        store,
        websocket_connections: state.connections.count(),
        websocket_connections_not_draining: state.connections.not_draining(state.settings().ws_heartbeat * 2),
        ssh_sessions: state.ssh.sessions.in_use().values().sum(),
        ssh_sessions_waiting: state.ssh.sessions.waiting(),
    })
}
