//! `GET /api/v1/audit`: the audit trail, newest first.

use actix_web::{get, web, HttpResponse};
use serde::Deserialize;

use super::error::ApiError;
use crate::auth::Caller;
use crate::records::{audit, AuditEvent};
use crate::state::AppState;

/// Paging and filtering.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// At most this many (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only events with a smaller id (the last id of the previous page).
    pub before_id: Option<i64>,
    /// Only this action (e.g. `session.start`).
    pub action: Option<String>,
    /// Only events by this user.
    pub user: Option<String>,
}

/// Audit events, newest first.
#[utoipa::path(tag = "audit", params(AuditQuery), responses(
    (status = 200, body = [AuditEvent]),
    (status = 400, body = super::error::ErrorResponse)))]
#[get("/api/v1/audit")]
pub async fn list_audit(
    state: web::Data<AppState>,
    _admin: Caller,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = super::paging::page_limit(q.limit, 100)?;
    let events = state
        .stores
        .audit
        .list(audit::AuditQuery {
            limit,
            before_id: q.before_id,
            action: q.action,
            user: q.user,
        })
        .await?;
    Ok(HttpResponse::Ok().json(events))
}
