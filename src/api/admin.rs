//! Operations on the daemon itself (admins): `POST /api/v1/admin/backup`
//! writes a consistent copy of the database while the daemon serves, into
//! `PINKPAGE_BACKUP_DIR` under a name the daemon chooses (never a path from
//! the request), owner-only; `POST /api/v1/admin/reload` reads the
//! configuration again, as SIGHUP does (`crate::reload`).

use std::os::unix::fs::DirBuilderExt;

use actix_web::{post, web, HttpResponse};
use pinkpage_actors::{AppError, ErrorCode};
use serde::Serialize;

use super::error::ApiError;
use crate::auth::Caller;
use crate::records::audit::{NewAuditEvent, Outcome};
use crate::state::AppState;

/// A finished backup.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BackupDone {
    /// The copy's file name in `PINKPAGE_BACKUP_DIR`.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// When it was taken (RFC 3339, UTC).
    pub at: String,
}

/// Copies the database into `PINKPAGE_BACKUP_DIR` while the daemon
/// serves (terminals, runs and writers go on); audited. Back up the audit
/// key and the recordings directory beside it (docs/operations.md).
#[utoipa::path(tag = "daemon", responses(
    (status = 201, body = BackupDone),
    (status = 401, body = super::error::ErrorResponse),
    (status = 403, body = super::error::ErrorResponse),
    (status = 503, description = "the copy could not be written (40000)", body = super::error::ErrorResponse)))]
#[post("/api/v1/admin/backup")]
pub async fn backup(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let who = caller.principal()?;
    let dir = state.settings().backup_dir.clone();
    let at = chrono::Utc::now();
    let file = format!(
        "pinkpage-{}-{}.{}",
        at.format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8],
        state.stores.backup.extension()
    );
    let made = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    let into = dir.join(&file);
    let result = match made {
        Ok(()) => state.stores.backup.backup(into).await,
        Err(e) => Err(AppError::with_detail(
            ErrorCode::Database,
            format!("cannot make {}: {e}", dir.display()),
        )),
    };
    let mut row = NewAuditEvent::new("rest", "backup.create")
        .by(Some(&who.user), caller.remote_addr())
        .in_domain("rest")
        .on(file.clone());
    match &result {
        Ok(bytes) => row.bytes = i64::try_from(*bytes).ok(),
        Err(e) => row.ended(Outcome::Failed, Some(e.code.code())),
    }
    state.journal.audit(row);
    let bytes = result?;
    log::info!(file = file.as_str(), bytes = bytes; "database backed up");
    Ok(HttpResponse::Created().json(BackupDone {
        file,
        bytes,
        at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
}

/// Reads the servers file and `.env` again and applies what can change
/// while the daemon serves, as SIGHUP does (docs/operations.md, "Reload
/// without a restart"); audited. An invalid configuration changes nothing
/// (10012, saying why).
#[utoipa::path(tag = "daemon", responses(
    (status = 200, body = crate::reload::Reloaded),
    (status = 401, body = super::error::ErrorResponse),
    (status = 403, body = super::error::ErrorResponse),
    (status = 422, description = "the configuration is not valid; nothing changed (10012)", body = super::error::ErrorResponse)))]
#[post("/api/v1/admin/reload")]
pub async fn reload(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let who = caller.principal()?;
    let asker = crate::reload::Asker {
        actor: "rest",
        user: Some(who.user.to_string()),
        remote: caller.remote_addr(),
    };
    // files are read off the event loop
    let state = state.into_inner();
    let report = actix_web::rt::task::spawn_blocking(move || crate::reload::reload(&state, &asker))
        .await
        .map_err(|e| AppError::with_detail(ErrorCode::Internal, e.to_string()))??;
    Ok(HttpResponse::Ok().json(report))
}
