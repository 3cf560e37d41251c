//! A graceful stop (`src/shutdown.rs`): a real daemon process that the test
//! signals, with real work in flight on a real sshd.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::support::fixtures::with_servers;
use crate::support::remote::RemoteProcess;
use crate::support::ws::WsClient;

/// The grace the tests give the daemon; it exits well within it.
const GRACE_S: &str = "8";

#[tokio::test]
async fn sigterm_tells_every_client_stops_remote_work_removes_temp_files_and_exits_0() {
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let mut app = builder.env("PINKPAGE_SHUTDOWN_GRACE_S", GRACE_S).spawn().await;
    // a command under the lock
    let mut stub = WsClient::stub(&app).await;
    stub.start_session().await;
    let command = format!("sleep 1051.{}", app.port);
    stub.send(json!({"type": "ssh_command", "server": "alpha", "command": command}))
        .await;
    stub.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started(&command).await;
    // a script, with its temporary file on the server
    let mut scripts = WsClient::connect(&app, "/ws/v1/bmx5").await;
    let marker = format!("sleep 1052.{}", app.port);
    scripts
        .send(json!({"type": "script_execute", "server": "alpha", "script": format!("{marker}\n")}))
        .await;
    let (started, _) = scripts.recv_until("script_started").await;
    let script_file = started["remote_path"].as_str().unwrap().to_owned();
    let script = RemoteProcess::started(&marker).await;
    assert!(
        Path::new(&script_file).exists(),
        "the script's file is there while it runs"
    );

    let status = app
        .signal_and_wait("TERM", Duration::from_secs(20))
        .await
        .expect("the daemon exits");
    assert_eq!(status.code(), Some(0), "a clean exit");

    // every client was told, then closed with "service restart"
    for client in [&mut stub, &mut scripts] {
        let (frame, _) = client.recv_until("shutdown").await;
        assert_eq!(frame["error"]["code"], 30004, "{frame}");
        assert_eq!(frame["grace_s"], 8.0, "{frame}");
        let (code, reason) = client.recv_close().await;
        assert_eq!(code, 1012, "{reason}");
    }
    // the work was stopped on the server, and cleaned up
    sleeper.ended("the command outlived the daemon").await;
    script.ended("the script outlived the daemon").await;
    assert!(
        !Path::new(&script_file).exists(),
        "the script's temporary file is left"
    );
    let logs = app.logs();
    assert!(logs.contains("shutting down"), "{logs}");
    assert!(logs.contains("shutdown complete"), "{logs}");
}

#[tokio::test]
async fn sigint_does_the_same_and_a_stopped_daemon_restarts_with_the_lock_free() {
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let mut app = builder.env("PINKPAGE_SHUTDOWN_GRACE_S", GRACE_S).spawn().await;
    let mut stub = WsClient::stub(&app).await;
    stub.start_session().await;
    let status = app
        .signal_and_wait("INT", Duration::from_secs(20))
        .await
        .expect("the daemon exits");
    assert_eq!(status.code(), Some(0));
    let (frame, _) = stub.recv_until("shutdown").await;
    assert_eq!(frame["error"]["code"], 30004, "{frame}");
    let audit_written = app.logs();
    assert!(audit_written.contains("shutdown complete"), "{audit_written}");

    app.kill_and_restart().await;
    let session: serde_json::Value = app.get("/api/v1/session").await.json().await.unwrap();
    assert_eq!(session["active"], false, "{session}");
    // the audit rows of the first run were written before it exited
    let rows = app.audit_events("action=session.start", 1).await;
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn a_client_that_stopped_reading_does_not_hold_up_the_shutdown() {
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let mut app = builder
        .env("PINKPAGE_SHUTDOWN_GRACE_S", GRACE_S)
        .env("PINKPAGE_WS_HEARTBEAT_S", "0.5")
        // long: the stall watchdog must not be what drops it
        .env("PINKPAGE_WS_TIMEOUT_S", "120")
        .spawn()
        .await;
    let mut slow = WsClient::connect_slow_reader(&app, "/ws/v1/stub").await;
    slow.start_session().await;
    let command = format!("yes shutdown-stalled-{}", app.port);
    slow.send(json!({"type": "ssh_command", "server": "alpha", "command": command, "throttle_ms": 0}))
        .await;
    let yes = RemoteProcess::started(&command).await;
    crate::support::poll::eventually("the client's output stops draining", async || {
        let h: serde_json::Value = app.get("/api/v1/health").await.json().await.unwrap();
        h["websocket_connections_not_draining"] == 1
    })
    .await;

    let status = app
        .signal_and_wait("TERM", Duration::from_secs(20))
        .await
        .expect("the daemon exits");
    assert_eq!(status.code(), Some(0));
    yes.ended("the stalled client's command outlived the daemon")
        .await;
    let logs = app.logs();
    assert!(
        logs.contains("clients still connected after the shutdown frame"),
        "{logs}"
    );
    assert!(logs.contains("shutdown complete"), "{logs}");
    drop(slow);
}
