//! `GET /api/v1/health/servers[/{name}[/events]]`: the live health of every
//! configured server (from the `HealthMonitorActor`) and each server's
//! transitions (from the store).

use actix_web::{get, web, HttpResponse};
use pinkpage_actors::health::monitor::{GetHealth, GetServerHealth};
use pinkpage_actors::health::ServerHealthStatus;
use pinkpage_actors::{AppError, ErrorCode};
use serde::Deserialize;

use super::error::ApiError;
use crate::records::HealthEvent;
use crate::request::ServerRef;
use crate::state::AppState;

/// OpenAPI view of [`ServerHealthStatus`] (which lives in the engine crate,
/// which knows nothing of OpenAPI).
#[derive(utoipa::ToSchema)]
#[schema(as = ServerHealthStatus)]
#[allow(dead_code)]
pub struct ServerHealthSchema {
    /// Configured server name.
    server_name: String,
    /// Host checked.
    host: String,
    /// `true` healthy, `false` unhealthy, `null` unknown: not checked yet,
    /// or fewer failures in a row than `PINKPAGE_HEALTH_FAILURES` since the
    /// daemon started (the counters say how many).
    is_healthy: Option<bool>,
    /// When the last check finished (ISO 8601, UTC); `null` before the first.
    last_checked: Option<String>,
    /// Failed checks in a row.
    consecutive_failures: u32,
    /// Good checks in a row.
    consecutive_successes: u32,
    /// TCP connect + SSH banner time of the last good check, in milliseconds.
    latency_ms: Option<f64>,
    /// Why the last check failed, when it did.
    last_error: Option<String>,
}

/// Paging of the events list.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// At most this many (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Paging of the servers' health: by name, after a cursor.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct HealthQuery {
    /// At most this many servers (1-1000); absent: every server.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only servers whose names sort after this one (the last name of the
    /// previous page).
    pub after: Option<String>,
}

/// Every configured server's health, sorted by name; with `limit`, one
/// page of it (the next page: `after` = the last name of this one).
#[utoipa::path(tag = "health", params(HealthQuery), responses(
    (status = 200, body = [ServerHealthSchema]),
    (status = 400, description = "`limit` outside 1-1000 (10001)", body = super::error::ErrorResponse)))]
#[get("/api/v1/health/servers")]
pub async fn list_server_health(
    state: web::Data<AppState>,
    q: web::Query<HealthQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = match q.limit {
        None => usize::MAX,
        Some(limit) => super::paging::page_limit(Some(limit), limit)? as usize,
    };
    let all: Vec<ServerHealthStatus> = state.health.send(GetHealth).await.map_err(monitor_gone)?;
    // sorted by name already (the monitor keeps them so)
    let page: Vec<&ServerHealthStatus> = all
        .iter()
        .filter(|s| {
            q.after
                .as_deref()
                .is_none_or(|after| s.server_name.as_str() > after)
        })
        .take(limit)
        .collect();
    Ok(HttpResponse::Ok().json(page))
}

/// One server's health.
#[utoipa::path(tag = "health",
    params(("name" = String, Path, description = "Configured server name")),
    responses(
        (status = 200, body = ServerHealthSchema),
        (status = 404, description = "No server has that name (23000)", body = super::error::ErrorResponse)))]
#[get("/api/v1/health/servers/{name}")]
pub async fn server_health(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let server = ServerRef::known(&state.settings(), &name)?;
    let status = state
        .health
        .send(GetServerHealth {
            name: server.name().to_owned(),
        })
        .await
        .map_err(monitor_gone)?
        // the monitor watches every configured server, so a resolved name
        // it does not know is the daemon's fault, not the client's
        .ok_or_else(|| {
            AppError::with_detail(
                ErrorCode::Internal,
                format!("health monitor has no entry for '{}'", server.name()),
            )
        })?;
    Ok(HttpResponse::Ok().json(status))
}

/// One server's health transitions, newest first.
#[utoipa::path(tag = "health",
    params(("name" = String, Path, description = "Configured server name"), EventsQuery),
    responses(
        (status = 200, body = [HealthEvent]),
        (status = 400, body = super::error::ErrorResponse),
        (status = 404, description = "No server has that name (23000)", body = super::error::ErrorResponse)))]
#[get("/api/v1/health/servers/{name}/events")]
pub async fn server_health_events(
    state: web::Data<AppState>,
    name: web::Path<String>,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let server = ServerRef::known(&state.settings(), &name)?;
    let limit = super::paging::page_limit(q.limit, 100)?;
    let events = state.stores.health.list(server.name().to_owned(), limit).await?;
    Ok(HttpResponse::Ok().json(events))
}

fn monitor_gone(e: actix::MailboxError) -> ApiError {
    AppError::with_detail(ErrorCode::Internal, format!("health monitor unavailable: {e}")).into()
}
