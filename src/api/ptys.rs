//! `GET /api/v1/ptys`: the PTYs running now that the caller may watch
//! (`terminal_watch` on `/ws/v1/terminal`): every one for an admin; for
//! others their own and the operator terminals shared with them, on
//! servers still in their scope. Decided by `crate::terminals::access`,
//! the same rule `terminal_watch` applies.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;

use super::error::ApiError;
use crate::auth::Caller;
use crate::state::AppState;
use crate::terminals::access::may_watch;

/// One running PTY.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PtyListing {
    /// Its id (what `terminal_watch` names).
    pub pty_id: String,
    /// `command` (STUB), `script`, `workflow_step` or `terminal`.
    pub kind: &'static str,
    /// Whose it is.
    pub user: String,
    /// The server.
    pub server: String,
    /// The command (empty for a login shell).
    pub command: String,
    /// When it was opened (RFC 3339).
    pub started: String,
    /// Output bytes so far.
    pub bytes: u64,
    /// Read-only watchers now.
    pub watchers: usize,
    /// The operator terminal it is, if one.
    pub terminal_id: Option<String>,
    /// The workflow run it is a step of, if one.
    pub run_id: Option<String>,
}

/// The running PTYs the caller may watch, oldest first.
#[utoipa::path(tag = "terminals", responses(
    (status = 200, body = [PtyListing]),
    (status = 401, body = super::error::ErrorResponse)))]
#[get("/api/v1/ptys")]
pub async fn list_ptys(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let who = caller.principal()?;
    let listed: Vec<PtyListing> = state
        .ptys
        .list()
        .into_iter()
        .filter(|p| {
            let entry = p.info.terminal_id.and_then(|t| state.terminals.get(t));
            may_watch(&state.settings(), who, &p.info, entry.as_ref()).is_ok()
        })
        .map(|p| PtyListing {
            pty_id: p.info.pty_id.to_string(),
            kind: p.info.kind.as_str(),
            user: p.info.user.to_string(),
            server: p.info.server,
            command: p.info.command,
            started: p.info.started.to_rfc3339(),
            bytes: p.bytes,
            watchers: p.watchers,
            terminal_id: p.info.terminal_id.map(|t| t.to_string()),
            run_id: p.info.run_id.map(|r| r.to_string()),
        })
        .collect();
    Ok(HttpResponse::Ok().json(listed))
}
