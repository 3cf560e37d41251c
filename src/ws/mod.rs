//! The WebSocket surface: one endpoint per domain, all served by the same
//! connection actor ([`connection::WsConnection`]) with a domain-specific
//! handler.
//!
//! - [`protocol`]: frames shared by every domain, and the one JSON parser.
//! - [`connection`]: the connection actor (welcome, heartbeat, bad frames,
//!   broadcasts, cleanup) and the [`connection::Domain`] trait.
//! - [`stub`]: `/ws/v1/stub`, the session lock and SSH commands.
//! - [`bmx4`]: `/ws/v1/bmx4`, batch command runs.
//! - [`bmx5`]: `/ws/v1/bmx5`, SFTP file work and remote scripts.
//! - [`task`]: the connection side of the task contract (give-up timers).
//! - [`diff`]: `/ws/v1/diff`, comparing files, directories and command
//!   output between two servers.

pub mod bmx4;
pub mod bmx5;
pub mod connection;
pub mod diff;
pub mod protocol;
pub mod stub;
pub mod task;

use actix_web::{get, web, HttpMessage, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use pinkpage_actors::{AppError, ErrorCode};

use self::connection::{Domain, WsConnection};
use crate::api::error::ApiError;
use crate::auth::Caller;
use crate::state::AppState;

/// Frames above this size are refused by the codec and close the
/// connection; frames between [`protocol::MAX_FRAME_BYTES`] and this get a
/// 31002 error and the connection stays open.
const HARD_FRAME_LIMIT: usize = 4 * 1024 * 1024;

/// Upgrades `req` to a WebSocket served by domain `D`.
/// Admission has already refused a caller without a principal or with a
/// foreign `Origin`; the principal travels with the connection.
fn upgrade<D: Domain + Default>(
    req: &HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let caller = req.extensions().get::<Caller>().cloned().ok_or_else(|| {
        ApiError::from(AppError::with_detail(
            ErrorCode::Internal,
            "upgrade did not pass admission",
        ))
    })?;
    let principal = caller
        .principal
        .clone()
        .ok_or_else(|| ApiError::from(AppError::with_detail(ErrorCode::Unauthenticated, "sign in first")))?;
    ws::WsResponseBuilder::new(
        WsConnection::new(state, principal, caller.remote, D::default()),
        req,
        stream,
    )
    .frame_size(HARD_FRAME_LIMIT)
    .start()
}

/// `/ws/v1/stub`: terminals and the session lock.
#[get("/ws/v1/stub")]
pub async fn stub_ws(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    upgrade::<stub::Stub>(&req, stream, state)
}

/// `/ws/v1/bmx4`: batch command runs.
#[get("/ws/v1/bmx4")]
pub async fn bmx4_ws(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    upgrade::<bmx4::Bmx4>(&req, stream, state)
}

/// `/ws/v1/bmx5`: SFTP file work and remote scripts.
#[get("/ws/v1/bmx5")]
pub async fn bmx5_ws(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    upgrade::<bmx5::Bmx5>(&req, stream, state)
}

/// `/ws/v1/diff`: compare files, directories and command output.
#[get("/ws/v1/diff")]
pub async fn diff_ws(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    upgrade::<diff::Diff>(&req, stream, state)
}

/// Mounts every WebSocket endpoint.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(stub_ws);
    cfg.service(bmx4_ws);
    cfg.service(bmx5_ws);
    cfg.service(diff_ws);
}
