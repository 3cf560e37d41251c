//! `GET /api/v1/session` (who holds the session lock) and
//! `DELETE /api/v1/session` (an administrator takes it away; audited).

use actix_web::{delete, get, web, HttpResponse};
use pinkpage_actors::broadcast::SessionStatus;
use pinkpage_actors::lock::{ForceRelease, GetStatus};
use pinkpage_actors::{AppError, ErrorCode};
use serde::Serialize;

use super::error::ApiError;
use crate::auth::Caller;
use crate::records::NewAuditEvent;
use crate::state::AppState;

/// The session lock.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionStatusBody {
    /// Whether someone holds the lock.
    pub active: bool,
    /// The holder's WebSocket connection id.
    pub owner: Option<String>,
    /// The holder's user name.
    pub owner_user: Option<String>,
    /// When the holder took the lock (RFC 3339, UTC).
    pub since: Option<String>,
    /// The workflow run working under the lock, if one does.
    pub workflow_run: Option<WorkflowRunBody>,
}

/// A workflow run, as the session status names it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkflowRunBody {
    /// The run's id.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
}

impl From<SessionStatus> for SessionStatusBody {
    fn from(s: SessionStatus) -> Self {
        SessionStatusBody {
            active: s.active,
            owner: s.owner.map(|o| o.to_string()),
            owner_user: s.owner_user,
            since: s.since,
            workflow_run: s.workflow_run.map(|r| WorkflowRunBody {
                run_id: r.run_id.to_string(),
                workflow: r.workflow,
            }),
        }
    }
}

fn unavailable(e: actix::MailboxError) -> ApiError {
    AppError::with_detail(ErrorCode::Internal, format!("session lock unavailable: {e}")).into()
}

/// Who holds the session lock.
#[utoipa::path(tag = "session", responses((status = 200, body = SessionStatusBody)))]
#[get("/api/v1/session")]
pub async fn session_status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let s = state.session_lock.send(GetStatus).await.map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(SessionStatusBody::from(s)))
}

/// Takes the lock away from its holder, whose running command is stopped.
/// For a lock left behind by a client that cannot be reached.
#[utoipa::path(tag = "session", responses(
    (status = 200, body = SessionStatusBody),
    (status = 409, description = "no active session (50005)", body = super::error::ErrorResponse)))]
#[delete("/api/v1/session")]
pub async fn release_session(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let before = state.session_lock.send(GetStatus).await.map_err(unavailable)?;
    let s = state
        .session_lock
        .send(ForceRelease)
        .await
        .map_err(unavailable)??;
    let mut event = NewAuditEvent::new(caller.user(), "session.force_release")
        .by(Some(&caller.user()), caller.remote_addr());
    event.target = before.owner.map(|o| o.to_string());
    event.detail = Some(serde_json::json!({
        "previous_owner": before.owner.map(|o| o.to_string()),
        "previous_owner_user": before.owner_user,
    }));
    state.journal.audit(event);
    Ok(HttpResponse::Ok().json(SessionStatusBody::from(s)))
}
