//! Reaching servers through the daemon: credentials, host keys, and what
//! must never be logged.

use serde_json::Value;

use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::fixtures::app_with_server;
use crate::support::sshd::{SshdOptions, SshdServer, TestUser};

#[tokio::test]
async fn a_server_with_good_credentials_and_a_known_key_checks_ok() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let res = app.post_json("/api/v1/servers/mdwap1p/check", &Value::Null).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["ok"], true);
}

#[tokio::test]
async fn a_wrong_password_gives_21000_and_no_password_reaches_the_logs() {
    let sshd = SshdServer::start(SshdOptions::default());
    let user = TestUser::get();
    let wrong = "wrong-pw-5f3a9c1e";
    let bad = ServerEntry {
        password: Some(wrong.into()),
        ..ServerEntry::for_sshd("badpw", &sshd)
    };
    // RUST_LOG=debug (set by TestApp) includes russh's own debug output
    let app = TestApp::builder().sshd("good", &sshd).server(bad).spawn().await;

    let ok = app.post_json("/api/v1/servers/good/check", &Value::Null).await;
    assert_eq!(ok.status(), 200);
    let res = app.post_json("/api/v1/servers/badpw/check", &Value::Null).await;
    assert_eq!(res.status(), 502);
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], 21000);
    assert!(!text.contains(wrong));

    let logs = app.logs_settled().await;
    assert!(
        logs.contains("ssh session established"),
        "the good login is not in the log, so the log check below proves nothing"
    );
    assert!(
        !logs.contains(user.password.expose()),
        "the real password is in the daemon log"
    );
    assert!(!logs.contains(wrong), "the wrong password is in the daemon log");
    let servers = app.get("/api/v1/servers").await.text().await.unwrap();
    assert!(!servers.contains(user.password.expose()) && !servers.contains(wrong));
}

#[tokio::test]
async fn an_unknown_host_key_is_refused_under_strict_with_20002() {
    let sshd = SshdServer::start(SshdOptions::default());
    let entry = ServerEntry::for_sshd("stranger", &sshd);
    // no known_hosts line for it
    let app = TestApp::builder().server(entry).spawn().await;
    let res = app
        .post_json("/api/v1/servers/stranger/check", &Value::Null)
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 20002, "{body}");
    assert!(
        body["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("unknown host key"),
        "{body}"
    );
}

#[tokio::test]
async fn accept_new_records_the_key_and_the_next_check_passes() {
    let sshd = SshdServer::start(SshdOptions::default());
    let entry = ServerEntry::for_sshd("newbie", &sshd);
    let app = TestApp::builder()
        .server(entry)
        .env("PINKPAGE_HOST_KEY_POLICY", "accept-new")
        .spawn()
        .await;
    for _ in 0..2 {
        let res = app.post_json("/api/v1/servers/newbie/check", &Value::Null).await;
        assert_eq!(res.status(), 200);
    }
    let known = std::fs::read_to_string(app.dir().join("known_hosts")).unwrap();
    assert_eq!(known.trim(), sshd.known_hosts_line().trim());
}

#[tokio::test]
async fn an_unknown_server_gives_23000_and_a_closed_port_gives_20000() {
    let app = TestApp::spawn_without_ssh().await;
    let res = app.post_json("/api/v1/servers/nope/check", &Value::Null).await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], 23000);
    let res = app.post_json("/api/v1/servers/mdwap1p/check", &Value::Null).await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], 20000);
}
