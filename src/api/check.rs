//! `POST /api/v1/servers/{name}/check`: can the daemon reach, trust and log
//! in to a server right now? Connects with the configured credentials and
//! host key policy, runs nothing, disconnects.

use std::time::Instant;

use actix_web::{post, web, HttpResponse};
use pinkpage_actors::ssh;
use serde::Serialize;

use super::error::ApiError;
use crate::auth::Caller;
use crate::request::ServerRef;
use crate::state::AppState;

/// A successful check.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckResult {
    /// The server checked.
    pub server: String,
    /// Always `true` (failures are error bodies with 20000-21000 codes).
    pub ok: bool,
    /// Connect, handshake, host key check and login, in milliseconds.
    pub latency_ms: f64,
}

/// Connects and logs in to a server, then disconnects.
#[utoipa::path(tag = "servers", params(("name" = String, Path, description = "server name")), responses(
    (status = 200, body = CheckResult),
    (status = 404, description = "unknown server (23000)", body = super::error::ErrorResponse),
    (status = 502, description = "connection (20000), host key (20002) or authentication (21000) failure", body = super::error::ErrorResponse),
    (status = 504, description = "connection timed out (20001)", body = super::error::ErrorResponse)))]
#[post("/api/v1/servers/{name}/check")]
pub async fn check_server(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let server = ServerRef::resolve(&state.settings(), caller.principal()?, &name)?;
    let name = server.name().to_owned();
    let started = Instant::now();
    let session = ssh::connect(server.spec(), &state.ssh).await?;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Err(e) = session.disconnect().await {
        log::warn!(server = name.as_str(), error = e.to_string(); "disconnect after check failed");
    }
    Ok(HttpResponse::Ok().json(CheckResult {
        server: name,
        ok: true,
        latency_ms,
    }))
}
