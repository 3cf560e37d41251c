//! Signing in and out: `POST /api/v1/auth/login`, `POST /api/v1/auth/logout`,
//! `GET /api/v1/auth/me`.
//!
//! A sign-in is a server-side session: the cookie holds 32 random bytes,
//! the database only their SHA-256. The cookie is `HttpOnly`,
//! `SameSite=Strict`, `Path=/`, `Secure` when `PINKPAGE_COOKIE_SECURE=true`
//! or the client came over HTTPS through a trusted proxy. Failed logins
//! are throttled per name and per address (10007, 429 + `Retry-After`,
//! answered at once: see [`login`]) and audited within a bound
//! (`crate::auth::login_audit`, flushed by [`spawn_login_audit`]); an
//! unknown name costs the same Argon2 time as a wrong password, so timing
//! does not tell which names exist. A user holds at most
//! `PINKPAGE_SESSIONS_PER_USER` sign-in sessions: a sign-in past it ends
//! the user's oldest.

use std::time::Instant;

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use pinkpage_actors::access::{Credential, Principal, ServerScope};
use pinkpage_actors::secret::Secret;
use pinkpage_actors::{AppError, ErrorCode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::accounts::{self, password, token};
use crate::auth::login_audit;
use crate::auth::refresher::refresh;
use crate::auth::{cleared_session_cookie, presented_session_cookies, session_cookie, Caller};
use crate::records::{NewAuditEvent, Outcome};
use crate::state::AppState;

/// The sign-in form.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Account name.
    #[schema(min_length = 1, max_length = 64)]
    pub name: String,
    /// Password.
    #[schema(min_length = 1, max_length = 1024, format = Password)]
    pub password: String,
}

/// Who the caller is.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    /// Account name.
    pub user: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
    /// Server tags the account is limited to; `null` for every server.
    pub servers: Option<Vec<String>>,
    /// How the caller signed in: `session`, `token` or `proxy`.
    pub credential: &'static str,
}

impl Me {
    fn of(p: &Principal) -> Me {
        Me {
            user: p.user.to_string(),
            role: p.role.as_str().to_owned(),
            servers: match &p.servers {
                ServerScope::All => None,
                ServerScope::Tags(t) => Some(t.clone()),
            },
            credential: match p.credential {
                Credential::Session(_) => "session",
                Credential::Token(_) => "token",
                Credential::Proxy => "proxy",
            },
        }
    }
}

/// A login attempt reserved in the throttle; settled when dropped, so an
/// attempt that ends early (a store failure) frees its place.
struct Attempt {
    identity: std::sync::Arc<crate::auth::Identity>,
    name: String,
    remote: Option<std::net::IpAddr>,
    /// `Some(true)` signed in, `Some(false)` refused, `None` no verdict.
    outcome: Option<bool>,
    /// Whether `begin` reserved a place (a throttled attempt did not).
    begun: bool,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.begun {
            self.identity
                .throttle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .finish(&self.name, self.remote, Instant::now(), self.outcome);
        }
    }
}

/// The reply to a sign-out.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LogoutResult {
    /// Whether a sign-in session was ended.
    pub signed_out: bool,
}

fn audit(state: &AppState, caller: &Caller, action: &str, user: &str, detail: serde_json::Value) {
    let mut event = NewAuditEvent::new(user, action).on(user);
    if action == login_audit::FAILED {
        event.ended(Outcome::Refused, Some(ErrorCode::Unauthenticated.code()));
    }
    event.user = Some(user.to_owned());
    event.remote_addr = caller.remote_addr();
    event.detail = Some(detail);
    state.journal.audit(event);
}

/// Writes the summaries of failed and throttled logins whose interval
/// ended (every one so far with `all`, at shutdown).
pub fn flush_login_audit(state: &AppState, all: bool) {
    let rows = state
        .identity
        .login_audit
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .due(Utc::now(), all);
    for row in rows {
        state.journal.audit(row);
    }
}

/// Starts the task that writes login summaries once their interval ends;
/// it runs as long as the actix system does.
pub fn spawn_login_audit(state: web::Data<AppState>) {
    actix::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            flush_login_audit(&state, false);
        }
    });
}

/// Signs in with a name and password; sets the session cookie.
///
/// An attempt that must wait is answered at once, 429 with 10007 and
/// `Retry-After` (whole seconds, rounded up), its password unchecked:
/// holding the request open for the wait would let a flood of attempts
/// hold connections and workers for free, while an answer costs nothing
/// and tells an honest client exactly when to come back.
#[utoipa::path(tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = Me, description = "signed in; the session cookie is set"),
    (status = 400, description = "malformed request (10001)", body = super::error::ErrorResponse),
    (status = 401, description = "wrong name or password (10002)", body = super::error::ErrorResponse),
    (status = 429, description = "too many failed logins (10007); see Retry-After", body = super::error::ErrorResponse)))]
#[post("/api/v1/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { name, password } = body.into_inner();
    let password = Secret::new(password);
    let identity = &state.identity;
    // characters, as the document's maxLength counts them (no account
    // name is longer, so a longer one is refused before the throttle)
    if name.is_empty() || name.chars().count() > accounts::MAX_NAME_LEN {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            format!("name must be 1 to {} characters", accounts::MAX_NAME_LEN),
        )
        .into());
    }
    // A name that is no account is often a password typed into the wrong
    // field: the trail keeps only a fingerprint of it (enough to see one
    // name tried many times), never the text.
    let shown_name: String = if identity.read().account(&name).is_some() {
        name.chars().flat_map(char::escape_default).collect()
    } else {
        format!("unknown:{}", &token::digest(&name)[..12])
    };

    let begun = identity.throttle.lock().unwrap_or_else(|e| e.into_inner()).begin(
        &name,
        caller.remote,
        Instant::now(),
    );
    // Settles the reserved attempt on every way out of this handler.
    let mut attempt = Attempt {
        identity: state.identity.clone(),
        name: name.clone(),
        remote: caller.remote,
        outcome: None,
        begun: begun.is_ok(),
    };
    if let Err(wait) = begun {
        // counted, and written as one row per name and address per interval
        identity
            .login_audit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .throttled(&shown_name, caller.remote, Utc::now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let err = AppError::with_detail(
            ErrorCode::LoginThrottled,
            format!("too many failed logins for this name or address; try again in {secs} s"),
        );
        let mut res = actix_web::ResponseError::error_response(&ApiError::from(err));
        res.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(secs.max(1)),
        );
        return Ok(res);
    }

    let found = state.accounts.user_with_password(name.clone()).await?;
    // The password is checked off the event loop (Argon2 takes ~0.1 s by
    // design); an unknown name or one without a password spends the same.
    let user = found.as_ref().map(|(u, _)| u.clone());
    let verdict = identity
        .hashing(move || match &found {
            Some((_, hash)) => password::verify(&password, hash),
            None => {
                password::verify_dummy(&password);
                false
            }
        })
        .await?;
    let reason = match (&user, verdict) {
        (None, _) => Some("unknown name or no password"),
        (Some(_), false) => Some("wrong password"),
        (Some(u), true) if u.disabled => Some("account disabled"),
        (Some(_), true) => None,
    };
    if let Some(reason) = reason {
        attempt.outcome = Some(false);
        let one_by_one = identity
            .login_audit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failed(&shown_name, caller.remote, reason, Utc::now());
        if one_by_one {
            audit(
                &state,
                &caller,
                login_audit::FAILED,
                &shown_name,
                serde_json::json!({"name": shown_name, "reason": reason, "count": 1}),
            );
        }
        return Err(AppError::with_detail(ErrorCode::Unauthenticated, "wrong name or password").into());
    }
    let user = user.expect("checked above");
    attempt.outcome = Some(true);
    drop(attempt);

    let secret = token::new_session_secret();
    let digest = token::digest(secret.expose());
    let expires_at = Utc::now()
        + chrono::Duration::from_std(identity.settings.session_max).unwrap_or(chrono::Duration::days(1));
    let remote = caller.remote_addr();
    let started = state
        .accounts
        .create_session(
            user.name.clone(),
            digest,
            expires_at,
            remote,
            identity.settings.sessions_per_user,
        )
        .await?;
    let session_id = started.session.id.clone();
    // The new session (and the end of those past the per-user cap) reaches
    // the in-memory copy as the store's change since the copy's session log
    // number, applied in turn with every other change: no whole reload, and
    // no reload under way can drop the session it did not see. Ended
    // sessions close their WebSockets from there.
    refresh(identity, &state.accounts, &state.broadcast, false).await?;
    let principal = identity
        .read()
        .by_session(secret.expose(), Utc::now(), chrono::Duration::MAX)
        .map_err(|_| {
            // another sign-in of the same user, past the cap, ended it
            // already (only with a cap of one or two and parallel sign-ins)
            AppError::with_detail(
                ErrorCode::Unauthenticated,
                "the new session was ended at once by another sign-in of the same user (PINKPAGE_SESSIONS_PER_USER)",
            )
        })?;
    audit(
        &state,
        &caller,
        "auth.login",
        &user.name,
        serde_json::json!({"session": session_id, "ended_sessions": started.ended}),
    );
    let cookie = session_cookie(secret.expose().to_owned())
        .secure(identity.settings.cookie_secure || caller.https)
        .max_age(actix_web::cookie::time::Duration::seconds(
            identity.settings.session_max.as_secs() as i64,
        ))
        .finish();
    Ok(HttpResponse::Ok().cookie(cookie).json(Me::of(&principal)))
}

/// Ends the caller's sign-in session (its open WebSockets close) and
/// clears the cookie. Without a session it only clears the cookie.
#[utoipa::path(tag = "auth", responses((status = 200, body = LogoutResult)))]
#[post("/api/v1/auth/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut signed_out = false;
    // the first session cookie names the session to end (a stale one
    // names none)
    if let Some(Some(cookie)) = presented_session_cookies(&req).into_iter().next() {
        let id = state.identity.read().session_id_of(&cookie);
        if let Some(id) = id {
            // The database first, then a reload (which tells open
            // connections): a reload under way cannot bring it back.
            state.accounts.delete_session(id.clone()).await?;
            refresh(&state.identity, &state.accounts, &state.broadcast, false).await?;
            audit(
                &state,
                &caller,
                "auth.logout",
                &caller.user(),
                serde_json::json!({"session": id}),
            );
            signed_out = true;
        }
    }
    let gone = cleared_session_cookie();
    Ok(HttpResponse::Ok().cookie(gone).json(LogoutResult { signed_out }))
}

/// Who the caller is. Without credentials: 10002, whose detail says how to
/// create the first admin while no account exists.
#[utoipa::path(tag = "auth", responses(
    (status = 200, body = Me),
    (status = 401, description = "not signed in (10002)", body = super::error::ErrorResponse)))]
#[get("/api/v1/auth/me")]
pub async fn me(caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(Me::of(caller.principal()?)))
}
