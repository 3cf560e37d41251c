//! Fuzzing the frame decoder: random and mutated frames through
//! [`parse_frame_checked`] for every domain, and each parsed request
//! through the validation its handler runs before touching a server.
//! The property: nothing panics, and every frame is answered, either with
//! a request or ping or with an error code from the catalogue.
//!
//! What is generated (one strategy, picked evenly):
//! - arbitrary bytes, turned into text the way the connection turns a
//!   fragmented frame into text (lossy UTF-8), so invalid UTF-8 is covered;
//! - arbitrary JSON: nested arrays and objects, huge and tiny numbers,
//!   numbers as long digit strings, odd strings;
//! - a valid frame of every message type of every domain, then mutated:
//!   a field removed, a field's value replaced by arbitrary JSON, the type
//!   changed, or the whole frame buried in deep nesting.
//!
//! CI runs [`FUZZ_CASES`] cases (a few seconds in a debug build); the
//! million-case run is the ignored test (WAVE2, "CI budget"):
//! `cargo test --lib fuzz -- --ignored`.

use pinkpage_actors::access::{Credential, Principal, Role, ServerScope};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

use super::protocol::{parse_frame_checked, Frame};
use crate::diff_jobs::DiffJob;
use crate::request::{BatchExecute, RemotePath, ThrottleMs, TimeoutS};
use crate::settings::Settings;
use crate::ws::bmx4::wire::Bmx4Request;
use crate::ws::bmx5::Bmx5Request;
use crate::ws::connection::Domain;
use crate::ws::diff::wire::DiffRequest;
use crate::ws::stub::wire::StubRequest;
use crate::ws::terminal::wire::TerminalRequest;
use crate::ws::terminal::TerminalConn;
use crate::ws::{bmx4::Bmx4, bmx5::Bmx5, diff::Diff, stub::Stub};

/// Cases in the normal run.
const FUZZ_CASES: u32 = 50_000;

/// A valid frame of every message type, by domain path. A test checks that
/// every type a domain accepts has one, so a new type is fuzzed too.
fn templates() -> Vec<Value> {
    let file = |p: &str| json!({"server": "mdwap1p", "path": p});
    vec![
        json!({"type": "start_session"}),
        json!({"type": "end_session", "take_over": true}),
        json!({"type": "ssh_command", "server": "mdwap1p", "command": "ls", "stop_phrase": "$",
            "timeout_s": 5.0, "throttle_ms": 100, "request_id": "r1"}),
        json!({"type": "ssh_input", "data": "y\n"}),
        json!({"type": "resize", "cols": 80, "rows": 24}),
        json!({"type": "cancel", "run_id": "x"}),
        json!({"type": "scp_transfer", "transfer_name": "stub_data_transfer"}),
        json!({"type": "scp_transfer_plan", "transfer_name": "stub_data_transfer"}),
        json!({"type": "workflow_plan", "workflow": "w", "params": {"a": 1}}),
        json!({"type": "workflow_run", "workflow": "w", "params": {"a": "b"}}),
        json!({"type": "workflow_confirm", "run_id": "r"}),
        json!({"type": "workflow_watch", "run_id": "r"}),
        json!({"type": "command_review", "held_id": "h", "decision": "approve", "comment": "c"}),
        json!({"type": "batch_execute", "server": "mdwap1p", "servers": ["mypap1d"], "commands": ["true"],
            "stop_on_error": true, "retries": 1, "retry_delay_ms": 10, "timeout_s": 1.5}),
        json!({"type": "batch_cancel", "run_id": "r"}),
        json!({"type": "sftp_list", "server": "mdwap1p", "path": "/tmp"}),
        json!({"type": "sftp_stat", "server": "mdwap1p", "path": "/tmp"}),
        json!({"type": "sftp_mkdir", "server": "mdwap1p", "path": "/tmp/a", "parents": true}),
        json!({"type": "sftp_remove", "server": "mdwap1p", "path": "/tmp/a", "recursive": true}),
        json!({"type": "sftp_rename", "server": "mdwap1p", "from": "/tmp/a", "to": "/tmp/b"}),
        json!({"type": "sftp_upload", "server": "mdwap1p", "path": "/tmp/a", "data": "aGk="}),
        json!({"type": "sftp_download", "server": "mdwap1p", "path": "/tmp/a"}),
        json!({"type": "script_execute", "server": "mdwap1p", "script": "echo hi", "script_name": "a.sh",
            "args": ["x"], "timeout_s": 2, "throttle_ms": 0}),
        json!({"type": "script_cancel"}),
        json!({"type": "diff_files", "left": file("/a"), "right": file("/b"), "context": 3}),
        json!({"type": "diff_dirs", "left": file("/a"), "right": file("/b"), "recursive": true,
            "max_depth": 2, "compare": "sha256"}),
        json!({"type": "diff_command", "command": "uname", "left_server": "mdwap1p",
            "right_server": "mypap1d", "timeout_s": 10}),
        json!({"type": "terminal_open", "server": "mdwap1p", "cols": 80, "rows": 24, "command": "top"}),
        json!({"type": "terminal_input", "terminal_id": "t", "data": "ls\n"}),
        json!({"type": "terminal_resize", "terminal_id": "t", "cols": 80, "rows": 24}),
        json!({"type": "terminal_close", "terminal_id": "t"}),
        json!({"type": "terminal_attach", "terminal_id": "t", "since": 0}),
        json!({"type": "terminal_detach", "terminal_id": "t"}),
        json!({"type": "terminal_list"}),
        json!({"type": "terminal_share", "terminal_id": "t", "user": "u", "mode": "watch"}),
        json!({"type": "terminal_unshare", "terminal_id": "t", "user": "u"}),
        json!({"type": "terminal_watch", "pty_id": "p"}),
        json!({"type": "terminal_unwatch", "pty_id": "p"}),
        json!({"type": "ping"}),
    ]
}

/// Settings with the seed's two servers, as validation resolves names.
fn settings() -> Settings {
    let vars = [
        ("HIWARE_ID", "u"),
        ("HIWARE_PW", "p"),
        ("MDWAP1P_IP", "127.0.0.1"),
        ("MYPAP1D_IP", "127.0.0.2"),
    ];
    Settings::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
        .expect("fuzz settings")
}

fn admin() -> Principal {
    Principal {
        user: "fuzz".into(),
        role: Role::Admin,
        servers: ServerScope::All,
        credential: Credential::Proxy,
    }
}

/// Every code a frame may be answered with must be in the catalogue;
/// `AppError` can only hold catalogue codes, so the check is that a code
/// came back at all and is not the opaque internal error.
fn answered(what: &str, code: u32) -> Result<(), TestCaseError> {
    prop_assert!(code != 10000, "{what}: internal error for a client's frame");
    Ok(())
}

/// One frame through one domain: parsed, then validated as its handler
/// would before any I/O.
fn through<D: Domain>(
    text: &str,
    settings: &Settings,
    who: &Principal,
    validate: impl Fn(D::Request, &Settings, &Principal) -> Result<(), pinkpage_actors::AppError>,
) -> Result<(), TestCaseError> {
    match parse_frame_checked::<D::Request>(text, D::TYPES, |_| Ok(())) {
        Frame::Ping(_) => Ok(()),
        Frame::Invalid(e, _) => answered(D::NAME, e.code.code()),
        Frame::Request(req, _) => match validate(req, settings, who) {
            Ok(()) => Ok(()),
            Err(e) => answered(D::NAME, e.code.code()),
        },
    }
}

fn stub_fields(req: StubRequest, _: &Settings, _: &Principal) -> Result<(), pinkpage_actors::AppError> {
    if let StubRequest::SshCommand {
        timeout_s,
        throttle_ms,
        ..
    } = req
    {
        TimeoutS::parse(timeout_s)?;
        ThrottleMs::parse(throttle_ms, std::time::Duration::from_millis(100))?;
    }
    Ok(())
}

fn bmx4_fields(req: Bmx4Request, s: &Settings, who: &Principal) -> Result<(), pinkpage_actors::AppError> {
    if let Bmx4Request::BatchExecute(fields) = req {
        BatchExecute::parse(fields, s, who)?;
    }
    Ok(())
}

fn bmx5_fields(req: Bmx5Request, _: &Settings, _: &Principal) -> Result<(), pinkpage_actors::AppError> {
    use Bmx5Request::*;
    match req {
        SftpList { path, .. }
        | SftpStat { path, .. }
        | SftpMkdir { path, .. }
        | SftpRemove { path, .. }
        | SftpUpload { path, .. }
        | SftpDownload { path, .. } => RemotePath::parse("path", path).map(drop),
        SftpRename { from, to, .. } => {
            RemotePath::parse("from", from)?;
            RemotePath::parse("to", to).map(drop)
        }
        ScriptExecute {
            timeout_s,
            throttle_ms,
            ..
        } => {
            TimeoutS::parse(timeout_s)?;
            ThrottleMs::parse(throttle_ms, std::time::Duration::from_millis(100)).map(drop)
        }
        ScriptCancel => Ok(()),
    }
}

fn diff_fields(req: DiffRequest, s: &Settings, who: &Principal) -> Result<(), pinkpage_actors::AppError> {
    match &req {
        DiffRequest::DiffFiles(r) => DiffJob::files(s, who, r).map(drop),
        DiffRequest::DiffDirs(r) => DiffJob::dirs(s, who, r).map(drop),
        DiffRequest::DiffCommand(r) => DiffJob::command(s, who, r).map(drop),
    }
}

/// What the terminal handlers check before touching a terminal: ids,
/// sizes, the share mode, the server.
fn terminal_fields(
    req: TerminalRequest,
    s: &Settings,
    who: &Principal,
) -> Result<(), pinkpage_actors::AppError> {
    use crate::ws::terminal::state::{pty_id, size, terminal_id};
    use TerminalRequest::*;
    match req {
        TerminalOpen {
            server, cols, rows, ..
        } => {
            size(cols, 80, "cols")?;
            size(rows, 24, "rows")?;
            crate::request::ServerRef::resolve(s, who, &server).map(drop)
        }
        TerminalResize {
            terminal_id: id,
            cols,
            rows,
        } => {
            size(Some(cols), 80, "cols")?;
            size(Some(rows), 24, "rows")?;
            terminal_id(&id).map(drop)
        }
        TerminalShare {
            terminal_id: id,
            mode,
            ..
        } => {
            terminal_id(&id)?;
            pinkpage_actors::terminal::book::ShareMode::parse(&mode)
                .map(drop)
                .ok_or_else(|| pinkpage_actors::AppError::new(pinkpage_actors::ErrorCode::Validation))
        }
        TerminalInput { terminal_id: id, .. }
        | TerminalClose { terminal_id: id }
        | TerminalAttach { terminal_id: id, .. }
        | TerminalDetach { terminal_id: id }
        | TerminalUnshare { terminal_id: id, .. } => terminal_id(&id).map(drop),
        TerminalWatch { pty_id: id } | TerminalUnwatch { pty_id: id } => pty_id(&id).map(drop),
        TerminalList => Ok(()),
    }
}

fn every_domain(text: &str, s: &Settings, who: &Principal) -> Result<(), TestCaseError> {
    through::<TerminalConn>(text, s, who, terminal_fields)?;
    through::<Stub>(text, s, who, stub_fields)?;
    through::<Bmx4>(text, s, who, bmx4_fields)?;
    through::<Bmx5>(text, s, who, bmx5_fields)?;
    through::<Diff>(text, s, who, diff_fields)
}

/// JSON of any shape, with the values that break naive decoders.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just(0.0),
            Just(-0.0),
            Just(1e308),
            Just(-1e308),
            Just(5e-324),
            Just(4294967296.5)
        ]
        .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[a-z_]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// How a valid frame is spoiled.
#[derive(Debug, Clone)]
enum Mutation {
    /// Drop the field at this index (modulo the field count).
    Remove(usize),
    /// Replace the field at this index with arbitrary JSON.
    Replace(usize, Value),
    /// Add or overwrite a field of any name.
    Set(String, Value),
    /// Give the frame another domain's (or no known) type.
    Retype(String),
    /// Wrap the frame `n` levels deep in arrays.
    Bury(usize),
    /// A number field written with this many digits.
    LongNumber(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Remove),
        (any::<usize>(), any_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        ("[a-z_]{1,16}", any_json()).prop_map(|(k, v)| Mutation::Set(k, v)),
        prop_oneof![
            "[a-z_]{0,16}",
            prop::sample::select(templates()).prop_map(|t| t["type"].as_str().unwrap_or_default().to_owned())
        ]
        .prop_map(Mutation::Retype),
        (1usize..300).prop_map(Mutation::Bury),
        (any::<usize>(), 20usize..400).prop_map(|(i, n)| Mutation::LongNumber(i, n)),
    ]
}

/// Applies `m` to `frame` and renders the text the client would send.
fn mutate(mut frame: Value, m: &Mutation) -> String {
    let Some(map) = frame.as_object_mut() else {
        return frame.to_string();
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    // a frame emptied by earlier mutations gets its `type` back
    let pick = |i: usize| {
        keys.get(i % keys.len().max(1))
            .cloned()
            .unwrap_or_else(|| "type".into())
    };
    match m {
        Mutation::Remove(i) => {
            map.remove(&pick(*i));
        }
        Mutation::Replace(i, v) => {
            map.insert(pick(*i), v.clone());
        }
        Mutation::Set(k, v) => {
            map.insert(k.clone(), v.clone());
        }
        Mutation::Retype(t) => {
            map.insert("type".into(), Value::String(t.clone()));
        }
        Mutation::Bury(n) => return format!("{}{frame}{}", "[".repeat(*n), "]".repeat(*n)),
        Mutation::LongNumber(i, n) => {
            let key = pick(*i);
            map.insert(key.clone(), Value::Null);
            let digits = "9".repeat(*n);
            return frame
                .to_string()
                .replacen(&format!("\"{key}\":null"), &format!("\"{key}\":{digits}"), 1);
        }
    }
    frame.to_string()
}

/// Any frame text, per the module documentation.
fn any_frame() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        any_json().prop_map(|v| v.to_string()),
        (prop::sample::select(templates()), mutation()).prop_map(|(t, m)| mutate(t, &m)),
        (
            prop::sample::select(templates()),
            prop::collection::vec(mutation(), 1..4)
        )
            .prop_map(|(t, ms)| ms
                .iter()
                .fold(t, |f, m| serde_json::from_str(&mutate(f.clone(), m)).unwrap_or(f))
                .to_string()),
    ]
}

fn fuzz(cases: u32) {
    let (settings, who) = (settings(), admin());
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&any_frame(), |text| every_domain(&text, &settings, &who))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn every_message_type_has_a_template() {
    let types: Vec<String> = templates()
        .iter()
        .map(|t| t["type"].as_str().unwrap().to_owned())
        .collect();
    for kind in [
        Stub::TYPES,
        Bmx4::TYPES,
        Bmx5::TYPES,
        Diff::TYPES,
        TerminalConn::TYPES,
    ]
    .concat()
    {
        assert!(types.iter().any(|t| t == kind), "no fuzz template for {kind}");
    }
}

#[test]
fn every_template_is_accepted_and_every_field_removed_is_answered() {
    let (settings, who) = (settings(), admin());
    for template in templates() {
        let text = template.to_string();
        every_domain(&text, &settings, &who).unwrap();
        // a template that no domain takes would fuzz only the error paths
        let taken = [
            !matches!(
                parse_frame_checked::<StubRequest>(&text, Stub::TYPES, |_| Ok(())),
                Frame::Invalid(..)
            ),
            !matches!(
                parse_frame_checked::<Bmx4Request>(&text, Bmx4::TYPES, |_| Ok(())),
                Frame::Invalid(..)
            ),
            !matches!(
                parse_frame_checked::<Bmx5Request>(&text, Bmx5::TYPES, |_| Ok(())),
                Frame::Invalid(..)
            ),
            !matches!(
                parse_frame_checked::<DiffRequest>(&text, Diff::TYPES, |_| Ok(())),
                Frame::Invalid(..)
            ),
            !matches!(
                parse_frame_checked::<TerminalRequest>(&text, TerminalConn::TYPES, |_| Ok(())),
                Frame::Invalid(..)
            ),
        ];
        assert!(taken.contains(&true), "no domain parses {text}");
        for key in template.as_object().unwrap().keys() {
            let mut cut = template.clone();
            cut.as_object_mut().unwrap().remove(key);
            every_domain(&cut.to_string(), &settings, &who).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }
}

#[test]
fn deep_nesting_and_huge_numbers_are_refused_with_a_code() {
    let (settings, who) = (settings(), admin());
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge = format!(r#"{{"type":"resize","cols":{},"rows":1}}"#, "9".repeat(10_000));
    for text in [
        deep.as_str(),
        &huge,
        "\u{0}",
        "{\"type\":\"ssh_input\",\"data\":\"\\ud800\"}",
    ] {
        every_domain(text, &settings, &who).unwrap();
        match parse_frame_checked::<StubRequest>(text, Stub::TYPES, |_| Ok(())) {
            Frame::Invalid(e, _) => assert!(e.code.code() >= 31000, "{e}"),
            other => panic!("accepted {other:?}"),
        }
    }
}

#[test]
fn fifty_thousand_random_and_mutated_frames_are_all_answered() {
    fuzz(FUZZ_CASES);
}

#[test]
#[ignore = "the million-case run: before landing, not in CI (WAVE2 CI budget)"]
fn a_million_random_and_mutated_frames_are_all_answered() {
    fuzz(1_000_000);
}
