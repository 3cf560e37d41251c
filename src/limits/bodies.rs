//! Request bodies, bounded before any handler reads them.
//!
//! Before issue 23, actix-web's JSON extractor took up to 2 MiB on every
//! route, room made from `Content-Length` before a byte arrived, and waited
//! for the rest of a body as long as the connection stayed open: 60
//! anonymous logins announcing 2 MB and sending nothing grew the daemon by
//! 130 MB and were still open 23 s later. Now admission
//! (`crate::admission`), once it knows the caller, applies a [`BodyRule`]:
//!
//! - a caller without credentials sends at most
//!   `PINKPAGE_ANON_BODY_MAX_BYTES` (16 KiB: a login);
//! - a signed-in caller at most `PINKPAGE_BODY_MAX_BYTES` (64 KiB), except
//!   on the routes that stream their body ([`STREAMED`], the REST upload),
//!   which keep streaming under their own idle timeout;
//! - the WebSocket endpoints' "body" is the connection's frames, bounded
//!   by `crate::ws::reader` instead.
//!
//! A `Content-Length` past the limit is refused at once with 10011 (413),
//! before the body is read; otherwise [`take_whole`] reads the body (room
//! grows with what arrives, never from what is announced), refusing it
//! once it passes the limit (a chunked body) and ending it with 10009
//! (408) when `PINKPAGE_BODY_IDLE_TIMEOUT_S` pass without a byte, and hands
//! it to the handler whole. Admission closes the connection after either
//! refusal, so an unread body is not drained.

use std::time::Duration;

use actix_web::dev::ServiceRequest;
use actix_web::http::header;
use actix_web::web::BytesMut;
use actix_web::HttpMessage;
use futures_util::StreamExt;
use pinkpage_actors::{AppError, ErrorCode};

use crate::settings::work_limits::WorkLimits;

/// Routes (method, pattern) whose handler streams its body itself, with
/// its own idle timeout, instead of taking it whole.
pub const STREAMED: &[(&str, &str)] = &[("PUT", "/api/v1/bmx5/files")];

/// What admission does with a request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// Left to the handler: a WebSocket's frames, a streamed upload.
    Streamed,
    /// Read whole before the handler runs, at most `max` bytes (the
    /// `setting` that says so, for the refusal's detail).
    Whole {
        /// The largest body taken.
        max: usize,
        /// The variable that sets `max`.
        setting: &'static str,
    },
}

impl BodyRule {
    /// The rule for `method` on the route `pattern` (as the router matched
    /// it), for a caller signed in or not.
    pub fn of(method: &str, pattern: Option<&str>, signed_in: bool, limits: &WorkLimits) -> BodyRule {
        if pattern.is_some_and(|p| p.starts_with("/ws/")) {
            return BodyRule::Streamed;
        }
        if !signed_in {
            return BodyRule::Whole {
                max: limits.anon_body_max_bytes,
                setting: "PINKPAGE_ANON_BODY_MAX_BYTES",
            };
        }
        if STREAMED.iter().any(|(m, p)| *m == method && Some(*p) == pattern) {
            return BodyRule::Streamed;
        }
        BodyRule::Whole {
            max: limits.body_max_bytes,
            setting: "PINKPAGE_BODY_MAX_BYTES",
        }
    }
}

/// Whether `req` comes with a body at all (HTTP/1.1: a `Content-Length`
/// above zero or a chunked `Transfer-Encoding`), and the length it
/// announces.
pub fn announced(req: &ServiceRequest) -> (bool, Option<u64>) {
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = req
        .headers()
        .get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    (chunked || length.is_some_and(|n| n > 0), length)
}

fn too_large(size: impl std::fmt::Display, max: usize, setting: &str) -> AppError {
    AppError::with_detail(
        ErrorCode::RequestBodyTooLarge,
        format!("the body is {size} bytes; this route takes at most {max} from this caller ({setting})"),
    )
}

/// Reads `req`'s body whole under `rule` (see the module docs) and puts
/// it back for the handler; 10011 past the size, 10009 after `idle`
/// without a byte. Does nothing for a request without a body or a
/// streamed one.
pub async fn take_whole(req: &mut ServiceRequest, rule: BodyRule, idle: Duration) -> Result<(), AppError> {
    let BodyRule::Whole { max, setting } = rule else {
        return Ok(());
    };
    let (has_body, length) = announced(req);
    if !has_body {
        return Ok(());
    }
    if let Some(n) = length.filter(|n| *n > max as u64) {
        return Err(too_large(n, max, setting));
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    loop {
        match tokio::time::timeout(idle, payload.next()).await {
            Err(_) => {
                return Err(AppError::with_detail(
                    ErrorCode::RequestBodyStalled,
                    format!(
                        "the body sent nothing for {idle:?} (PINKPAGE_BODY_IDLE_TIMEOUT_S) after {} bytes",
                        body.len()
                    ),
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(AppError::with_detail(
                    ErrorCode::Validation,
                    format!("cannot read the body: {e}"),
                ))
            }
            Ok(Some(Ok(chunk))) => {
                if body.len() + chunk.len() > max {
                    return Err(too_large(format!("more than {max}"), max, setting));
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
    req.set_payload(actix_web::dev::Payload::from(body.freeze()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn limits() -> WorkLimits {
        WorkLimits {
            diff_budget_bytes: 1,
            body_idle_timeout: Duration::from_secs(1),
            body_max_bytes: 64,
            anon_body_max_bytes: 16,
        }
    }

    #[test]
    fn the_rule_follows_the_caller_and_the_route() {
        let l = limits();
        let whole = |max, setting| BodyRule::Whole { max, setting };
        assert_eq!(
            BodyRule::of("POST", Some("/api/v1/auth/login"), false, &l),
            whole(16, "PINKPAGE_ANON_BODY_MAX_BYTES")
        );
        assert_eq!(
            BodyRule::of("POST", Some("/api/v1/diff/command"), true, &l),
            whole(64, "PINKPAGE_BODY_MAX_BYTES")
        );
        // uploads stream, but not for a stranger
        assert_eq!(
            BodyRule::of("PUT", Some("/api/v1/bmx5/files"), true, &l),
            BodyRule::Streamed
        );
        assert_eq!(
            BodyRule::of("PUT", Some("/api/v1/bmx5/files"), false, &l),
            whole(16, "PINKPAGE_ANON_BODY_MAX_BYTES")
        );
        assert_eq!(
            BodyRule::of("GET", Some("/ws/v1/diff"), true, &l),
            BodyRule::Streamed
        );
        assert_eq!(
            BodyRule::of("POST", None, true, &l),
            whole(64, "PINKPAGE_BODY_MAX_BYTES")
        );
    }

    #[actix_web::test]
    async fn an_announced_body_past_the_limit_is_refused_before_a_byte_is_read() {
        let rule = BodyRule::of("POST", Some("/api/v1/auth/login"), false, &limits());
        let mut req = TestRequest::post()
            .insert_header((header::CONTENT_LENGTH, "2000000"))
            .to_srv_request();
        let err = take_whole(&mut req, rule, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::RequestBodyTooLarge);
        assert!(err.to_string().contains("2000000"), "{err}");
    }

    #[actix_web::test]
    async fn a_body_within_the_limit_reaches_the_handler_whole() {
        let rule = BodyRule::of("POST", Some("/api/v1/auth/login"), false, &limits());
        let mut req = TestRequest::post().set_payload("{\"a\": 1}").to_srv_request();
        take_whole(&mut req, rule, Duration::from_secs(1)).await.unwrap();
        let mut body = Vec::new();
        let mut payload = req.take_payload();
        while let Some(chunk) = payload.next().await {
            body.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(body, b"{\"a\": 1}");
        // no body, nothing to do
        let mut get = TestRequest::get().to_srv_request();
        take_whole(&mut get, rule, Duration::from_secs(1)).await.unwrap();
    }

    /// A request with `headers` whose body yields `chunks` and then
    /// nothing, forever (a client that stopped sending).
    fn stalling(headers: (header::HeaderName, &str), chunks: &[&'static [u8]]) -> ServiceRequest {
        use actix_web::error::PayloadError;
        use actix_web::web::Bytes;
        let chunks: Vec<Result<Bytes, PayloadError>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        let body = futures_util::stream::iter(chunks).chain(futures_util::stream::pending());
        let mut req = TestRequest::post().insert_header(headers).to_srv_request();
        let boxed: actix_http::BoxedPayloadStream = Box::pin(body);
        req.set_payload(actix_web::dev::Payload::from(boxed));
        req
    }

    #[actix_web::test]
    async fn a_body_that_stops_sending_ends_after_the_idle_timeout() {
        tokio::time::pause();
        let rule = BodyRule::of("POST", Some("/api/v1/diff/command"), true, &limits());
        let mut req = stalling((header::CONTENT_LENGTH, "40"), &[b"{\"com"]);
        let err = take_whole(&mut req, rule, Duration::from_secs(3))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::RequestBodyStalled);
        assert!(err.to_string().contains("after 5 bytes"), "{err}");
    }

    #[actix_web::test]
    async fn a_chunked_body_is_cut_off_once_it_passes_the_limit() {
        let rule = BodyRule::of("POST", Some("/api/v1/auth/login"), false, &limits());
        let mut req = stalling(
            (header::TRANSFER_ENCODING, "chunked"),
            &[&[b'x'; 10], &[b'x'; 10]],
        );
        let err = take_whole(&mut req, rule, Duration::from_secs(3))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::RequestBodyTooLarge);
    }
}
