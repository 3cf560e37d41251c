//! A client of `/ws/v1/terminal` that keeps each terminal's output by
//! offset: every `terminal_output` must start exactly where the last one
//! of its terminal ended (or where an attach said it starts), so a test
//! that reads through it checks that no byte was missed or repeated.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::daemon::TestApp;
use super::ws::WsClient;

/// What a client has of one terminal.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The text received since the first offset it was followed from.
    pub text: String,
    /// The offset of `text`'s first byte.
    pub from: u64,
    /// The next offset expected.
    pub next: u64,
}

/// A `/ws/v1/terminal` client. See the module docs.
pub struct Terms {
    /// The connection.
    pub ws: WsClient,
    /// Each terminal's output, by terminal id.
    pub seen: HashMap<String, Seen>,
    /// Frames that were not output, in order, not yet taken.
    pub other: Vec<Value>,
}

impl Terms {
    /// Connects with `token`.
    pub async fn connect(app: &TestApp, token: &str) -> Terms {
        Terms {
            ws: WsClient::connect_with_token(app, "/ws/v1/terminal", token).await,
            seen: HashMap::new(),
            other: Vec::new(),
        }
    }

    /// Connects as the test admin.
    pub async fn admin(app: &TestApp) -> Terms {
        Terms {
            ws: WsClient::connect(app, "/ws/v1/terminal").await,
            seen: HashMap::new(),
            other: Vec::new(),
        }
    }

    /// Takes one frame: output is added to its terminal (checked to follow
    /// on exactly), anything else is kept in `other` and returned.
    async fn pump(&mut self) -> Option<Value> {
        let frame = self.ws.recv().await;
        if frame["type"] == "terminal_output" {
            let id = frame["terminal_id"].as_str().unwrap().to_owned();
            let offset = frame["offset"].as_u64().unwrap();
            let data = frame["data"].as_str().unwrap();
            let seen = self.seen.entry(id.clone()).or_default();
            assert_eq!(
                offset, seen.next,
                "terminal {id}: output at {offset}, expected {} (a gap or a repeat)",
                seen.next
            );
            seen.text.push_str(data);
            seen.next = offset + data.len() as u64;
            return None;
        }
        if frame["type"] == "terminal_attached" {
            let id = frame["terminal_id"].as_str().unwrap().to_owned();
            let from = frame["from"].as_u64().unwrap();
            self.seen.insert(
                id,
                Seen {
                    text: String::new(),
                    from,
                    next: from,
                },
            );
        }
        if matches!(
            frame["type"].as_str(),
            Some("server_health") | Some("session_status")
        ) {
            return None;
        }
        self.other.push(frame.clone());
        Some(frame)
    }

    /// Reads until a frame of type `kind` (or an error, returned instead);
    /// output meanwhile is kept.
    pub async fn until(&mut self, kind: &str) -> Value {
        if let Some(i) = self
            .other
            .iter()
            .position(|f| f["type"] == kind || f["type"] == "error")
        {
            return self.other.remove(i);
        }
        loop {
            if let Some(frame) = self.pump().await {
                if frame["type"] == kind || frame["type"] == "error" {
                    self.other.pop();
                    return frame;
                }
            }
        }
    }

    /// Sends `frame` and returns its reply of type `kind` (or the error).
    pub async fn ask(&mut self, frame: Value, kind: &str) -> Value {
        self.ws.send(frame).await;
        self.until(kind).await
    }

    /// Sends `frame`, which must be refused with `code`: its reply is
    /// that error, not a frame of type `kind` (whose arrival fails at once).
    pub async fn refused(&mut self, frame: Value, kind: &str, code: u64) {
        let reply = self.ask(frame.clone(), kind).await;
        assert_eq!(reply["error"]["code"], code, "{frame}: {reply}");
    }

    /// Opens a login shell on `server`: (terminal_id, pty_id).
    pub async fn open(&mut self, server: &str) -> (String, String) {
        let reply = self
            .ask(
                json!({"type": "terminal_open", "server": server}),
                "terminal_opened",
            )
            .await;
        assert_eq!(reply["type"], "terminal_opened", "{reply}");
        let id = reply["terminal_id"].as_str().unwrap().to_owned();
        self.seen.entry(id.clone()).or_default();
        (id, reply["pty_id"].as_str().unwrap().to_owned())
    }

    /// Types `text` into terminal `id`.
    pub async fn type_in(&mut self, id: &str, text: &str) {
        self.ws
            .send(json!({"type": "terminal_input", "terminal_id": id, "data": text}))
            .await;
    }

    /// Reads until terminal `id`'s output contains `needle` after byte
    /// `after` of what was seen of it; returns everything seen of it.
    pub async fn output_after(&mut self, id: &str, after: usize, needle: &str) -> String {
        // where the next search starts: only new text (and a needle's
        // length before it) is searched again
        let mut from = after;
        loop {
            if let Some(seen) = self.seen.get(id) {
                let text = &seen.text;
                if text.len() >= from {
                    let mut start = from;
                    while !text.is_char_boundary(start) {
                        start -= 1;
                    }
                    if text[start..].contains(needle) {
                        return text.clone();
                    }
                    from = text.len().saturating_sub(needle.len()).max(after);
                }
            }
            if let Some(f) = self.pump().await {
                assert_ne!(
                    f["type"], "terminal_closed",
                    "{id} closed waiting for {needle:?}: {f}"
                );
            }
        }
    }

    /// Reads until terminal `id`'s output contains `needle`.
    pub async fn output(&mut self, id: &str, needle: &str) -> String {
        self.output_after(id, 0, needle).await
    }

    /// What was seen of terminal `id` so far.
    pub fn text(&self, id: &str) -> String {
        self.seen.get(id).map(|s| s.text.clone()).unwrap_or_default()
    }

    /// The next offset of terminal `id`.
    pub fn next(&self, id: &str) -> u64 {
        self.seen.get(id).map_or(0, |s| s.next)
    }
}
