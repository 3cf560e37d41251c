//! Admission: the one place every HTTP request and WebSocket upgrade passes
//! through before it reaches a handler.
//!
//! Today it gives each request an id and logs method, path, status and
//! duration. Authentication plugs in here (refuse with 10002 / 10003 before
//! `next.call`), so no route can be added that skips it: the middleware
//! wraps the whole `App`, default service included.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::Error;

/// The admission middleware; mounted with `middleware::from_fn(admit)`.
pub async fn admit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let res = next.call(req).await?;
    log::info!(
        target: "pinkpage::http",
        method = method.as_str(),
        path = path.as_str(),
        status = res.status().as_u16(),
        peer = peer.as_str(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        "request"
    );
    Ok(res)
}
