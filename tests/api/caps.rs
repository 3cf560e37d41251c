//! Bounded under abuse (issue 11, the "caps" part): a client that stops
//! reading is dropped with its command and its lock; a force release
//! reaches the command of an owner that is no longer polled; the caps on
//! WebSocket connections and on SSH sessions per server answer with their
//! codes, keep serving others and give everything back.
//!
//! Timeouts are set small through settings (the example uses
//! 30 s): `PINKPAGE_WS_TIMEOUT_S=3` with a 0.5 s heartbeat keeps each test
//! to seconds (3 rather than 2: the bound of 3 x the timeout must also
//! hold on a loaded 2-core machine running the whole suite).

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::fixtures::with_servers;
use crate::support::poll::{eventually, eventually_within};
use crate::support::remote::RemoteProcess;
use crate::support::ws::WsClient;

/// The stall timeout of these tests, seconds.
const STALL_S: u64 = 3;

async fn health(app: &TestApp) -> Value {
    app.anon
        .get(app.url("/api/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn lock_active(app: &TestApp) -> bool {
    let body: Value = app.get("/api/v1/session").await.json().await.unwrap();
    body["active"].as_bool().expect("active")
}

/// A slow reader that holds the lock and runs a flood of output (`yes`
/// with a marker), seen running on the server. From here on the test
/// never reads from it.
async fn flooding_owner(app: &TestApp, marker: &str) -> (WsClient, RemoteProcess) {
    let mut slow = WsClient::connect_slow_reader(app, "/ws/v1/stub").await;
    slow.start_session().await;
    let command = format!("yes {marker}");
    slow.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": command, "throttle_ms": 0, "request_id": "flood"}))
        .await;
    let yes = RemoteProcess::started(&command).await;
    (slow, yes)
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_its_command_killed_and_its_lock_freed() {
    let (builder, [_sshd]) = with_servers(["mdwap1p"]);
    let app = builder
        .env("PINKPAGE_WS_HEARTBEAT_S", "0.5")
        .env("PINKPAGE_WS_TIMEOUT_S", &STALL_S.to_string())
        .spawn()
        .await;
    let (slow, yes) = flooding_owner(&app, "caps-stalled-reader").await;
    let started = Instant::now();
    assert!(lock_active(&app).await);

    let bound = Duration::from_secs(3 * STALL_S);
    eventually_within(bound, "the stalled owner's lock is released", async || {
        !lock_active(&app).await
    })
    .await;
    yes.ended("the stalled client's command outlived it").await;
    assert!(started.elapsed() < bound, "took {:?}", started.elapsed());

    // the drop is on record with its code, and the daemon serves on
    let audit = app.audit_events("action=ws.stalled", 1).await;
    assert_eq!(audit[0]["actor"], slow.id.as_str(), "{}", audit[0]);
    assert_eq!(audit[0]["detail"]["code"], 30003, "{}", audit[0]);
    let mut next = WsClient::stub(&app).await;
    next.start_session().await;
    let (out, _, done) = next.run("mdwap1p", "echo after-the-stall").await;
    assert_eq!(done["exit_status"], 0, "{done}");
    assert!(out.contains("after-the-stall"));
    // the stalled connection's place was given back
    eventually("only the new client is counted", async || {
        health(&app).await["websocket_connections"] == 1
    })
    .await;
    drop(slow);
}

#[tokio::test]
async fn a_force_release_stops_the_command_of_an_owner_that_stopped_reading() {
    let (builder, [_sshd]) = with_servers(["mdwap1p"]);
    // A long stall timeout: the watchdog must not be what ends it.
    let app = builder
        .env("PINKPAGE_WS_HEARTBEAT_S", "0.5")
        .env("PINKPAGE_WS_TIMEOUT_S", "120")
        .spawn()
        .await;
    let (slow, yes) = flooding_owner(&app, "caps-force-release").await;
    eventually("the owner's output stops draining", async || {
        health(&app).await["websocket_connections_not_draining"] == 1
    })
    .await;

    let asked = Instant::now();
    let res = app.http.delete(app.url("/api/v1/session")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], false);
    // Before, the release waited out the owner's 10 s revoke timeout and
    // left its command running.
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "took {:?}",
        asked.elapsed()
    );
    yes.ended("the force release left the stalled owner's command running")
        .await;
    // the connection itself is still there (stalled, not yet timed out)
    assert_eq!(health(&app).await["websocket_connections"], 1);
    let mut next = WsClient::stub(&app).await;
    next.start_session().await;
    drop(slow);
}

/// An upgrade the daemon refused: the HTTP status and the JSON body.
async fn refused_upgrade(app: &TestApp, token: &str) -> (u16, Value) {
    let headers = [("authorization".to_owned(), format!("Bearer {token}"))];
    match WsClient::open(app, "/ws/v1/stub", &headers).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            let body = res.body().clone().unwrap_or_default();
            (
                res.status().as_u16(),
                serde_json::from_slice(&body).expect("JSON error body"),
            )
        }
        Err(e) => panic!("refused without an HTTP answer: {e}"),
        Ok(_) => panic!("upgrade accepted past the cap"),
    }
}

#[tokio::test]
async fn websocket_caps_refuse_the_upgrade_with_their_codes_and_places_come_back() {
    let app = TestApp::builder()
        .server(ServerEntry::unreachable("mdwap1p"))
        .env("PINKPAGE_WS_MAX_CONNECTIONS", "3")
        .env("PINKPAGE_WS_MAX_CONNECTIONS_PER_USER", "2")
        .spawn()
        .await;
    let admin = app.admin_token.clone().unwrap();
    let ana = app.identity("ana", "viewer", None).await;
    let bo = app.identity("bo", "viewer", None).await;

    let mut a1 = WsClient::stub(&app).await;
    let a2 = WsClient::stub(&app).await;
    let (status, body) = refused_upgrade(&app, &admin).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (429, json!(30002)),
        "{body}"
    );

    let ana1 = WsClient::connect_with_token(&app, "/ws/v1/stub", &ana.token).await;
    let (status, body) = refused_upgrade(&app, &bo.token).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (503, json!(30001)),
        "{body}"
    );

    // those admitted are served as before
    let pong = a1
        .request(json!({"type": "ping", "request_id": "p"}), "pong")
        .await;
    assert_eq!(pong["request_id"], "p");

    // a closed connection gives its place back
    a2.close().await;
    eventually("the closed connection is no longer counted", async || {
        health(&app).await["websocket_connections"] == 2
    })
    .await;
    let bo1 = WsClient::connect_with_token(&app, "/ws/v1/stub", &bo.token).await;

    for c in [a1, ana1, bo1] {
        c.close().await;
    }
    eventually("every place is given back", async || {
        health(&app).await["websocket_connections"] == 0
    })
    .await;
}

#[tokio::test]
async fn ssh_sessions_past_the_per_server_cap_wait_then_get_20003_and_a_freed_slot_serves_the_next() {
    let (builder, [_sshd]) = with_servers(["mdwap1p"]);
    let app = builder
        .env("PINKPAGE_SSH_MAX_SESSIONS_PER_SERVER", "1")
        .env("PINKPAGE_SSH_SESSION_WAIT_S", "1")
        .spawn()
        .await;
    let mut owner = WsClient::stub(&app).await;
    owner.start_session().await;
    owner
        .send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "sleep 1031.5", "request_id": "hold"}))
        .await;
    owner.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started("sleep 1031.5").await;
    assert_eq!(health(&app).await["ssh_sessions"], 1);

    let asked = Instant::now();
    let res = app.post_json("/api/v1/servers/mdwap1p/check", &json!({})).await;
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 20003, "{body}");
    assert!(
        asked.elapsed() >= Duration::from_secs(1),
        "did not wait in the queue"
    );
    // the daemon serves everything else meanwhile, and nothing waits now
    let h = health(&app).await;
    assert_eq!(
        (h["ssh_sessions"].clone(), h["ssh_sessions_waiting"].clone()),
        (json!(1), json!(0))
    );

    owner.send(json!({"type": "cancel"})).await;
    owner.recv_until("ssh_command_complete").await;
    sleeper.ended("cancelled").await;
    eventually("the command's session slot is given back", async || {
        health(&app).await["ssh_sessions"] == 0
    })
    .await;
    let res = app.post_json("/api/v1/servers/mdwap1p/check", &json!({})).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
    eventually("the check's session slot is given back", async || {
        health(&app).await["ssh_sessions"] == 0
    })
    .await;
}

#[tokio::test]
async fn operations_past_the_per_connection_cap_get_10008_while_other_connections_are_served() {
    let (builder, [_left, _right]) = with_servers(["left", "right"]);
    let app = builder
        .env("PINKPAGE_WS_MAX_OPS_PER_CONNECTION", "2")
        .spawn()
        .await;
    let diff = |rid: &str, command: &str| {
        json!({"type": "diff_command", "request_id": rid, "command": command,
            "left_server": "left", "right_server": "right"})
    };
    let mut busy = WsClient::connect(&app, "/ws/v1/diff").await;
    busy.send(diff("a", "sleep 2.25; echo caps-ops")).await;
    busy.send(diff("b", "sleep 2.25; echo caps-ops")).await;
    let sleeping = RemoteProcess::started("sleep 2.25").await;

    busy.send(diff("c", "echo one-too-many")).await;
    let err = busy.expect_error().await;
    assert_eq!(err["request_id"], "c", "{err}");
    assert_eq!(err["error"]["code"], 10008, "{err}");

    // another connection has its own operations
    let mut other = WsClient::connect(&app, "/ws/v1/diff").await;
    let reply = other
        .ask(diff("o", "echo elsewhere"), "diff_command_result")
        .await;
    assert_eq!(reply["identical"], true, "{reply}");

    // both operations end, and their places come back
    let mut ended = Vec::new();
    while ended.len() < 2 {
        let (result, _) = busy.recv_until("diff_command_result").await;
        ended.push(result["request_id"].as_str().unwrap().to_owned());
    }
    ended.sort();
    assert_eq!(ended, ["a", "b"]);
    sleeping.ended("finished").await;
    let reply = busy.ask(diff("d", "echo again"), "diff_command_result").await;
    assert_eq!(reply["identical"], true, "{reply}");
}
