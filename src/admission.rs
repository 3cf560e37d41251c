//! Admission: the one place every HTTP request and WebSocket upgrade passes
//! through before it reaches a handler. The middleware wraps the whole
//! `App`, default service included, so no route can be added that skips
//! it.
//!
//! In order:
//! 0. a connection not admitted yet whose address has too many such
//!    connections is refused (30005; `crate::limits::pending`);
//! 1. the real client (a trusted proxy's forwarding headers, else the TCP
//!    peer), then the `Host` check (10006, against DNS rebinding);
//! 2. a CORS preflight is answered here (allowed origins only);
//! 3. the `Origin` check (10005, against cross-site WebSocket hijacking and
//!    request forgery): a foreign origin is refused even with good
//!    credentials;
//! 4. the credential (bearer token, session cookie, trusted proxy header),
//!    checked against the in-memory directory (10002 when presented but
//!    not good);
//! 5. what the route needs, from the access table (`src/auth/table.rs`):
//!    10002 without a principal, 10003 when the role falls short; a route
//!    that starts new remote work gets 40000 while audit rows cannot be
//!    written (the store's journal);
//! 6. the connection counts as admitted; the body is read whole within its
//!    caller's size and idle limits (10011, 10009;
//!    `crate::limits::bodies`), except a streamed upload's;
//! 7. the [`Caller`] is attached for handlers, the response gets CORS
//!    headers for a listed origin, and one log line records the request
//!    with its user.
//!
//! A refusal that leaves a body unread (or a 30005) closes the connection,
//! so the server neither drains an unwanted body nor keeps the place.

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage, HttpResponse, ResponseError};
use pinkpage_actors::access::{Need, Role};
use pinkpage_actors::{AppError, ErrorCode};

use crate::api::error::ApiError;
use crate::auth::origin::{self, OriginVerdict};
use crate::auth::{check_need, presented_session_cookies, table, Caller};
use crate::limits::bodies::{self, BodyRule};
use crate::limits::pending::PendingConn;
use crate::state::AppState;

/// The admission middleware; mounted with `middleware::from_fn(admit)`.
pub async fn admit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.path().to_owned();
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .expect("AppState is registered on the App");
    let identity = &state.identity;

    let client = origin::client(req.request(), &identity.settings);
    let remote = client.remote.map(|ip| ip.to_string()).unwrap_or_default();
    // The pattern of the route the router will take: it matches the
    // decoded path (`/api/v1/%75sers` routes to `/api/v1/users`), so
    // the need is looked up with that path, never the raw one.
    let pattern = req
        .request()
        .resource_map()
        .match_pattern(req.match_info().as_str());
    let (has_body, _) = bodies::announced(&req);
    let decided = async {
        if let Some(pending) = req.conn_data::<PendingConn>() {
            pending.check()?;
        }
        origin::check_host(&client, &identity.settings)?;
        let verdict = origin::check_origin(req.request(), &client, &identity.settings)?;
        // a preflight is answered here and reaches no handler: no caller
        if origin::is_preflight(req.request()) {
            return Ok((verdict, None));
        }
        let need = table::route_need(req.method(), pattern.as_deref());
        let principal = match identity.authenticate(req.request(), client.via_trusted_proxy) {
            Err(e) if e.code == ErrorCode::Unauthenticated => {
                match (
                    identity.proxy_user(req.request(), client.via_trusted_proxy),
                    identity.settings.proxy_autocreate_role,
                ) {
                    (Some(user), Some(role)) if identity.read().account(&user).is_none() => {
                        create_proxy_account(&state, &user, role, client.remote).await?;
                        identity.authenticate(req.request(), client.via_trusted_proxy)?
                    }
                    // A stale cookie (an idle session) must not lock its
                    // browser out of signing in again: routes anyone may
                    // use go on as anonymous. A bad bearer token is still
                    // refused there, so a script learns its token died.
                    _ if need == Need::Anyone
                        && !req.headers().contains_key(actix_web::http::header::AUTHORIZATION) =>
                    {
                        None
                    }
                    _ => return Err(e),
                }
            }
            other => other?,
        };
        check_need(need, principal.as_ref(), !identity.has_accounts())?;
        if table::route_starts_work(req.method(), pattern.as_deref()) {
            state.journal.admit_new_work(req.path())?;
        }
        Ok((
            verdict,
            Some(Caller {
                principal,
                remote: client.remote,
                https: client.scheme == "https",
            }),
        ))
    }
    .await;
    if decided.is_ok() {
        if let Some(pending) = req.conn_data::<PendingConn>() {
            pending.admitted();
        }
    }
    let decided = match decided {
        Ok((verdict, Some(caller))) => {
            let rule = BodyRule::of(
                req.method().as_str(),
                pattern.as_deref(),
                caller.principal.is_some(),
                &state.settings().work_limits,
            );
            bodies::take_whole(&mut req, rule, state.settings().work_limits.body_idle_timeout)
                .await
                .map(|()| (verdict, Some(caller)))
        }
        other => other,
    };

    let (res, user) = match decided {
        Err(err) => {
            let mut res = ApiError::from(err.clone()).error_response();
            if has_body || err.code == ErrorCode::TooManyPending {
                res.head_mut()
                    .set_connection_type(actix_http::ConnectionType::Close);
            }
            // A refused session cookie is cleared, so the browser stops
            // sending it (it is HttpOnly: the page cannot).
            if err.code == ErrorCode::Unauthenticated && !presented_session_cookies(req.request()).is_empty()
            {
                let gone = crate::auth::cleared_session_cookie();
                let _ = res.add_cookie(&gone);
            }
            (req.into_response(res).map_into_right_body(), None)
        }
        Ok((verdict, None)) => {
            let mut res = HttpResponse::NoContent().finish();
            // Only a listed origin is told it may go on; the browser stops
            // any other (a same-origin page never preflights).
            if let OriginVerdict::Listed(o) = &verdict {
                origin::cors_headers(o, res.headers_mut());
                origin::preflight_headers(res.headers_mut());
            }
            (req.into_response(res).map_into_right_body(), None)
        }
        Ok((verdict, Some(caller))) => {
            let user = caller.principal.as_ref().map(|p| p.user.clone());
            req.extensions_mut().insert(caller);
            let mut res = next.call(req).await?.map_into_left_body();
            if let OriginVerdict::Listed(o) = &verdict {
                origin::cors_headers(o, res.headers_mut());
            }
            (res, user)
        }
    };
    log::info!(
        target: "pinkpage::http",
        method = method.as_str(),
        path = path.as_str(),
        status = res.status().as_u16(),
        peer = remote.as_str(),
        user = user.as_deref().unwrap_or(""),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        "request"
    );
    Ok(res)
}

/// Creates the local account of a user a trusted proxy vouches for, with
/// the configured role and no password (it can sign in only through the
/// proxy); audited, and effective before the request goes on.
async fn create_proxy_account(
    state: &AppState,
    user: &str,
    role: Role,
    remote: Option<std::net::IpAddr>,
) -> Result<(), AppError> {
    crate::accounts::validate_name(user).map_err(AppError::from)?;
    match state.accounts.add_user(user.to_owned(), role, None, None).await {
        Ok(_) => {}
        // the name was checked above and no tags are given, so a
        // refusal here is a name taken: another request made the account
        // a moment ago
        Err(e) if e.code == ErrorCode::Validation => {}
        Err(e) => return Err(e),
    }
    let mut event = crate::records::NewAuditEvent::new("proxy", "user.autocreate")
        .in_domain("auth")
        .on(user)
        .by(Some(user), remote.map(|ip| ip.to_string()));
    event.detail = Some(serde_json::json!({"name": user, "role": role.as_str()}));
    state.journal.audit(event);
    crate::auth::refresher::refresh(&state.identity, &state.accounts, &state.broadcast, true).await?;
    Ok(())
}
