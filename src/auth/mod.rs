//! Identity and access: who is asking, from where, and whether they may.
//!
//! - [`table`]: the one access table (every route and WebSocket message
//!   type and what it needs), mirrored in `docs/security.md`.
//! - [`directory`]: the in-memory copy of accounts, tokens and sign-in
//!   sessions that credentials are checked against.
//! - [`origin`]: the request's real client, scheme and host (forwarding
//!   headers only from trusted proxies), the `Host` and `Origin` checks and
//!   CORS.
//! - [`throttle`]: slowing down repeated failed logins.
//! - [`login_audit`]: bounding the audit rows of failed and throttled
//!   logins (one summary row per name and address per interval).
//! - [`refresher`]: keeps the directory in step with the database and tells
//!   open WebSockets when credentials change.
//! - [`rejudge`]: whether running work may go on once access changed (the
//!   one rule every owner of running work applies; 10010 when not).
//!
//! The admission middleware (`src/admission.rs`) calls [`Identity::admit`]
//! for every request; handlers read the result with the [`Caller`]
//! extractor.

pub mod directory;
pub mod login_audit;
pub mod origin;
pub mod refresher;
pub mod rejudge;
pub mod table;
pub mod throttle;

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, RwLock};

use actix_web::http::header;
use actix_web::HttpRequest;
use chrono::Utc;
use pinkpage_actors::access::{Need, Principal};
use pinkpage_actors::{AppError, ErrorCode};

use self::directory::{Directory, Refusal};
use self::login_audit::LoginAudit;
use self::throttle::LoginThrottle;
use crate::settings::access::AccessSettings;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "pinkpage_session";

/// The session cookie holding `value`: `HttpOnly`, `SameSite=Strict`,
/// `Path=/` (the caller adds `Secure` and the lifetime).
pub fn session_cookie(value: String) -> actix_web::cookie::CookieBuilder<'static> {
    actix_web::cookie::Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Strict)
}

/// The `Set-Cookie` that makes the browser drop its session cookie.
pub fn cleared_session_cookie() -> actix_web::cookie::Cookie<'static> {
    let mut gone = session_cookie(String::new()).finish();
    gone.make_removal();
    gone
}

/// Every session cookie a request presents, in every `Cookie` header, in
/// order: `Some(value)` for a `pinkpage_session=value` pair, `None` for
/// one that names the cookie without a usable value (`pinkpage_session`
/// alone, bytes that are not text).
///
/// Read here rather than with actix's cookie jar: the jar drops a whole
/// header it cannot parse, so a malformed session cookie (or one beside a
/// malformed cookie of another site) would look like no cookie at all, and
/// a bearer token beside it would be accepted. A credential that is
/// presented is judged, well-formed or not.
pub fn presented_session_cookies(req: &HttpRequest) -> Vec<Option<String>> {
    let name = SESSION_COOKIE.as_bytes();
    req.headers()
        .get_all(header::COOKIE)
        .flat_map(|h| h.as_bytes().split(|b| *b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let (key, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (pair[..i].trim_ascii(), Some(pair[i + 1..].trim_ascii())),
                None => (pair, None),
            };
            (key == name).then(|| {
                // RFC 6265: a value may be wrapped in double quotes
                let value = value.map(|v| {
                    v.strip_prefix(b"\"")
                        .and_then(|v| v.strip_suffix(b"\""))
                        .unwrap_or(v)
                });
                value.and_then(|v| std::str::from_utf8(v).ok()).map(str::to_owned)
            })
        })
        .collect()
}

/// Who is asking, as admission found: attached to every request that got
/// past it, read by handlers with this extractor.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The signed-in principal; `None` only on routes anyone may use.
    pub principal: Option<Principal>,
    /// The client's address (from a trusted proxy's `X-Forwarded-For`).
    pub remote: Option<IpAddr>,
    /// Whether the client reached us over HTTPS (directly or via a trusted
    /// proxy): decides the cookie's `Secure`.
    pub https: bool,
}

impl Caller {
    /// The principal, or 10002 (admission lets no route that needs one
    /// through without it, so this only guards against a table mistake).
    pub fn principal(&self) -> Result<&Principal, AppError> {
        self.principal
            .as_ref()
            .ok_or_else(|| AppError::with_detail(ErrorCode::Unauthenticated, "sign in first"))
    }

    /// The user name for audit rows (`anonymous` without a principal).
    pub fn user(&self) -> String {
        self.principal
            .as_ref()
            .map(|p| p.user.to_string())
            .unwrap_or_else(|| "anonymous".to_owned())
    }

    /// The client address for audit rows.
    pub fn remote_addr(&self) -> Option<String> {
        self.remote.map(|ip| ip.to_string())
    }
}

/// The daemon's identity state: the directory, the login throttle and the
/// access settings. Shared by every worker through `AppState`.
///
/// Who owns what: the directory is behind a `RwLock` (see
/// [`directory`] for who writes); the throttle and the login audit behind
/// `Mutex`es taken only for a map update. None of these is ever held across
/// an `.await`, so no request can wait on another's I/O. `catching_up` is
/// the one lock held across the store's answer: it makes the directory's
/// writers take turns (see [`refresher::refresh`]).
pub struct Identity {
    /// The checked copy of accounts, tokens and sessions.
    pub directory: RwLock<Directory>,
    /// Held by whoever brings the directory up to date with the store, so
    /// two callers never apply answers out of order or reload whole side
    /// by side (a second waits, then finds little or nothing left to do).
    pub catching_up: tokio::sync::Mutex<()>,
    /// Whole reloads of the directory since the start (logged with each):
    /// a sign-in must not cause one.
    pub reloads: AtomicU64,
    /// Failed-login counters.
    pub throttle: Mutex<LoginThrottle>,
    /// The bounded audit of failed and throttled logins.
    pub login_audit: Mutex<LoginAudit>,
    /// The access settings.
    pub settings: AccessSettings,
    /// Password hashes computed at once. Argon2id takes 64 MiB and ~0.2 s
    /// of a core by design: a flood of logins waits here instead of
    /// growing the daemon by 64 MiB each.
    pub hashing: tokio::sync::Semaphore,
}

/// Most password hashes computed at the same time (one per core of the
/// machines Pink-Page is sized for).
pub const CONCURRENT_HASHES: usize = 2;

impl Identity {
    /// An identity with an empty directory (the refresher fills it before
    /// the daemon listens).
    pub fn new(settings: AccessSettings) -> Identity {
        Identity {
            directory: RwLock::new(Directory::default()),
            catching_up: tokio::sync::Mutex::new(()),
            reloads: AtomicU64::new(0),
            throttle: Mutex::new(LoginThrottle::new(
                settings.login_max_failures,
                settings.login_window,
                settings.login_max_delay,
            )),
            login_audit: Mutex::new(LoginAudit::new(
                settings.login_audit_interval,
                settings.login_audit_rows,
            )),
            hashing: tokio::sync::Semaphore::new(CONCURRENT_HASHES),
            settings,
        }
    }

    /// The idle lifetime of a sign-in session, as a chrono duration.
    pub fn idle(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.settings.session_idle).unwrap_or(chrono::Duration::MAX)
    }

    /// Reads the directory (a poisoned lock means a panic elsewhere while
    /// writing; the copy is still whole because writers swap or insert
    /// whole entries).
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        self.directory.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the directory.
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, Directory> {
        self.directory.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The principal behind a request's credential, if it presents one:
    /// `Authorization: Bearer`, then the session cookie, then (from a
    /// trusted proxy only) the proxy's user header. A credential in the URL
    /// is never looked at. A credential that is presented but not good is a
    /// 10002, even on routes anyone may use: a client should learn at once
    /// that its token stopped working. Every credential presented must be
    /// good: a good token beside a forged or stale cookie is refused, so no
    /// credential can mask another.
    pub fn authenticate(
        &self,
        req: &HttpRequest,
        from_trusted_proxy: bool,
    ) -> Result<Option<Principal>, AppError> {
        let now = Utc::now();
        let refused = |r: Refusal| AppError::with_detail(ErrorCode::Unauthenticated, r.reason());
        let mut found = None;
        if let Some(value) = req.headers().get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .map(str::trim)
                .ok_or_else(|| {
                    AppError::with_detail(
                        ErrorCode::Unauthenticated,
                        "Authorization must be 'Bearer <token>'",
                    )
                })?;
            found = Some(self.read().by_token(token, now).map_err(refused)?);
        }
        for cookie in presented_session_cookies(req) {
            let by_cookie = match cookie {
                Some(value) => self.read().by_session(&value, now, self.idle()),
                None => Err(Refusal::Unknown),
            }
            .map_err(refused)?;
            found = found.or(Some(by_cookie));
        }
        if found.is_some() {
            return Ok(found);
        }
        if let Some(user) = self.proxy_user(req, from_trusted_proxy) {
            return self.read().by_proxy(&user).map(Some).map_err(refused);
        }
        Ok(None)
    }

    /// The user a trusted proxy names, if the proxy header is configured
    /// and the request came through a trusted proxy.
    pub fn proxy_user(&self, req: &HttpRequest, from_trusted_proxy: bool) -> Option<String> {
        let name = self.settings.proxy_user_header.as_ref()?;
        if !from_trusted_proxy {
            return None;
        }
        let user = req.headers().get(name)?.to_str().ok()?.trim();
        (!user.is_empty()).then(|| user.to_owned())
    }

    /// Re-checks a principal made earlier (an open WebSocket's); the answer
    /// carries the account's current role and servers.
    pub fn recheck(&self, p: &Principal) -> Result<Principal, Refusal> {
        self.read().recheck(p, Utc::now(), self.idle())
    }

    /// Marks the sign-in session behind `p` used (a WebSocket frame).
    pub fn touch(&self, p: &Principal) {
        self.read().touch(p, Utc::now(), self.idle());
    }

    /// Runs `hash` (an Argon2 hash or verification) on a blocking thread,
    /// once one of the [`CONCURRENT_HASHES`] places is free.
    pub async fn hashing<T: Send + 'static>(
        &self,
        hash: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let internal = |e: &dyn std::fmt::Display| AppError::with_detail(ErrorCode::Internal, e.to_string());
        let _permit = self.hashing.acquire().await.map_err(|e| internal(&e))?;
        actix_web::web::block(hash).await.map_err(|e| internal(&e))
    }

    /// Whether any account exists.
    pub fn has_accounts(&self) -> bool {
        self.read().has_accounts()
    }
}

/// Decides `need` for `caller`: 10002 without a principal, 10003 when the
/// principal's role falls short.
pub fn check_need(need: Need, principal: Option<&Principal>, first_admin_hint: bool) -> Result<(), AppError> {
    if need == Need::Anyone {
        return Ok(());
    }
    let Some(p) = principal else {
        let detail = if first_admin_hint {
            format!(
                "sign in first; no account exists yet: create the first admin with `{}`",
                crate::accounts::first_admin_hint()
            )
        } else {
            "sign in first (POST /api/v1/auth/login, or Authorization: Bearer <token>)".to_owned()
        };
        return Err(AppError::with_detail(ErrorCode::Unauthenticated, detail));
    };
    if p.meets(need) {
        Ok(())
    } else {
        Err(AppError::with_detail(
            ErrorCode::Forbidden,
            format!("needs the {} role; {} is {}", need.as_str(), p.user, p.role),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;
    use actix_web::test::TestRequest;

    fn presented(headers: &[&[u8]]) -> Vec<Option<String>> {
        let mut req = TestRequest::default();
        for h in headers {
            req = req.append_header((header::COOKIE, HeaderValue::from_bytes(h).unwrap()));
        }
        presented_session_cookies(&req.to_http_request())
    }

    #[test]
    fn every_session_cookie_presented_is_found_well_formed_or_not() {
        let some = |v: &str| Some(v.to_owned());
        assert_eq!(presented(&[]), vec![]);
        assert_eq!(presented(&[b"theme=dark; junk"]), vec![]);
        assert_eq!(presented(&[b"pinkpage_session_old=x"]), vec![]);
        assert_eq!(presented(&[b"pinkpage_session=abc"]), vec![some("abc")]);
        assert_eq!(presented(&[b"pinkpage_session=\"abc\""]), vec![some("abc")]);
        assert_eq!(presented(&[b"pinkpage_session="]), vec![some("")]);
        // no value: presented, and not good
        assert_eq!(presented(&[b"pinkpage_session"]), vec![None]);
        assert_eq!(presented(&[b" pinkpage_session ; a=b"]), vec![None]);
        // a malformed neighbour does not hide it (actix's jar drops the header)
        assert_eq!(presented(&[b"junk; pinkpage_session=abc"]), vec![some("abc")]);
        assert_eq!(presented(&[b"pinkpage_session=\xff"]), vec![None]);
        // every one, across headers
        assert_eq!(
            presented(&[b"pinkpage_session=a", b"x=1; pinkpage_session=b"]),
            vec![some("a"), some("b")]
        );
    }
}
