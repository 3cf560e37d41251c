//! docs/protocol.md and docs/workflows.md are tested: every ```ws block is
//! replayed against a real daemon with a real sshd as `mdwap1p` (and the
//! workflow docs/workflows.md defines in its ```toml doc-workflow block).
//!
//! Format of a block: the info string is `ws <path>`; `> {...}` lines are
//! sent, `< {...}` lines are expected in order. Expected objects match when
//! every listed key matches (recursively), arrays when they are as long and
//! each element matches; `<* {...}` matches any number of
//! frames of that shape; `"<uuid>"`, `"<string>"`,
//! `"<number>"` and `"<any>"` match any value of that kind. `"<uuid:NAME>"`
//! matches a UUID and remembers it: a later sent `"$NAME"` is replaced by
//! it (a run id the server made, sent back in `workflow_confirm`), and a
//! `"$NAME"` in a later expected line must equal it. docs/terminals.md's
//! and docs/command-policy.md's blocks run too (the latter's rules, its
//! ```toml doc-rules block, are configured, `mdwap1p` tagged `prod`). Broadcasts
//! (`session_status`, `server_health`) that a block does not expect next are
//! skipped, and as they are not ordered with replies, one that came early
//! satisfies a later expected line.

use serde_json::Value;

use crate::support::ws::WsClient;

struct Block {
    path: String,
    lines: Vec<(char, Value)>,
}

fn blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for line in doc.lines() {
        if let Some(info) = line.strip_prefix("```ws ") {
            current = Some(Block {
                path: info.trim().to_owned(),
                lines: Vec::new(),
            });
        } else if line.starts_with("```") {
            if let Some(b) = current.take() {
                out.push(b);
            }
        } else if let Some(b) = current.as_mut() {
            let (dir, json) = if let Some(rest) = line.strip_prefix("<*") {
                ('*', rest)
            } else {
                let (d, rest) = line.split_at(1);
                (d.chars().next().unwrap(), rest)
            };
            assert!(
                matches!(dir, '>' | '<' | '*'),
                "bad line in docs/protocol.md: {line}"
            );
            let value: Value = serde_json::from_str(json.trim())
                .unwrap_or_else(|e| panic!("bad JSON in docs/protocol.md ({e}): {line}"));
            b.lines.push((dir, value));
        }
    }
    out
}

fn matches(expected: &Value, actual: &Value) -> bool {
    match expected {
        Value::String(s) if s == "<any>" => true,
        Value::String(s) if s == "<string>" => actual.is_string(),
        Value::String(s) if s == "<number>" => actual.is_number(),
        Value::String(s) if s == "<uuid>" || (s.starts_with("<uuid:") && s.ends_with('>')) => actual
            .as_str()
            .map(|a| uuid::Uuid::parse_str(a).is_ok())
            .unwrap_or(false),
        Value::Object(map) => map
            .iter()
            .all(|(k, v)| actual.get(k).map(|a| matches(v, a)).unwrap_or(v.is_null())),
        Value::Array(items) => actual
            .as_array()
            .is_some_and(|a| a.len() == items.len() && items.iter().zip(a).all(|(e, a)| matches(e, a))),
        other => other == actual,
    }
}

/// Remembers the values `"<uuid:NAME>"` in `expected` matched in `actual`.
fn capture(expected: &Value, actual: &Value, vars: &mut std::collections::HashMap<String, Value>) {
    match expected {
        Value::String(s) if s.starts_with("<uuid:") && s.ends_with('>') => {
            vars.insert(s[6..s.len() - 1].to_owned(), actual.clone());
        }
        Value::Object(map) => {
            for (k, v) in map {
                if let Some(a) = actual.get(k) {
                    capture(v, a, vars);
                }
            }
        }
        _ => {}
    }
}

/// `frame` with every `"$NAME"` string replaced by what was remembered.
fn substitute(frame: &Value, vars: &std::collections::HashMap<String, Value>) -> Value {
    match frame {
        Value::String(s) if s.starts_with('$') => vars
            .get(&s[1..])
            .cloned()
            .unwrap_or_else(|| panic!("{s} was not captured before it is sent")),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute(v, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `frame` with every `"$NAME"` already captured replaced by its value
/// (for expected lines; others stay as written).
fn substitute_known(frame: &Value, vars: &std::collections::HashMap<String, Value>) -> Value {
    match frame {
        Value::String(s) if s.starts_with('$') => vars.get(&s[1..]).cloned().unwrap_or_else(|| frame.clone()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute_known(v, vars)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute_known(v, vars)).collect()),
        other => other.clone(),
    }
}

/// The workflow `docs/workflows.md` shows (its ```toml doc-workflow block),
/// configured on the doc test's daemon so the doc's examples run as shown.
fn doc_workflow() -> String {
    doc_block(include_str!("../../docs/workflows.md"), "toml doc-workflow")
}

/// The text of `doc`'s code block whose info string is `info`.
fn doc_block(doc: &str, info: &str) -> String {
    let fence = format!("```{info}\n");
    let start = doc.find(&fence).unwrap_or_else(|| panic!("no ```{info} block")) + fence.len();
    let len = doc[start..].find("```").expect("the block ends");
    doc[start..start + len].to_owned()
}

#[tokio::test]
async fn every_example_in_the_protocol_doc_holds_against_the_real_daemon() {
    let doc = include_str!("../../docs/protocol.md");
    let mut blocks = blocks(doc);
    assert!(blocks.len() >= 5, "the doc lost its examples");
    let workflow_blocks = self::blocks(include_str!("../../docs/workflows.md"));
    assert!(workflow_blocks.len() >= 2, "docs/workflows.md lost its examples");
    blocks.extend(workflow_blocks);
    let terminal_blocks = self::blocks(include_str!("../../docs/terminals.md"));
    assert!(terminal_blocks.len() >= 2, "docs/terminals.md lost its examples");
    blocks.extend(terminal_blocks);
    let policy_blocks = self::blocks(include_str!("../../docs/command-policy.md"));
    assert!(
        policy_blocks.len() >= 2,
        "docs/command-policy.md lost its examples"
    );
    blocks.extend(policy_blocks);
    // `mdwap1p` is tagged `prod`, so docs/command-policy.md's rules (its
    // ```toml doc-rules block) apply to it as the doc shows
    let sshd = crate::support::sshd::SshdServer::start(crate::support::sshd::SshdOptions::default());
    let app = crate::support::daemon::TestApp::builder()
        .sshd_with("mdwap1p", &sshd, "tags = [\"prod\"]")
        .transfers_toml(&doc_workflow())
        .transfers_toml(&doc_block(
            include_str!("../../docs/command-policy.md"),
            "toml doc-rules",
        ))
        .spawn()
        .await;
    let mut vars = std::collections::HashMap::new();

    for (n, block) in blocks.iter().enumerate() {
        let mut lines = block.lines.iter().peekable();
        // the welcome is read by connect(); check it against the block's
        // first line when the block shows it
        let mut client = WsClient::connect(&app, &block.path).await;
        if let Some(('<', first)) = lines.peek() {
            if first["type"] == "welcome" {
                assert!(
                    matches(first, &client.welcome),
                    "block {n}: welcome {} does not match {first}",
                    client.welcome
                );
                lines.next();
            }
        }
        let mut repeated: Option<Value> = None;
        // broadcasts are not ordered with replies: one skipped earlier
        // still satisfies a later expected line
        let mut skipped_broadcasts: Vec<Value> = Vec::new();
        for (dir, value) in lines {
            // a captured id named in an expected line is that id
            let expected = substitute_known(value, &vars);
            let value = &expected;
            if *dir == '<' {
                if let Some(i) = skipped_broadcasts.iter().position(|b| matches(value, b)) {
                    skipped_broadcasts.remove(i);
                    continue;
                }
            }
            match dir {
                '>' => client.send(substitute(value, &vars)).await,
                '*' => repeated = Some(value.clone()),
                _ => loop {
                    let got = client
                        .try_recv(crate::support::ws::FRAME_TIMEOUT)
                        .await
                        .unwrap_or_else(|| {
                            panic!(
                                "block {n} ({}): nothing came while waiting for {value}",
                                block.path
                            )
                        });
                    if matches(value, &got) {
                        capture(value, &got, &mut vars);
                        repeated = None;
                        break;
                    }
                    let broadcast = got["type"] == "session_status" || got["type"] == "server_health";
                    if broadcast {
                        skipped_broadcasts.push(got.clone());
                    }
                    let skippable = broadcast || repeated.as_ref().is_some_and(|r| matches(r, &got));
                    assert!(
                        skippable,
                        "block {n} ({}): expected {value}, got {got}",
                        block.path
                    );
                },
            }
        }
        // The next block starts from a free lock. A watcher's welcome says
        // whether this block's client holds it; if so, the release after the
        // disconnect is broadcast, and awaited (each frame is bounded).
        let mut watcher = WsClient::stub(&app).await;
        let holds_lock = watcher.welcome["session_status"]["owner"] == client.id.as_str();
        client.close().await;
        if holds_lock {
            loop {
                let (status, _) = watcher.recv_until("session_status").await;
                if status["active"] == false {
                    break;
                }
            }
        }
        watcher.close().await;
    }
}

#[test]
fn the_matcher_can_fail() {
    assert!(!matches(
        &serde_json::json!({"type": "pong"}),
        &serde_json::json!({"type": "ping"})
    ));
    assert!(!matches(
        &serde_json::json!({"id": "<uuid>"}),
        &serde_json::json!({"id": "nope"})
    ));
    assert!(matches(
        &serde_json::json!({"a": {"b": "<number>"}}),
        &serde_json::json!({"a": {"b": 1, "c": 2}})
    ));
    // arrays: as long, each element matching
    let listed = serde_json::json!({"steps": [{"status": "paused"}]});
    assert!(matches(
        &listed,
        &serde_json::json!({"steps": [{"status": "paused", "index": 1}]})
    ));
    assert!(!matches(
        &listed,
        &serde_json::json!({"steps": [{"status": "pending"}]})
    ));
    assert!(!matches(
        &listed,
        &serde_json::json!({"steps": [{"status": "paused"}, {"status": "paused"}]})
    ));
}
