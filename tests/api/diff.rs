//! DIFF end to end: files, directory trees and command output compared
//! between two real sshd servers (`left` and `right`), over the WebSocket
//! and over REST. Both servers serve this machine's test user, so every
//! test works in its own /tmp/pinkpage-diff-<uuid>/{left,right}.
//!
//! (Over 450 lines: every test shares the two-server fixture and the
//! sandbox; the last ones are about bounds, a client gone and the memory
//! budget, and would be a module of three tests on their own.)

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::daemon::TestApp;
use crate::support::fixtures::{with_servers, TempTree};
use crate::support::poll::eventually;
use crate::support::remote::RemoteProcess;
use crate::support::sshd::SshdServer;
use crate::support::ws::WsClient;

/// A daemon with two real servers, `left` and `right`.
struct TwoServers {
    app: TestApp,
    left: SshdServer,
    right: SshdServer,
}

async fn two_servers() -> TwoServers {
    two_servers_with(&[]).await
}

async fn two_servers_with(env: &[(&str, &str)]) -> TwoServers {
    let (mut builder, [left, right]) = with_servers(["left", "right"]);
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    let app = builder.spawn().await;
    TwoServers { app, left, right }
}

/// A fresh tree with `left/` and `right/`, owned by the test user.
fn sandbox() -> TempTree {
    let tree = TempTree::for_test_user("diff");
    tree.mkdir("left");
    tree.mkdir("right");
    tree
}

async fn diff_ws(app: &TestApp) -> WsClient {
    WsClient::connect(app, "/ws/v1/diff").await
}

fn files_request(left: &str, right: &str) -> Value {
    json!({"type": "diff_files", "request_id": "f1",
        "left": {"server": "left", "path": left},
        "right": {"server": "right", "path": right}})
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[tokio::test]
async fn the_diff_welcome_names_the_domain() {
    let app = TestApp::spawn_without_ssh().await;
    let c = diff_ws(&app).await;
    assert_eq!(c.welcome["message"], "Connected to DIFF WebSocket");
}

#[tokio::test]
async fn identical_files_on_two_servers_are_identical_with_an_empty_diff() {
    let s = two_servers().await;
    let sb = sandbox();
    let text = "listen 8080\nworkers 4\n";
    let l = sb.write("left/app.conf", text);
    let r = sb.write("right/app.conf", text);
    let mut c = diff_ws(&s.app).await;

    let reply = c.ask(files_request(&l, &r), "diff_result").await;

    assert_eq!(reply["type"], "diff_result", "{reply}");
    assert_eq!(reply["request_id"], "f1");
    assert_eq!(reply["identical"], true);
    assert_eq!(reply["unified_diff"], "");
    assert_eq!(reply["binary"], false);
    assert_eq!(reply["left_sha256"], sha256_hex(text.as_bytes()));
    assert_eq!(reply["right_sha256"], reply["left_sha256"]);
    assert_eq!(reply["left_size"], text.len());
}

#[tokio::test]
async fn one_changed_line_gives_a_unified_diff_that_patch_applies_to_turn_left_into_right() {
    let s = two_servers().await;
    let sb = sandbox();
    let left: String = (1..=40).map(|i| format!("line {i}\n")).collect();
    let right = left.replace("line 20\n", "line twenty\n");
    let l = sb.write("left/data.txt", &left);
    let r = sb.write("right/data.txt", &right);
    let mut c = diff_ws(&s.app).await;

    let reply = c.ask(files_request(&l, &r), "diff_result").await;

    assert_eq!(reply["identical"], false, "{reply}");
    let diff = reply["unified_diff"].as_str().unwrap();
    assert!(
        diff.starts_with(&format!("--- left:{l}\n+++ right:{r}\n")),
        "{diff}"
    );
    assert!(
        diff.contains("@@ -17,7 +17,7 @@\n"),
        "three lines of context: {diff}"
    );
    assert!(diff.contains("-line 20\n+line twenty\n"), "{diff}");
    // patch turns a copy of the left file into the right one
    let work = TempTree::private("patch");
    let copy = work.join("data.txt");
    let patch_file = work.join("change.diff");
    std::fs::write(&copy, &left).unwrap();
    std::fs::write(&patch_file, diff).unwrap();
    let out = std::process::Command::new("patch")
        .arg(&copy)
        .arg(&patch_file)
        .output()
        .expect("patch (apt-get install patch)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), right);
}

#[tokio::test]
async fn binary_files_that_differ_are_reported_by_hash_without_a_text_diff() {
    let s = two_servers().await;
    let sb = sandbox();
    let left = b"\x7fELF\0\0\x01binary-one".to_vec();
    let right = b"\x7fELF\0\0\x01binary-two".to_vec();
    let l = sb.write("left/tool", &left);
    let r = sb.write("right/tool", &right);
    let mut c = diff_ws(&s.app).await;

    let reply = c.ask(files_request(&l, &r), "diff_result").await;

    assert_eq!(reply["binary"], true, "{reply}");
    assert_eq!(reply["identical"], false);
    assert_eq!(reply["unified_diff"], "");
    assert_eq!(reply["left_sha256"], sha256_hex(&left));
    assert_eq!(reply["right_sha256"], sha256_hex(&right));
}

#[tokio::test]
async fn a_file_over_the_size_cap_gives_53000() {
    let s = two_servers_with(&[("PINKPAGE_DIFF_MAX_BYTES", "1024")]).await;
    let sb = sandbox();
    let l = sb.write("left/small.txt", "small\n");
    let r = sb.write("right/big.txt", "x".repeat(2000));
    let mut c = diff_ws(&s.app).await;

    let reply = c.ask(files_request(&l, &r), "diff_result").await;

    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["error"]["code"], 53000);
    let detail = reply["error"]["detail"].as_str().unwrap();
    assert!(detail.starts_with("right: "), "{detail}");
    assert!(
        detail.contains("2000 bytes") && detail.contains("1024"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_missing_path_on_the_right_gives_53000_naming_the_right_side() {
    let s = two_servers().await;
    let sb = sandbox();
    let l = sb.write("left/app.conf", "a\n");
    let r = sb.path("right/app.conf");
    let mut c = diff_ws(&s.app).await;

    let reply = c.ask(files_request(&l, &r), "diff_result").await;

    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["request_id"], "f1");
    assert_eq!(reply["error"]["code"], 53000);
    let detail = reply["error"]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("right: no such file: server 'right'"),
        "{detail}"
    );
    assert!(detail.contains(&r), "{detail}");
}

#[tokio::test]
async fn an_unknown_server_gives_23000() {
    let s = two_servers().await;
    let mut c = diff_ws(&s.app).await;
    let frame = json!({"type": "diff_files",
        "left": {"server": "left", "path": "/etc/hostname"},
        "right": {"server": "nowhere", "path": "/etc/hostname"}});

    let reply = c.ask(frame, "diff_result").await;

    assert_eq!(reply["error"]["code"], 23000, "{reply}");
    assert!(reply["error"]["detail"].as_str().unwrap().contains("right"));
}

#[tokio::test]
async fn rest_and_websocket_refuse_an_unknown_server_with_the_same_error() {
    let app = TestApp::spawn_without_ssh().await;
    let body = json!({"command": "true", "left_server": "mdwap1p", "right_server": "nowhere"});
    let mut frame = body.clone();
    frame["type"] = json!("diff_command");

    let res = app.post_json("/api/v1/diff/command", &body).await;
    let mut c = diff_ws(&app).await;
    let reply = c.ask(frame, "diff_command_result").await;

    assert_eq!(res.status(), 404);
    let rest: Value = res.json().await.unwrap();
    assert_eq!(rest["error"]["code"], 23000, "{rest}");
    assert_eq!(rest["error"]["detail"], "right: no server named 'nowhere'");
    assert_eq!(reply["error"], rest["error"], "{reply}");
}

/// left/: a.txt, same.txt, changed.txt, sub/deep.txt, only-left.txt
/// right/: a.txt, same.txt, changed.txt (other content, same size),
///         sub/deep.txt, sub/only-right.txt
fn two_trees(sb: &TempTree) {
    for side in ["left", "right"] {
        sb.write(&format!("{side}/a.txt"), "alpha\n");
        sb.write(&format!("{side}/same.txt"), "same\n");
        sb.write(&format!("{side}/sub/deep.txt"), "deep\n");
    }
    sb.write("left/changed.txt", "version 1\n");
    sb.write("right/changed.txt", "version 2\n");
    sb.write("left/only-left.txt", "l\n");
    sb.write("right/sub/only-right.txt", "r\n");
}

#[tokio::test]
async fn directory_trees_with_an_extra_file_on_each_side_and_one_changed_file_are_reported_exactly() {
    let s = two_servers().await;
    let sb = sandbox();
    two_trees(&sb);
    let mut c = diff_ws(&s.app).await;
    let frame = json!({"type": "diff_dirs", "request_id": "d1",
        "left": {"server": "left", "path": sb.path("left")},
        "right": {"server": "right", "path": sb.path("right")},
        "recursive": true, "compare": "sha256"});

    let reply = c.ask(frame, "diff_dirs_result").await;

    assert_eq!(reply["type"], "diff_dirs_result", "{reply}");
    assert_eq!(reply["request_id"], "d1");
    assert_eq!(reply["only_left"], json!(["only-left.txt"]));
    assert_eq!(reply["only_right"], json!(["sub/only-right.txt"]));
    let differing = reply["differing"].as_array().unwrap();
    assert_eq!(differing.len(), 1, "{reply}");
    assert_eq!(differing[0]["path"], "changed.txt");
    assert_eq!(differing[0]["reasons"], json!(["sha256"]));
    assert_eq!(differing[0]["left"]["sha256"], sha256_hex(b"version 1\n"));
    assert_eq!(differing[0]["right"]["sha256"], sha256_hex(b"version 2\n"));
    // a.txt, same.txt, sub, sub/deep.txt
    assert_eq!(reply["identical_count"], 4);

    // by size alone the changed file (same size) looks the same
    let by_size = json!({"type": "diff_dirs",
        "left": {"server": "left", "path": sb.path("left")},
        "right": {"server": "right", "path": sb.path("right")},
        "recursive": true});
    let reply = c.ask(by_size, "diff_dirs_result").await;
    assert_eq!(reply["differing"], json!([]), "{reply}");
    assert_eq!(reply["identical_count"], 5);

    // not recursive: only the top level
    let top = json!({"type": "diff_dirs",
        "left": {"server": "left", "path": sb.path("left")},
        "right": {"server": "right", "path": sb.path("right")}});
    let reply = c.ask(top, "diff_dirs_result").await;
    assert_eq!(reply["only_right"], json!([]), "{reply}");
    assert_eq!(reply["only_left"], json!(["only-left.txt"]));
}

#[tokio::test]
async fn diff_command_of_cat_of_two_different_files_gives_their_diff_and_both_exit_statuses() {
    let s = two_servers().await;
    let sb = sandbox();
    // Both servers are this machine: the command picks its file by the
    // server port sshd puts in SSH_CONNECTION, and fails on the right.
    let (lp, rp) = (s.left.port(), s.right.port());
    sb.write(&format!("out-{lp}.txt"), "user=app\nmode=prod\n");
    sb.write(&format!("out-{rp}.txt"), "user=app\nmode=dev\n");
    let command = format!(
        "port=$(echo $SSH_CONNECTION | cut -d' ' -f4); cat {}/out-$port.txt; test $port = {lp}",
        sb.root().display()
    );
    let mut c = diff_ws(&s.app).await;
    let frame = json!({"type": "diff_command", "request_id": "c1",
        "command": command, "left_server": "left", "right_server": "right"});

    let reply = c.ask(frame, "diff_command_result").await;

    assert_eq!(reply["type"], "diff_command_result", "{reply}");
    assert_eq!(reply["request_id"], "c1");
    assert_eq!(reply["identical"], false);
    assert_eq!(
        reply["unified_diff"],
        "--- left:stdout\n+++ right:stdout\n@@ -1,2 +1,2 @@\n user=app\n-mode=prod\n+mode=dev\n"
    );
    assert_eq!(reply["left_exit_status"], 0);
    assert_eq!(reply["right_exit_status"], 1);
    assert_eq!(reply["left_stderr"], "");
    assert_eq!(reply["left_truncated"], false);
}

#[tokio::test]
async fn rest_diff_files_answers_a_diff_result_and_404_with_53000_for_a_missing_file() {
    let s = two_servers().await;
    let sb = sandbox();
    let l = sb.write("left/x.txt", "one\n");
    let r = sb.write("right/x.txt", "two\n");
    let body =
        json!({"left": {"server": "left", "path": l}, "right": {"server": "right", "path": r}, "context": 0});

    let res = s.app.post_json("/api/v1/diff/files", &body).await;

    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["type"], "diff_result");
    assert_eq!(v["identical"], false);
    assert_eq!(
        v["unified_diff"],
        format!("--- left:{l}\n+++ right:{r}\n@@ -1 +1 @@\n-one\n+two\n")
    );

    let missing = json!({"left": {"server": "left", "path": sb.path("left/none")}, "right": {"server": "right", "path": r}});
    let res = s.app.post_json("/api/v1/diff/files", &missing).await;
    assert_eq!(res.status(), 404);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["success"], false);
    assert_eq!(v["error"]["code"], 53000);
    assert!(
        v["error"]["detail"].as_str().unwrap().starts_with("left: "),
        "{v}"
    );
}

#[tokio::test]
async fn rest_diff_dirs_answers_a_diff_dirs_result() {
    let s = two_servers().await;
    let sb = sandbox();
    two_trees(&sb);
    let body = json!({"left": {"server": "left", "path": sb.path("left")},
        "right": {"server": "right", "path": sb.path("right")},
        "recursive": true, "max_depth": 1, "compare": "sha256"});

    let res = s.app.post_json("/api/v1/diff/dirs", &body).await;

    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["type"], "diff_dirs_result");
    assert_eq!(v["only_left"], json!(["only-left.txt"]));
    assert_eq!(v["only_right"], json!([]), "max_depth 1 stays at the top: {v}");
    assert_eq!(v["differing"][0]["path"], "changed.txt");
}

#[tokio::test]
async fn rest_diff_command_answers_a_diff_command_result_and_refuses_a_bad_body() {
    let s = two_servers().await;
    let body = json!({"command": "echo same; exit 3", "left_server": "left", "right_server": "right"});

    let res = s.app.post_json("/api/v1/diff/command", &body).await;

    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["type"], "diff_command_result");
    assert_eq!(v["identical"], true, "{v}");
    assert_eq!(v["unified_diff"], "");
    assert_eq!(v["left_exit_status"], 3);
    assert_eq!(v["right_exit_status"], 3);
    assert_eq!(v["left_sha256"], sha256_hex(b"same\n"));

    let res = s
        .app
        .post_json("/api/v1/diff/command", &json!({"left_server": "left"}))
        .await;
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], 10001);
}

#[tokio::test]
async fn the_openapi_document_lists_the_diff_endpoints() {
    let app = TestApp::spawn_without_ssh().await;
    let doc: Value = app.get("/api-docs/openapi.json").await.json().await.unwrap();
    for path in ["/api/v1/diff/files", "/api/v1/diff/dirs", "/api/v1/diff/command"] {
        assert!(doc["paths"][path]["post"].is_object(), "{path} missing");
    }
}

#[tokio::test]
async fn a_diff_command_whose_client_disconnects_is_stopped_on_both_servers() {
    let s = two_servers().await;
    let mut c = diff_ws(&s.app).await;
    // Each side writes its port to a file, then sleeps: both must be seen
    // running before the client goes, and both must end after.
    let sb = sandbox();
    let command = format!(
        "echo $SSH_CONNECTION | cut -d' ' -f4 >> {}/started; exec sleep 1031.5",
        sb.root().display()
    );
    c.send(json!({"type": "diff_command", "request_id": "c1",
        "command": command, "left_server": "left", "right_server": "right"}))
        .await;
    let started = sb.join("started");
    let sleepers = RemoteProcess::started("sleep 1031.5").await;
    eventually("both sides started", async || {
        std::fs::read_to_string(&started).is_ok_and(|s| s.lines().count() == 2)
    })
    .await;
    c.close().await;
    sleepers.ended("a diff_command outlived its client").await;
}

#[tokio::test]
async fn a_rest_diff_command_whose_client_disconnects_is_stopped_on_both_servers() {
    let s = two_servers().await;
    let sb = sandbox();
    let command = format!(
        "echo $SSH_CONNECTION | cut -d' ' -f4 >> {}/started; exec sleep 300.7531",
        sb.root().display()
    );
    let body = json!({"command": command, "left_server": "left", "right_server": "right"});
    let app = &s.app;
    let request = async move { app.post_json("/api/v1/diff/command", &body).await };

    // the request runs until both sides are seen, then is dropped with its
    // connection: what a client that goes away looks like to the daemon
    let started = sb.join("started");
    let seen = async {
        let sleepers = RemoteProcess::started("^sleep 300.7531").await;
        eventually("both sides started", async || {
            std::fs::read_to_string(&started).is_ok_and(|s| s.lines().count() == 2)
        })
        .await;
        sleepers
    };
    let sleepers = tokio::select! {
        res = request => panic!("the diff answered before its client left: {}", res.status()),
        sleepers = seen => sleepers,
    };

    // the bound: nothing left after 10 s
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        sleepers.ended("a REST diff_command outlived its client"),
    )
    .await
    .expect("the sleeps still run 10 s after the client left");
}

#[tokio::test]
async fn a_diff_past_the_daemons_memory_budget_gets_53001_and_the_budget_is_whole_again_after() {
    // 1 MiB a side: a diff_command reserves 2 x (1 MiB + 64 KiB), a
    // diff_files 2 MiB; 3,000,000 bytes fit one of them, never two
    let s = two_servers_with(&[
        ("PINKPAGE_DIFF_MAX_BYTES", "1048576"),
        ("PINKPAGE_DIFF_BUDGET_BYTES", "3000000"),
    ])
    .await;
    let sb = sandbox();
    let l = sb.write("left/a.txt", "one\n");
    let r = sb.write("right/a.txt", "two\n");
    let files = json!({"left": {"server": "left", "path": l}, "right": {"server": "right", "path": r}});
    // A holds the budget with a command that waits for `go`
    let mut holder = diff_ws(&s.app).await;
    let root = sb.root().display().to_string();
    holder
        .send(json!({"type": "diff_command", "request_id": "hold", "left_server": "left", "right_server": "right",
            "command": format!("touch {root}/held.$$; while [ ! -e {root}/go ]; do sleep 0.05; done; echo done")}))
        .await;
    eventually("both sides of the holding diff run", async || {
        std::fs::read_dir(sb.root())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("held.")
            })
            .count()
            == 2
    })
    .await;

    let refused = s.app.post_json("/api/v1/diff/files", &files).await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], 53001, "{body}");
    let mut other = diff_ws(&s.app).await;
    let ws_refused = other.ask(files_request(&l, &r), "diff_result").await;
    assert_eq!(ws_refused["error"]["code"], 53001, "{ws_refused}");

    sb.write("go", "");
    let held = holder.ask(json!({"type": "ping"}), "diff_command_result").await;
    assert_eq!(held["identical"], true, "{held}");

    // released on every path: after an answer, after an error, repeatedly
    let missing =
        json!({"left": {"server": "left", "path": format!("{root}/left/none")}, "right": files["right"]});
    for _ in 0..3 {
        let res = s.app.post_json("/api/v1/diff/files", &missing).await;
        assert_eq!(res.status(), 404);
        let ok = other.ask(files_request(&l, &r), "diff_result").await;
        assert_eq!(ok["identical"], false, "{ok}");
        let ok = s.app.post_json("/api/v1/diff/files", &files).await;
        assert_eq!(ok.status(), 200);
    }
}
