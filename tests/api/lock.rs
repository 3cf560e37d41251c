//! The session lock as a grant, end to end: an administrator's release, the
//! order "task finished, then lock free", and what a client is told when a
//! task's cleanup fails (50014).

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::fixtures::{app_with_server, big_transfer_toml, hidden_files, TempTree};
use crate::support::poll::eventually;
use crate::support::relay::FreezableRelay;
use crate::support::remote::{pgrep, RemoteProcess};
use crate::support::sshd::{SshdOptions, SshdServer};
use crate::support::ws::WsClient;

async fn delete_session(app: &TestApp) -> reqwest::Response {
    app.http.delete(app.url("/api/v1/session")).send().await.unwrap()
}

#[tokio::test]
async fn an_administrators_release_kills_the_owners_command_tells_it_and_frees_the_lock_at_once() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut owner = WsClient::stub(&app).await;
    owner.start_session().await;
    owner
        .send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "sleep 1020.5", "request_id": "cmd"}))
        .await;
    owner.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started("sleep 1020.5").await;

    let res = delete_session(&app).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], false);

    // The owner was told, and its command ended as cancelled: the lock was
    // freed only after that end (the DELETE waited for it).
    let (ended, before) = owner.recv_until("session_ended").await;
    assert!(ended["request_id"].is_null(), "unsolicited: {ended}");
    let complete = before
        .iter()
        .find(|f| f["type"] == "ssh_command_complete")
        .cloned();
    let complete = match complete {
        Some(c) => c,
        None => owner.recv_until("ssh_command_complete").await.0,
    };
    assert_eq!(complete["reason"], "cancelled");
    assert_eq!(complete["request_id"], "cmd");
    sleeper.ended("sleep survived the release").await;

    // A new owner can take the lock and run a command straight away.
    let mut next = WsClient::stub(&app).await;
    next.start_session().await;
    let (out, _, done) = next.run("mdwap1p", "echo next-owner").await;
    assert_eq!(done["exit_status"], 0, "{done}");
    assert!(out.contains("next-owner"));

    // The old owner no longer holds anything.
    owner
        .send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "true", "request_id": "late"}))
        .await;
    let err = owner.expect_error().await;
    assert_eq!(err["error"]["code"], 50008, "{err}");

    let audit = app.audit_events("action=session.force_release", 1).await;
    assert_eq!(audit[0]["detail"]["previous_owner"], owner.id.as_str());
}

#[tokio::test]
async fn an_administrators_release_of_a_free_lock_is_50005() {
    let app = TestApp::spawn_without_ssh().await;
    let res = delete_session(&app).await;
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 50005);
}

#[tokio::test]
async fn a_disconnected_owners_lock_is_released_only_after_its_command_ended() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut watcher = WsClient::stub(&app).await;
    let mut owner = WsClient::stub(&app).await;
    owner.start_session().await;
    owner
        .send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "sleep 1021.5"}))
        .await;
    owner.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started("sleep 1021.5").await;
    owner.close().await;
    loop {
        let (status, _) = watcher.recv_until("session_status").await;
        if status["active"] == false {
            break;
        }
    }
    // The command ends: the task closed the shell's channel and session
    // before it finished (sshd hangs up the PTY), and the lock was freed
    // after that. Its death is sshd's to carry out, a moment after the
    // channel closed and not ordered with anything the daemon does, so it
    // is awaited here, not required at the instant the lock is seen free
    // (that look failed under a loaded machine, and could not tell an
    // early release anyway: a PTY command dies within milliseconds of its
    // channel). The order "task finished, then lock free" is held by the
    // next test, which holds a task's cleanup back where it can be seen.
    sleeper.ended("the command outlived its owner's disconnect").await;
    watcher.start_session().await;
}

/// How long a silent network holds a stopping transfer's cleanup back in
/// the test below: long enough for an early release to show, well inside
/// the cleanup's own bound (`CLEANUP_TIMEOUT`, 4 s), after which the task
/// gives its cleanup up and the lock is freed anyway.
const HELD_WHILE_SILENT: Duration = Duration::from_millis(700);

/// Reads `watcher`'s frames until a `session_status` says the lock is
/// free, for at most `wait`: whether it did.
async fn released_within(watcher: &mut WsClient, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
    while let Some(frame) = watcher.try_recv(left()).await {
        if frame["type"] == "session_status" && frame["active"] == false {
            return true;
        }
    }
    false
}

/// The order of the test above where it can be seen from outside. A PTY
/// command's cleanup only sends the channel's close, and the command dies
/// within the moment a test takes to look, so that test cannot tell a lock
/// freed together with the stop from one freed after the task finished.
/// A transfer's cleanup removes its temporary file on the destination: a
/// silent network holds that back, and the lock must wait with it.
#[tokio::test]
async fn a_disconnected_owners_lock_is_released_only_after_its_transfer_cleaned_up() {
    let tree = TempTree::for_test_user("lock-order");
    tree.mkdir("src");
    let dst = tree.mkdir("dst");
    // 64 MiB: still copying when the owner leaves
    tree.write("src/big.dat", vec![7u8; 64 * 1024 * 1024]);
    let source = SshdServer::start(SshdOptions::default());
    let destination = SshdServer::start(SshdOptions::default());
    let relay = FreezableRelay::start(destination.port()).await;
    let through_relay = ServerEntry {
        port: relay.port,
        ..ServerEntry::for_sshd("beta", &destination)
    };
    let relay_host_key = destination
        .known_hosts_line()
        .replace(&format!(":{} ", destination.port()), &format!(":{} ", relay.port));
    let app = TestApp::builder()
        .sshd("alpha", &source)
        .server(through_relay)
        .known_hosts(&relay_host_key)
        .transfers_toml(&big_transfer_toml(&tree, "alpha", "beta", &dst))
        .spawn()
        .await;
    let mut watcher = WsClient::stub(&app).await;
    let mut owner = WsClient::stub(&app).await;
    owner.start_session().await;
    owner
        .send(json!({"type": "scp_transfer", "transfer_name": "big"}))
        .await;
    owner.recv_until("scp_progress").await;
    eventually("the transfer's temporary file exists", async || {
        !hidden_files(&dst).is_empty()
    })
    .await;

    // The destination's network goes silent and the owner leaves: its
    // transfer stops, and its cleanup waits for the destination.
    relay.freeze();
    owner.close().await;
    assert!(
        !released_within(&mut watcher, HELD_WHILE_SILENT).await,
        "the lock was freed while its task's cleanup could not run"
    );
    // Once the network is back the cleanup runs, and then the lock is
    // freed: at that moment the temporary file is gone already.
    relay.thaw();
    assert!(
        released_within(&mut watcher, Duration::from_secs(10)).await,
        "the lock was never freed"
    );
    assert_eq!(
        hidden_files(&dst),
        Vec::<String>::new(),
        "the lock was free before its task's cleanup ran"
    );
    watcher.start_session().await;
}

#[tokio::test]
async fn end_session_answers_after_the_command_ended_and_no_command_starts_meanwhile() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "sleep 1022.5"}))
        .await;
    c.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started("sleep 1022.5").await;
    c.send(json!({"type": "end_session", "request_id": "end"})).await;
    // While the session is ending, no new command may start under it.
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "true", "request_id": "during"}))
        .await;
    // Read until both the session's end and the answer to "during" came
    // (in either order: the stop may be quicker than the second frame).
    let mut frames: Vec<Value> = Vec::new();
    while !(frames.iter().any(|f| f["type"] == "session_ended")
        && frames.iter().any(|f| f["request_id"] == "during"))
    {
        frames.push(c.recv().await);
    }
    let kinds: Vec<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    let complete = kinds.iter().position(|k| *k == "ssh_command_complete");
    let ended = kinds.iter().position(|k| *k == "session_ended");
    assert!(complete.is_some() && complete < ended, "order: {kinds:?}");
    let refused = frames
        .iter()
        .find(|f| f["request_id"] == "during")
        .expect("the command sent during end_session was answered");
    assert!(
        refused["error"]["code"] == 50008 || refused["error"]["code"] == 50010,
        "{refused}"
    );
    sleeper.ended("it survived end_session").await;
}

#[tokio::test]
async fn a_cancel_whose_cleanup_cannot_reach_the_server_reports_50014_and_frees_the_slot() {
    let tree = TempTree::for_test_user("lock");
    tree.mkdir("src");
    tree.mkdir("dst");
    // 64 MiB: long enough to be cancelled in the middle.
    tree.write("src/big.dat", vec![7u8; 64 * 1024 * 1024]);
    let source = SshdServer::start(SshdOptions::default());
    let destination = SshdServer::start(SshdOptions::default());
    let relay = FreezableRelay::start(destination.port()).await;
    let through_relay = ServerEntry {
        port: relay.port,
        ..ServerEntry::for_sshd("beta", &destination)
    };
    let relay_host_key = destination
        .known_hosts_line()
        .replace(&format!(":{} ", destination.port()), &format!(":{} ", relay.port));
    let transfer = big_transfer_toml(&tree, "alpha", "beta", &tree.path("dst"));
    let app = TestApp::builder()
        .sshd("alpha", &source)
        .server(through_relay)
        .known_hosts(&relay_host_key)
        .transfers_toml(&transfer)
        .env("PINKPAGE_SSH_CONNECT_TIMEOUT_S", "3")
        .spawn()
        .await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "scp_transfer", "transfer_name": "big", "request_id": "t1"}))
        .await;
    c.recv_until("scp_progress").await;
    // The destination's network goes silent, then the operator cancels:
    // removing the temporary file cannot be done and must not hang.
    relay.freeze();
    c.send(json!({"type": "cancel"})).await;
    let (cancelled, before) = c.recv_until("scp_cancelled").await;
    assert_eq!(cancelled["request_id"], "t1");
    let cleanup = before
        .iter()
        .find(|f| f["type"] == "error")
        .unwrap_or_else(|| panic!("no cleanup error before scp_cancelled: {before:?}"));
    assert_eq!(cleanup["error"]["code"], 50014, "{cleanup}");
    // The slot is free again: the next task is not refused with 50010.
    relay.thaw();
    let (_, _, done) = c.run("alpha", "echo after").await;
    assert_eq!(done["exit_status"], 0, "{done}");
    // The lock is still held by this connection (a cancel keeps it).
    let status: Value = app.get("/api/v1/session").await.json().await.unwrap();
    assert_eq!(status["owner"], c.id.as_str());
}

#[tokio::test]
async fn a_user_takes_its_lock_over_from_its_other_tab_and_no_one_else_can() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let olga = app.identity("olga", "operator", None).await;
    let bob = app.identity("bob", "operator", None).await;
    let mut first_tab = WsClient::connect_with_token(&app, "/ws/v1/stub", &olga.token).await;
    first_tab.start_session().await;
    first_tab
        .send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "sleep 1021.5", "request_id": "cmd"}))
        .await;
    first_tab.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started("sleep 1021.5").await;

    // another user cannot: 50006, naming the holder by name, not by id
    let mut other = WsClient::connect_with_token(&app, "/ws/v1/stub", &bob.token).await;
    let refused = other
        .ask(
            json!({"type": "end_session", "take_over": true, "request_id": "t"}),
            "session_ended",
        )
        .await;
    assert_eq!(refused["error"]["code"], 50006, "{refused}");
    let detail = refused["error"]["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("held by olga"), "{detail}");
    assert!(!detail.contains("connection"), "{detail}");
    // and a plain start_session by the same user's other tab is still 50004
    let mut second_tab = WsClient::connect_with_token(&app, "/ws/v1/stub", &olga.token).await;
    let busy = second_tab
        .ask(
            json!({"type": "start_session", "request_id": "s"}),
            "session_started",
        )
        .await;
    assert_eq!(busy["error"]["code"], 50004, "{busy}");
    assert!(pgrep("sleep 1021.5"), "nothing was stopped by the refusals");

    // the same user's other tab takes over: the holder's session ends as
    // if it had sent end_session, and the answer comes once the lock is free
    let ended = second_tab
        .request(
            json!({"type": "end_session", "take_over": true, "request_id": "t"}),
            "session_ended",
        )
        .await;
    assert_eq!(ended["request_id"], "t");
    let (told, before) = first_tab.recv_until("session_ended").await;
    assert!(told["request_id"].is_null(), "unsolicited: {told}");
    let complete = match before.iter().find(|f| f["type"] == "ssh_command_complete") {
        Some(c) => c.clone(),
        None => first_tab.recv_until("ssh_command_complete").await.0,
    };
    assert_eq!(complete["reason"], "cancelled");
    sleeper.ended("the taken-over command").await;
    second_tab.start_session().await;
    let rows = app.audit_events("action=session.take_over", 1).await;
    assert_eq!(rows[0]["user"], "olga", "{}", rows[0]);
    assert!(rows[0]["detail"]["previous_owner"].is_string(), "{}", rows[0]);
}
