//! A network that goes silent (packets dropped, not refused): a
//! [`FreezableRelay`] between the daemon and one sshd stops forwarding
//! without closing anything. Work on that server must end with an error
//! at its configured limit (SSH keepalives for established sessions, the
//! connect timeout for new ones, the health timeout for checks), never hang,
//! and leave nothing behind once the network is back.
//!
//! Without keepalives (`PINKPAGE_SSH_KEEPALIVE_S=0`) the first test hangs
//! until the harness's own wait gives up: the kernel would notice the dead
//! peer only hours later.

use serde_json::{json, Value};

use crate::support::daemon::{ServerEntry, TestApp, TestAppBuilder};
use crate::support::fixtures::{big_transfer_toml, hidden_files, TempTree};
use crate::support::poll::eventually;
use crate::support::relay::FreezableRelay;
use crate::support::remote::RemoteProcess;
use crate::support::sshd::{SshdOptions, SshdServer};
use crate::support::ws::WsClient;

/// A keepalive every half second: a silent server is given up after four
/// unanswered periods, about 2 s.
const KEEPALIVE_S: &str = "0.5";

/// A builder with server `name` reached through a relay in front of
/// `sshd`, its host key known at the relay's port.
async fn behind_relay(
    builder: TestAppBuilder,
    name: &str,
    sshd: &SshdServer,
) -> (TestAppBuilder, FreezableRelay) {
    let relay = FreezableRelay::start(sshd.port()).await;
    let entry = ServerEntry {
        port: relay.port,
        ..ServerEntry::for_sshd(name, sshd)
    };
    let key = sshd
        .known_hosts_line()
        .replace(&format!(":{} ", sshd.port()), &format!(":{} ", relay.port));
    (builder.server(entry).known_hosts(&key), relay)
}

#[tokio::test]
async fn a_command_on_a_silent_server_ends_with_an_error_and_a_new_connect_times_out() {
    let sshd = SshdServer::start(SshdOptions::default());
    let (builder, relay) = behind_relay(TestApp::builder(), "beta", &sshd).await;
    let app = builder
        .env("PINKPAGE_SSH_KEEPALIVE_S", KEEPALIVE_S)
        .env("PINKPAGE_SSH_CONNECT_TIMEOUT_S", "1")
        .spawn()
        .await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "ssh_command", "server": "beta", "command": "sleep 1031.5"}))
        .await;
    c.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started("sleep 1031.5").await;

    relay.freeze();
    // an error frame, then the completion
    let (_, _, ended) = c.collect_until_complete().await;
    assert_eq!(ended["error"]["error"]["code"], 20000, "{ended}");
    let detail = ended["error"]["error"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("connection was lost"), "{ended}");
    assert_eq!(ended["complete"]["reason"], "error", "{ended}");
    assert!(
        ended["complete"]["exit_status"].is_null(),
        "no exit status came: {ended}"
    );

    // a new session to the silent server: the connect timeout
    c.send(json!({"type": "ssh_command", "server": "beta", "command": "true", "request_id": "n1"}))
        .await;
    let (_, _, refused) = c.collect_until_complete().await;
    assert_eq!(refused["error"]["error"]["code"], 20001, "{refused}");
    assert_eq!(refused["error"]["request_id"], "n1", "{refused}");

    // the network comes back: sshd sees the old connection close and ends
    // its command; the lock is still this connection's, and work goes on
    relay.thaw();
    sleeper.ended("the old session's command").await;
    let (out, _, done) = c.run("beta", "echo back").await;
    assert!(out.contains("back"), "{out:?}");
    assert_eq!(done["exit_status"], 0);
    let status: Value = app.get("/api/v1/session").await.json().await.unwrap();
    assert_eq!(status["owner"], c.id.as_str());
}

#[tokio::test]
async fn a_transfer_to_a_silent_server_fails_and_leaves_no_final_file() {
    let tree = TempTree::for_test_user("silent-xfer");
    tree.mkdir("src");
    let dst = tree.mkdir("dst");
    tree.write("src/big.dat", vec![7u8; 64 * 1024 * 1024]);
    let source = SshdServer::start(SshdOptions::default());
    let destination = SshdServer::start(SshdOptions::default());
    let (builder, relay) =
        behind_relay(TestApp::builder().sshd("alpha", &source), "beta", &destination).await;
    let transfer = big_transfer_toml(&tree, "alpha", "beta", &dst);
    let app = builder
        .transfers_toml(&transfer)
        .env("PINKPAGE_SSH_KEEPALIVE_S", KEEPALIVE_S)
        .spawn()
        .await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "scp_transfer", "transfer_name": "big", "request_id": "t1"}))
        .await;
    c.recv_until("scp_progress").await;

    relay.freeze();
    // the transfer fails (24000); removing its temporary file cannot be
    // done on a dead session either (50014), and neither hangs
    let codes = c
        .error_codes_until(24000, "scp_complete", std::time::Duration::from_secs(20))
        .await;
    assert!(codes.iter().all(|c| [24000, 50014].contains(c)), "{codes:?}");
    assert!(
        !tree.join("dst/big.dat").exists(),
        "no partial file under the final name"
    );
    // the temporary file the dead session could not remove is still there
    let left = hidden_files(&dst);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(".big.dat.pinkpage-"), "{left:?}");
    relay.thaw();
    // the slot and the gate are free: the same transfer runs again, and its
    // connection to the destination first removes what the failed one left
    c.send(json!({"type": "scp_transfer", "transfer_name": "big", "request_id": "t2"}))
        .await;
    let (again, _) = c.recv_until("scp_complete").await;
    assert_eq!(again["files"][0]["name"], "big.dat", "{again}");
    assert_eq!(
        std::fs::metadata(tree.join("dst/big.dat")).unwrap().len(),
        64 * 1024 * 1024
    );
    assert_eq!(hidden_files(&dst), Vec::<String>::new(), "no temporary file left");
    let removed = app.audit_events("action=recovery.temp_removed", 1).await;
    assert_eq!(removed[0]["server"], "beta", "{removed:?}");
    assert_eq!(
        removed[0]["detail"]["path"],
        format!("{dst}/{}", left[0]),
        "{removed:?}"
    );
}

#[tokio::test]
async fn health_checks_of_a_silent_server_time_out_and_recover() {
    let sshd = SshdServer::start(SshdOptions::default());
    let (builder, relay) = behind_relay(TestApp::builder(), "beta", &sshd).await;
    let app = builder
        .env("PINKPAGE_HEALTH_INTERVAL_S", "0.5")
        .env("PINKPAGE_HEALTH_TIMEOUT_S", "1")
        .env("PINKPAGE_HEALTH_FAILURES", "1")
        .env("PINKPAGE_HEALTH_SUCCESSES", "1")
        .spawn()
        .await;
    let health = async |want: bool| {
        eventually(&format!("beta healthy={want}"), async || {
            let h: Value = app.get("/api/v1/health/servers/beta").await.json().await.unwrap();
            if h["is_healthy"] == want {
                Ok(h)
            } else {
                Err(h)
            }
        })
        .await
    };
    health(true).await;
    relay.freeze();
    let down = health(false).await;
    let error = down["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("timed out") || error.contains("within"), "{down}");
    relay.thaw();
    health(true).await;
}
