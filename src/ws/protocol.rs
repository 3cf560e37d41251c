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

/// The largest message of any type: larger ones get 31002 (the
/// connection stays open) and are not even kept (`ws::reader`).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// The largest message of a type not in [`LARGE_TYPES`]: these carry ids,
/// names and paths (two 4 KiB paths in a rename), never data.
pub const SMALL_FRAME_BYTES: usize = 16 * 1024;

/// The types that carry data (typed or pasted input, a command, a script,
/// an inline upload, a batch's commands, a workflow's parameters) and may
/// be up to [`MAX_FRAME_BYTES`]. A new type is small unless named here.
pub const LARGE_TYPES: &[&str] = &[
    "ssh_input",
    "ssh_command",
    "batch_execute",
    "sftp_upload",
    "script_execute",
    "workflow_plan",
    "workflow_run",
    "diff_command",
    "terminal_open",
    "terminal_input",
];

/// The largest message of type `kind`.
pub fn type_limit(kind: &str) -> usize {
    if LARGE_TYPES.contains(&kind) {
        MAX_FRAME_BYTES
    } else {
        SMALL_FRAME_BYTES
    }
}

/// What the size check reads of a message larger than
/// [`SMALL_FRAME_BYTES`] before parsing it: its type (borrowed from the
/// text when it has no escapes) and its correlation id; every other field
/// is skipped without being built.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    request_id: Option<Value>,
}

/// The client's correlation id as it is echoed: a string as it is, any
/// other JSON value as its text.
fn request_id_of(value: Option<&Value>) -> RequestId {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}

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
    /// Sent to every connection of a PTY's owner when its recording could
    /// not be written any more (56002): the PTY goes on unrecorded.
    RecordingStopped {
        /// The PTY (and the recording's id).
        pty_id: String,
        /// 56002 with its cause.
        error: ErrorBody,
    },
    /// The command of the request it answers waits for an approver (a
    /// `review` rule); `command_released` or an error (55001, 55002)
    /// follows. Also sent to every `/ws/v1/stub` connection of the user
    /// for a workflow step held that way (without a `request_id`).
    CommandHeld {
        /// The hold (what approvers answer).
        held_id: &'a str,
        /// The rule that held it.
        rule: &'a str,
        /// The rule's message.
        message: &'a str,
        /// The command.
        command: &'a str,
        /// Where.
        server: &'a str,
        /// When it is rejected unless answered (RFC 3339, UTC).
        expires_at: Option<&'a str>,
        /// The workflow run whose step it is (announced holds only).
        #[serde(skip_serializing_if = "Option::is_none")]
        run_id: Option<&'a str>,
    },
    /// A held command was approved and starts now.
    CommandReleased {
        /// The hold.
        held_id: &'a str,
    },
    /// To approvers on `/ws/v1/stub`: a command waits for their answer
    /// (`command_review`).
    CommandReviewRequested {
        /// The hold.
        held_id: &'a str,
        /// Who asked.
        user: &'a str,
        /// Where.
        server: &'a str,
        /// What.
        command: &'a str,
        /// The rule that held it.
        rule: &'a str,
        /// The rule's message.
        message: &'a str,
        /// When it is rejected unless answered (RFC 3339, UTC).
        expires_at: &'a str,
        /// Who may answer: these users, or every admin when empty.
        approvers: &'a [String],
    },
    /// To approvers and the requester on `/ws/v1/stub`: a hold ended
    /// (`approved`, `rejected`, `timeout`, `withdrawn`), so their queue
    /// drops it.
    CommandReviewEnded {
        /// The hold.
        held_id: &'a str,
        /// How it ended.
        decision: &'a str,
        /// Who answered, when someone did.
        by: Option<&'a str>,
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
///
/// Size first: a message over [`SMALL_FRAME_BYTES`] has its type read
/// (nothing else built) and is refused with 31002 when its type allows
/// less ([`type_limit`]), before it is parsed into anything.
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
    if text.len() > SMALL_FRAME_BYTES {
        if let Ok(head) = serde_json::from_str::<Head<'_>>(text) {
            let limit = type_limit(&head.kind);
            if text.len() > limit {
                let mut kind: String = head.kind.chars().take(64).collect();
                if kind.len() < head.kind.len() {
                    kind.push_str("...");
                }
                return Frame::Invalid(
                    AppError::with_detail(
                        ErrorCode::WsTooLarge,
                        format!("{} bytes; '{kind}' messages are limited to {limit}", text.len()),
                    ),
                    request_id_of(head.request_id.as_ref()),
                );
            }
        }
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
    let request_id = request_id_of(value.get("request_id"));
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
    fn a_small_type_past_its_size_is_refused_before_it_is_parsed() {
        let known = &["hello", "ssh_input"];
        // a 20 KiB ping, and a known small type: 31002 with the request id
        let pad = "x".repeat(20 * 1024);
        let ping = format!(r#"{{"type":"ping","pad":"{pad}","request_id":"p9"}}"#);
        match parse_frame::<Req>(&ping, known) {
            Frame::Invalid(e, rid) => {
                assert_eq!(e.code, ErrorCode::WsTooLarge);
                assert!(
                    e.to_string().contains("'ping' messages are limited to 16384"),
                    "{e}"
                );
                assert_eq!(rid.as_deref(), Some("p9"));
            }
            other => panic!("{other:?}"),
        }
        // nested so deep that a full parse would refuse it as malformed:
        // the size check decides first, on the type alone
        let deep = format!(
            r#"{{"type":"hello","x":{}{}}}"#,
            "[".repeat(9000),
            "]".repeat(9000)
        );
        assert_eq!(code(parse_frame::<Req>(&deep, known)), 31002);
        // a large type of the same size goes on to be parsed (and fails
        // on its fields here, not on its size)
        let input = format!(r#"{{"type":"ssh_input","data":"{pad}"}}"#);
        assert_eq!(code(parse_frame::<Req>(&input, known)), 31000);
        assert_eq!(type_limit("ssh_input"), MAX_FRAME_BYTES);
        assert_eq!(type_limit("anything_new"), SMALL_FRAME_BYTES);
    }

    #[test]
    fn the_largest_message_is_the_one_the_settings_budget_for() {
        assert_eq!(MAX_FRAME_BYTES, crate::settings::caps::LARGEST_MESSAGE_BYTES);
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
