//! `GET /api/v1/health`: is the daemon up, which version, for how long.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;

use crate::state::AppState;

/// The daemon's own health.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DaemonHealth {
    /// `ok` while the daemon serves.
    pub status: &'static str,
    /// Crate version.
    pub version: &'static str,
    /// The `ENV` setting (dev, prod, ...).
    pub env: String,
    /// Seconds since start.
    pub uptime_s: f64,
    /// When the daemon started (RFC 3339, UTC).
    pub started_at: String,
}

/// The daemon's health, version and uptime.
#[utoipa::path(tag = "daemon", responses((status = 200, body = DaemonHealth)))]
#[get("/api/v1/health")]
pub async fn daemon_health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(DaemonHealth {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        env: state.settings.env_name.clone(),
        uptime_s: state.started.elapsed().as_secs_f64(),
        started_at: state
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}
