//! The REST surface (`/api/v1/...`), its OpenAPI document and Swagger UI.
//!
//! One file per resource; [`configure`] mounts them all. Every handler
//! returns [`error::ApiError`] on failure, so every error body has the same
//! shape.

pub mod audit;
pub mod bmx4;
pub mod bmx5;
pub mod check;
pub mod diff;
pub mod error;
pub mod errors;
pub mod health;
pub mod health_servers;
pub mod servers;
pub mod session;
pub mod transfers;

use actix_web::{web, HttpRequest, HttpResponse};
use pinkpage_actors::{AppError, ErrorCode};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use self::error::ApiError;

/// The OpenAPI document served at `/api-docs/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Pink-Page", description = "SSH terminals, session lock, server health, batch runs, SFTP and diffs. \
        The WebSocket protocol is described in docs/protocol.md; errors use the catalogue at /api/v1/errors."),
    paths(
        health::daemon_health,
        health_servers::list_server_health,
        health_servers::server_health,
        health_servers::server_health_events,
        servers::list_servers,
        check::check_server,
        errors::list_errors,
        audit::list_audit,
        session::session_status,
        session::release_session,
        bmx5::put_file,
        bmx5::get_file,
        bmx4::list_runs,
        bmx4::get_run,
        transfers::list_transfers,
        diff::diff_files,
        diff::diff_dirs,
        diff::diff_command,
    ),
    components(schemas(error::ErrorResponse, error::ErrorBodySchema, bmx5::UploadResult,
        diff::DiffResultSchema, diff::DiffDirsResultSchema, diff::DiffCommandResultSchema)),
    tags(
        (name = "daemon", description = "The daemon itself"),
        (name = "health", description = "Live health of each server and its transitions"),
        (name = "servers", description = "Configured servers"),
        (name = "audit", description = "The audit trail"),
        (name = "session", description = "The session lock"),
        (name = "bmx5", description = "Large files over SFTP, streamed (small ones go over /ws/v1/bmx5)"),
        (name = "bmx4", description = "Batch command runs"),
        (name = "transfers", description = "Named server-to-server transfers"),
        (name = "diff", description = "Compare files, directories and command output between two servers (also over /ws/v1/diff)"),
    )
)]
pub struct ApiDoc;

/// Mounts every REST route, the docs and the JSON error handlers.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().error_handler(|e, _| error::validation_error(e)))
        .app_data(web::QueryConfig::default().error_handler(|e, _| error::validation_error(e)))
        .app_data(web::PathConfig::default().error_handler(|e, _| error::validation_error(e)))
        .service(health::daemon_health)
        .service(health_servers::list_server_health)
        .service(health_servers::server_health)
        .service(health_servers::server_health_events)
        .service(servers::list_servers)
        .service(check::check_server)
        .service(errors::list_errors)
        .service(audit::list_audit)
        .service(session::session_status)
        .service(session::release_session)
        .service(bmx5::put_file)
        .service(bmx5::get_file)
        .service(bmx4::list_runs)
        .service(bmx4::get_run)
        .service(transfers::list_transfers)
        .service(diff::diff_files)
        .service(diff::diff_dirs)
        .service(diff::diff_command)
        .service(SwaggerUi::new("/swagger/docs/{_:.*}").url("/api-docs/openapi.json", ApiDoc::openapi()))
        .route("/", web::get().to(redirect_to_docs))
        .route("/swagger/docs", web::get().to(redirect_to_docs));
}

async fn redirect_to_docs() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", "/swagger/docs/"))
        .finish()
}

/// Every route nobody mounted: 10004 in the usual error body.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(AppError::with_detail(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    )
    .into())
}
