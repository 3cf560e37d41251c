//! Where a request really comes from, and the `Host` / `Origin` checks.
//!
//! Forwarding headers (`X-Forwarded-For`, `-Proto`, `-Host`) are believed
//! only when the TCP peer is a trusted proxy; otherwise anyone could claim
//! any address, scheme or host.
//!
//! - `Host` must be an allowed host name: a DNS-rebinding page reaches us
//!   with its own name in `Host`, so it is refused (10006).
//! - `Origin`, when present, must be the daemon's own origin (the scheme
//!   and host the request came in on) or a listed one: a page on another
//!   site can open a WebSocket or post a form with the operator's cookie,
//!   and this is what stops it (10005). A request without `Origin` (curl,
//!   scripts) is judged by its credentials alone.

use std::net::IpAddr;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::Method;
use actix_web::HttpRequest;
use pinkpage_actors::{AppError, ErrorCode};

use crate::settings::access::{normalise_origin, AccessSettings};

/// The request's client, scheme and host after believing (or not) a proxy.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client's address.
    pub remote: Option<IpAddr>,
    /// Whether the TCP peer is a trusted proxy.
    pub via_trusted_proxy: bool,
    /// `https` or `http`.
    pub scheme: String,
    /// The host the client asked for (`name[:port]`, lower case): a
    /// trusted proxy's `X-Forwarded-Host`, else the `Host` header.
    pub host: Option<String>,
    /// The `Host` header itself, checked whatever a proxy says: a browser
    /// on the proxy's machine can add forwarding headers to a rebound
    /// page's request, but cannot change its `Host`.
    pub direct_host: Option<String>,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Works out the client of `req` under `settings`.
pub fn client(req: &HttpRequest, settings: &AccessSettings) -> Client {
    let peer = req.peer_addr().map(|a| a.ip());
    // the daemon's own TLS (PINKPAGE_TLS_CERT): the connection is HTTPS
    let own = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let trusted = peer.is_some_and(|ip| settings.is_trusted_proxy(ip));
    let headers = req.headers();
    let direct_host = header_str(headers, "host").map(str::to_ascii_lowercase);
    if !trusted {
        return Client {
            remote: peer,
            via_trusted_proxy: false,
            scheme: own.to_owned(),
            host: direct_host.clone(),
            direct_host,
        };
    }
    // The rightmost address that is not itself a trusted proxy is the
    // client: everything left of it could have been written by anyone.
    let remote = header_str(headers, "x-forwarded-for")
        .and_then(|xff| {
            xff.rsplit(',')
                .filter_map(|a| a.trim().parse::<IpAddr>().ok())
                .find(|ip| !settings.is_trusted_proxy(*ip))
        })
        .or(peer);
    // Of a list, the rightmost value is the one the nearest (trusted)
    // proxy wrote; the ones left of it came from further away.
    let last = |name: &str| {
        header_str(headers, name)
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
    };
    let scheme = match last("x-forwarded-proto") {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        Some(_) => "http",
        None => own,
    };
    let host = last("x-forwarded-host")
        .map(str::to_ascii_lowercase)
        .or_else(|| direct_host.clone());
    Client {
        remote,
        via_trusted_proxy: true,
        scheme: scheme.to_owned(),
        host,
        direct_host,
    }
}

/// Splits `host[:port]` (IPv6 in brackets) into the name and the port.
fn split_host(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        match host.find(']') {
            Some(end) => {
                let rest = &host[end + 1..];
                (&host[..=end], rest.strip_prefix(':'))
            }
            None => (host, None),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    }
}

/// Refuses a request whose `Host`, or whose trusted proxy's
/// `X-Forwarded-Host`, is not allowed (10006).
pub fn check_host(client: &Client, settings: &AccessSettings) -> Result<(), AppError> {
    let Some(direct) = client.direct_host.as_deref() else {
        return Err(AppError::with_detail(
            ErrorCode::HostRefused,
            "the request has no Host header",
        ));
    };
    allowed_host(direct, settings)?;
    match client.host.as_deref() {
        Some(forwarded) if forwarded != direct => allowed_host(forwarded, settings),
        _ => Ok(()),
    }
}

fn allowed_host(host: &str, settings: &AccessSettings) -> Result<(), AppError> {
    let (name, _) = split_host(host);
    let allowed = settings
        .allowed_hosts
        .iter()
        .any(|a| a == host || (split_host(a).1.is_none() && a == name));
    if allowed {
        Ok(())
    } else {
        let shown: String = host.chars().take(200).flat_map(char::escape_default).collect();
        Err(AppError::with_detail(
            ErrorCode::HostRefused,
            format!("Host '{shown}' is not one of PINKPAGE_ALLOWED_HOSTS"),
        ))
    }
}

/// What the `Origin` of a request says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginVerdict {
    /// No `Origin` header: judged by credentials alone.
    Absent,
    /// The daemon's own origin.
    Own,
    /// A listed origin: allowed, and CORS answers it.
    Listed(String),
}

/// Checks the `Origin` header: refused (10005) unless it is absent, the
/// daemon's own, or listed.
pub fn check_origin(
    req: &HttpRequest,
    client: &Client,
    settings: &AccessSettings,
) -> Result<OriginVerdict, AppError> {
    let Some(raw) = req.headers().get(header::ORIGIN) else {
        return Ok(OriginVerdict::Absent);
    };
    let origin = raw.to_str().map(normalise_origin).unwrap_or_default();
    if let Some(host) = &client.host {
        if origin == normalise_origin(&format!("{}://{host}", client.scheme)) {
            return Ok(OriginVerdict::Own);
        }
    }
    if settings.allowed_origins.contains(&origin) {
        return Ok(OriginVerdict::Listed(origin));
    }
    let shown: String = raw
        .to_str()
        .unwrap_or("(not text)")
        .chars()
        .take(200)
        .flat_map(char::escape_default)
        .collect();
    Err(AppError::with_detail(
        ErrorCode::OriginRefused,
        format!("Origin '{shown}' is not this daemon's origin nor one of PINKPAGE_ALLOWED_ORIGINS"),
    ))
}

/// Whether `req` is a CORS preflight.
pub fn is_preflight(req: &HttpRequest) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The headers that let the browser page at `origin` read a response and
/// send credentials; never `*`.
pub fn cors_headers(origin: &str, headers: &mut HeaderMap) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// The extra headers of a preflight answer.
pub fn preflight_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, range"),
    );
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_split_with_and_without_ports() {
        assert_eq!(split_host("localhost:8000"), ("localhost", Some("8000")));
        assert_eq!(split_host("[::1]:8000"), ("[::1]", Some("8000")));
        assert_eq!(split_host("[::1]"), ("[::1]", None));
        assert_eq!(split_host("example.com"), ("example.com", None));
    }
}
