//! The REST surface (`/api/v1/...`), its OpenAPI document and Swagger UI.
//!
//! One file per resource; [`configure`] mounts them all. Every handler
//! returns [`error::ApiError`] on failure, so every error body has the same
//! shape.

pub mod audit;
pub mod error;
pub mod errors;
pub mod health;
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
    paths(health::daemon_health, servers::list_servers, errors::list_errors, audit::list_audit,
        session::session_status, session::release_session, transfers::list_transfers),
    components(schemas(error::ErrorResponse, error::ErrorBodySchema)),
    tags(
        (name = "daemon", description = "The daemon itself"),
        (name = "servers", description = "Configured servers"),
        (name = "audit", description = "The audit trail"),
        (name = "session", description = "The session lock"),
        (name = "transfers", description = "Named server-to-server transfers"),
    )
)]
pub struct ApiDoc;

/// Mounts every REST route, the docs and the JSON error handlers.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().error_handler(|e, _| error::validation_error(e)))
        .app_data(web::QueryConfig::default().error_handler(|e, _| error::validation_error(e)))
        .app_data(web::PathConfig::default().error_handler(|e, _| error::validation_error(e)))
        .service(health::daemon_health)
        .service(servers::list_servers)
        .service(errors::list_errors)
        .service(audit::list_audit)
        .service(session::session_status)
        .service(session::release_session)
        .service(transfers::list_transfers)
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
