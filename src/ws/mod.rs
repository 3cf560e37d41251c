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
//! - [`stall`]: the body stream that stamps each poll and the watchdog
//!   that drops a client which stopped reading.
//! - [`reader`]: the incoming frames, read so that what a message still
//!   arriving holds is bounded per connection and in all.
//! - [`terminal`]: `/ws/v1/terminal`, operators' own terminals (outside
//!   the session lock, surviving a dropped connection) and watching PTYs.
//! - [`diff`]: `/ws/v1/diff`, comparing files, directories and command
//!   output between two servers.

pub mod bmx4;
pub mod bmx5;
pub mod connection;
pub mod diff;
#[cfg(test)]
mod fuzz;
pub mod protocol;
pub mod reader;
pub mod shared_frames;
pub mod stall;
pub mod stub;
pub mod task;
pub mod terminal;

use actix_web::{get, web, HttpMessage, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use pinkpage_actors::{AppError, ErrorCode};

use self::connection::{Domain, WsConnection};
use crate::api::error::ApiError;
use crate::auth::Caller;
use crate::state::AppState;

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
    // The caps are checked before the handshake, so a refused client gets
    // an HTTP error with the JSON body, not an accepted-then-closed socket.
    let id = pinkpage_actors::ConnectionId::new();
    let admission = state.connections.admit(
        id,
        D::NAME,
        principal.user.clone(),
        caller.remote,
        duplicate_socket(req),
    );
    let admission = admission.map_err(ApiError::from)?;
    let mut res = ws::handshake(req)?;
    let state_frames = state.clone();
    let conn = WsConnection::new(
        id,
        state,
        principal,
        caller.remote,
        admission.watch().clone(),
        D::default(),
    );
    // Frames are read by our own reader, which bounds what an incomplete
    // message holds (`reader`); the context's own would keep whole frames
    // of up to its limit, so it is given nothing to read.
    let frames = reader::FrameReader::new(
        stream,
        state_frames.frame_budget.clone(),
        state_frames.settings().caps.ws_frame_allowance,
    );
    let nothing = futures_util::stream::pending::<Result<web::Bytes, actix_web::error::PayloadError>>();
    let body = ws::WebsocketContext::with_factory(nothing, move |ctx| {
        use actix::AsyncContext;
        ctx.add_stream(frames);
        conn
    });
    Ok(res.streaming(stall::Watched::new(body, admission)))
}

/// Our own duplicate of the request's TCP socket (see `crate::connections`), when it
/// came over TCP.
fn duplicate_socket(req: &HttpRequest) -> Option<std::net::TcpStream> {
    let fd = req.conn_data::<crate::connections::SocketFd>()?.0;
    // SAFETY: `fd` is the descriptor of the connection this request came
    // on, recorded by `on_connect`; the connection is open while its
    // request is handled (here), so the descriptor is valid for this
    // borrow, which only duplicates it.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    match borrowed.try_clone_to_owned() {
        Ok(owned) => Some(std::net::TcpStream::from(owned)),
        Err(e) => {
            // Only the stall watchdog's shutdown is lost; it still stops
            // the connection's tasks and releases its lock.
            log::warn!(error = e.to_string(); "cannot duplicate a websocket's socket");
            None
        }
    }
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

/// `/ws/v1/terminal`: operator terminals and watching PTYs.
#[get("/ws/v1/terminal")]
pub async fn terminal_ws(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    upgrade::<terminal::TerminalConn>(&req, stream, state)
}

/// Mounts every WebSocket endpoint.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(terminal_ws);
    cfg.service(stub_ws);
    cfg.service(bmx4_ws);
    cfg.service(bmx5_ws);
    cfg.service(diff_ws);
}
