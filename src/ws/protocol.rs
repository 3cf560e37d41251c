//! The JSON frames every WebSocket domain shares (SPEC section 4).
//!
//! Incoming frames are parsed once, here, into a domain's typed request enum
//! ([`parse_frame`]); the engine never sees JSON. Outgoing frames are typed
//! structs serialised with a `type` tag; [`Outgoing::to_text`] adds the
//! client's `request_id` when the frame answers a request.

use std::collections::BTreeMap;

use pinkpage_actors::broadcast::SessionStatus;
use pinkpage_actors::health::ServerHealthStatus;
use pinkpage_actors::{AppError, ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Frames larger than this get 31002 (the connection stays open).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// The client's correlation id, echoed on every reply to its request.
pub type RequestId = Option<String>;

/// Frames every domain sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Common<'a> {
    /// The first frame on every connection, exactly in the seed's shape.
    Welcome {
        /// "Connected to Stub SSH WebSocket", ...
        message: &'a str,
        /// The server-made connection id.
        connection_id: String,
        /// The session lock now.
        session_status: &'a SessionStatus,
        /// Health of every server, by name.
        server_health: &'a BTreeMap<String, ServerHealthStatus>,
    },
    /// Reply to `ping`.
    Pong,
    /// Broadcast on every session lock change.
    SessionStatus {
        /// Whether someone holds the lock.
        active: bool,
        /// The holder's connection id.
        owner: Option<String>,
        /// The holder's user name.
        owner_user: Option<&'a str>,
        /// When the holder took the lock (RFC 3339, UTC).
        since: Option<&'a str>,
        /// The workflow run working under the lock, if one does.
        workflow_run: Option<&'a pinkpage_actors::broadcast::WorkflowRunRef>,
    },
    /// The daemon is stopping: the last frame before the close frame
    /// (1012). The connection's command, transfer or script is stopped as
    /// on any disconnect.
    Shutdown {
        /// 30004 with its message.
        error: ErrorBody,
        /// How long the daemon gives its work to stop, in seconds.
        grace_s: f64,
    },
    /// Broadcast on every change of a server's `is_healthy`, and on each
    /// failure counted while it is still unknown (`null`).
    ServerHealth {
        /// Which server.
        server_name: &'a str,
        /// Its new state.
        is_healthy: Option<bool>,
        /// The full status.
        status: &'a ServerHealthStatus,
    },
}

/// An error frame: `{"type": "error", "success": false, "error": {...}}`.
#[derive(Debug, Serialize)]
pub struct ErrorFrame {
    /// Always `"error"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Always `false`.
    pub success: bool,
    /// Code, message, detail.
    pub error: ErrorBody,
}

impl ErrorFrame {
    /// The frame for `err`. Internal errors (10000) carry no detail: the
    /// cause is logged instead.
    pub fn new(err: &AppError) -> Self {
        let body = if err.code == ErrorCode::Internal {
            AppError::new(ErrorCode::Internal).body()
        } else {
            err.body()
        };
        ErrorFrame {
            kind: "error",
            success: false,
            error: body,
        }
    }
}

/// Anything that can be sent as a frame.
pub trait Outgoing: Serialize {
    /// The frame's JSON text, with `request_id` added when given.
    fn to_text(&self, request_id: &RequestId) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_else(|e| {
            // Our own types always serialise; if one ever does not, say so
            // rather than panic in a connection.
            log::error!(error = e.to_string(); "outgoing frame did not serialise");
            serde_json::json!({"type": "error", "success": false,
                "error": {"code": 10000, "message": "internal error", "detail": null}})
        });
        if let (Some(rid), Some(map)) = (request_id, value.as_object_mut()) {
            map.insert("request_id".to_owned(), Value::String(rid.clone()));
        }
        value.to_string()
    }
}

impl<T: Serialize> Outgoing for T {}

/// What a text frame turned out to be.
#[derive(Debug)]
pub enum Frame<R> {
    /// `{"type": "ping"}`, answered by every domain alike.
    Ping(RequestId),
    /// A request of the domain.
    Request(R, RequestId),
    /// Not acceptable; reply with the error and keep the connection.
    Invalid(AppError, RequestId),
}

/// Parses a text frame into the domain's request enum `R`, whose serde tag
/// is `type`. `known` lists the types `R` accepts, so an unknown type (31001)
/// is told apart from a known one with bad fields (31000).
pub fn parse_frame<R: DeserializeOwned>(text: &str, known: &[&str]) -> Frame<R> {
    parse_frame_checked(text, known, |_| Ok(()))
}

/// [`parse_frame`], asking `allow` whether the caller may send a frame of
/// this type before its fields are looked at (so a caller without the
/// role learns nothing from field validation: 10002/10003 come first).
pub fn parse_frame_checked<R: DeserializeOwned>(
    text: &str,
    known: &[&str],
    allow: impl Fn(&str) -> Result<(), AppError>,
) -> Frame<R> {
    if text.len() > MAX_FRAME_BYTES {
        return Frame::Invalid(
            AppError::with_detail(
                ErrorCode::WsTooLarge,
                format!("{} bytes; the limit is {MAX_FRAME_BYTES}", text.len()),
            ),
            None,
        );
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Frame::Invalid(
                AppError::with_detail(ErrorCode::WsMalformed, format!("not JSON: {e}")),
                None,
            )
        }
    };
    let request_id = match value.get("request_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return Frame::Invalid(
            AppError::with_detail(ErrorCode::WsMalformed, "missing field `type`"),
            request_id,
        );
    };
    if kind == "ping" {
        return Frame::Ping(request_id);
    }
    if !known.contains(&kind.as_str()) {
        return Frame::Invalid(
            AppError::with_detail(ErrorCode::WsUnknownType, format!("unknown type '{kind}'")),
            request_id,
        );
    }
    if let Err(e) = allow(&kind) {
        return Frame::Invalid(e, request_id);
    }
    match serde_json::from_value::<R>(value) {
        Ok(req) => Frame::Request(req, request_id),
        Err(e) => Frame::Invalid(
            AppError::with_detail(ErrorCode::WsMalformed, format!("{kind}: {e}")),
            request_id,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Req {
        Hello { name: String },
    }
    const KNOWN: &[&str] = &["hello"];

    fn code<R: std::fmt::Debug>(f: Frame<R>) -> u32 {
        match f {
            Frame::Invalid(e, _) => e.code.code(),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn frames_parse_into_the_typed_enum_with_their_request_id() {
        match parse_frame::<Req>(r#"{"type":"hello","name":"x","request_id":"r1"}"#, KNOWN) {
            Frame::Request(Req::Hello { name }, Some(rid)) => {
                assert_eq!(name, "x");
                assert_eq!(rid, "r1");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_frames_get_their_codes() {
        assert_eq!(code(parse_frame::<Req>("not json", KNOWN)), 31000);
        assert_eq!(code(parse_frame::<Req>(r#"{"name":"x"}"#, KNOWN)), 31000);
        assert_eq!(code(parse_frame::<Req>(r#"{"type":"hello"}"#, KNOWN)), 31000);
        assert_eq!(
            code(parse_frame::<Req>(r#"{"type":"launch_missiles"}"#, KNOWN)),
            31001
        );
        let big = format!(r#"{{"type":"hello","name":"{}"}}"#, "x".repeat(MAX_FRAME_BYTES));
        assert_eq!(code(parse_frame::<Req>(&big, KNOWN)), 31002);
    }

    #[test]
    fn the_request_id_survives_a_bad_frame() {
        match parse_frame::<Req>(r#"{"type":"nope","request_id":"r9"}"#, KNOWN) {
            Frame::Invalid(_, rid) => assert_eq!(rid.as_deref(), Some("r9")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replies_carry_the_request_id() {
        let text = Common::Pong.to_text(&Some("abc".into()));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "pong");
        assert_eq!(v["request_id"], "abc");
    }
}
