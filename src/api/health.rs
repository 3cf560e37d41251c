//! `GET /api/v1/health`: is the daemon up, which version, for how long, and
//! can it write its audit trail.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;

use crate::state::AppState;
use crate::store::JournalHealth;

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
}

/// The daemon's health, version and uptime.
#[utoipa::path(tag = "daemon", responses((status = 200, body = DaemonHealth)))]
#[get("/api/v1/health")]
pub async fn daemon_health(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.journal().health();
    HttpResponse::Ok().json(DaemonHealth {
        status: store.status,
        version: env!("CARGO_PKG_VERSION"),
        env: state.settings.env_name.clone(),
        uptime_s: state.started.elapsed().as_secs_f64(),
        started_at: state
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        store,
    })
}
