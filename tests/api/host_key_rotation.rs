//! Host-key rotation against a real sshd whose key changes under the
//! daemon: connections are refused with 20002 naming both fingerprints,
//! an admin sees both (`GET /api/v1/servers/{name}/host-key`) and accepts
//! the new one by naming it (`POST .../host-key/accept`, or `pinkpage
//! hostkey accept`), and only then do connections pass again. A wrong
//! fingerprint changes nothing, byte for byte.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::support::daemon::{ServerEntry, TestApp, TEST_ADMIN};
use crate::support::sshd::{SshdOptions, SshdServer, TestUser};
use crate::support::ws::WsClient;

/// `POST /api/v1/servers/{name}/check`: a real connection and login.
async fn check(app: &TestApp, name: &str) -> (u16, Value) {
    let res = app
        .post_json(&format!("/api/v1/servers/{name}/check"), &Value::Null)
        .await;
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn show(app: &TestApp, token: &str, name: &str) -> (u16, Value) {
    let res = app
        .anon
        .get(app.url(&format!("/api/v1/servers/{name}/host-key")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn accept(app: &TestApp, token: &str, name: &str, fingerprint: &str) -> (u16, Value) {
    let res = app
        .anon
        .post(app.url(&format!("/api/v1/servers/{name}/host-key/accept")))
        .bearer_auth(token)
        .json(&json!({ "fingerprint": fingerprint }))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

fn detail(body: &Value) -> &str {
    body["error"]["detail"].as_str().unwrap_or_default()
}

/// A daemon with one server, `web`, on `sshd`, its key in known_hosts;
/// no health sweep during the test.
async fn app_for(sshd: &SshdServer) -> TestApp {
    TestApp::builder()
        .sshd("web", sshd)
        .env("PINKPAGE_HEALTH_INTERVAL_S", "600")
        .spawn()
        .await
}

#[tokio::test]
async fn a_rotated_host_key_is_refused_naming_both_fingerprints_until_an_admin_accepts_the_new_one() {
    let mut sshd = SshdServer::start(SshdOptions::default());
    let app = app_for(&sshd).await;
    let admin = app.admin_token.clone().unwrap();
    let old = sshd.host_key_fingerprint();
    let (status, report) = show(&app, &admin, "web").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["status"], "match", "{report}");
    assert_eq!(
        report["known"],
        json!([{"algorithm": "ssh-ed25519", "fingerprint": old, "line": 1}])
    );

    sshd.restart_with_new_host_key();
    let new = sshd.host_key_fingerprint();
    assert_ne!(old, new);

    // over WebSocket and over REST: refused, naming what was recorded and what is offered
    let mut ws = WsClient::stub(&app).await;
    ws.start_session().await;
    ws.send(json!({"type": "ssh_command", "server": "web", "command": "whoami"}))
        .await;
    let refused = ws.expect_error_skipping_output().await;
    let (ended, _) = ws.recv_until("ssh_command_complete").await;
    assert_eq!(ended["reason"], "error", "{ended}");
    assert_eq!(refused["error"]["code"], 20002, "{refused}");
    let text = refused["error"]["detail"].as_str().unwrap_or_default();
    assert!(text.contains(&old) && text.contains(&new), "{text}");
    let (status, body) = check(&app, "web").await;
    assert_eq!(
        (status, body["error"]["code"].as_u64()),
        (502, Some(20002)),
        "{body}"
    );
    assert!(
        detail(&body).contains(&old) && detail(&body).contains(&new),
        "{body}"
    );

    // the admin sees both
    let (status, report) = show(&app, &admin, "web").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["status"], "changed", "{report}");
    assert_eq!(
        report["offered"],
        json!({"algorithm": "ssh-ed25519", "fingerprint": new})
    );
    assert_eq!(report["known"][0]["fingerprint"], old.as_str(), "{report}");
    assert_eq!(report["pinned"], Value::Null);

    // a wrong fingerprint, well formed or not, changes nothing
    let known_hosts = app.dir().join("known_hosts");
    let before = std::fs::read(&known_hosts).unwrap();
    let (status, body) = accept(&app, &admin, "web", &old).await;
    assert_eq!(
        (status, body["error"]["code"].as_u64()),
        (409, Some(20004)),
        "{body}"
    );
    assert!(
        detail(&body).contains(&new) && detail(&body).contains(&old),
        "{body}"
    );
    let (status, body) = accept(&app, &admin, "web", "SHA256:not-a-fingerprint").await;
    assert_eq!(
        (status, body["error"]["code"].as_u64()),
        (400, Some(10001)),
        "{body}"
    );
    assert_eq!(
        std::fs::read(&known_hosts).unwrap(),
        before,
        "known_hosts changed"
    );
    let (status, _) = check(&app, "web").await;
    assert_eq!(status, 502);

    // the right one is accepted, and connections pass again
    let (status, body) = accept(&app, &admin, "web", &new).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"]["fingerprint"], new.as_str(), "{body}");
    assert_eq!(body["previous"][0]["fingerprint"], old.as_str(), "{body}");
    assert_eq!(
        std::fs::read_to_string(&known_hosts).unwrap(),
        format!("{}\n", sshd.known_hosts_line())
    );
    let (status, body) = check(&app, "web").await;
    assert_eq!(status, 200, "{body}");
    let (out, _, done) = ws.run("web", "whoami").await;
    assert_eq!(out.trim(), TestUser::get().name, "{done}");
    let (_, report) = show(&app, &admin, "web").await;
    assert_eq!(report["status"], "match", "{report}");

    // both attempts that reached the server are in the audit trail
    let rows = app.audit_events("action=host_key.accept", 2).await;
    let ok = rows
        .iter()
        .find(|r| r["outcome"] == "ok")
        .expect("the acceptance");
    assert_eq!(ok["user"], TEST_ADMIN);
    assert_eq!(ok["server"], "web");
    assert_eq!(ok["detail"]["old"], json!([old]));
    assert_eq!(ok["detail"]["new"], new.as_str());
    let refused = rows
        .iter()
        .find(|r| r["outcome"] == "failed")
        .expect("the refusal");
    assert_eq!(refused["code"], 20004, "{refused}");
}

#[tokio::test]
async fn only_admins_may_see_or_accept_a_host_key() {
    let mut sshd = SshdServer::start(SshdOptions::default());
    let app = app_for(&sshd).await;
    let viewer = app.identity("vera", "viewer", None).await;
    let operator = app.identity("otto", "operator", None).await;
    sshd.restart_with_new_host_key();
    let new = sshd.host_key_fingerprint();
    let known_hosts = app.dir().join("known_hosts");
    let before = std::fs::read(&known_hosts).unwrap();

    for who in [&viewer, &operator] {
        let (status, body) = show(&app, &who.token, "web").await;
        assert_eq!(
            (status, body["error"]["code"].as_u64()),
            (403, Some(10003)),
            "{}: {body}",
            who.name
        );
        let (status, body) = accept(&app, &who.token, "web", &new).await;
        assert_eq!(
            (status, body["error"]["code"].as_u64()),
            (403, Some(10003)),
            "{}: {body}",
            who.name
        );
    }
    assert_eq!(std::fs::read(&known_hosts).unwrap(), before);
    let admin = app.admin_token.clone().unwrap();
    let (status, body) = show(&app, &admin, "nowhere").await;
    assert_eq!(
        (status, body["error"]["code"].as_u64()),
        (404, Some(23000)),
        "{body}"
    );
}

#[tokio::test]
async fn a_pinned_server_is_told_to_change_its_pin_and_known_hosts_is_left_alone() {
    let mut sshd = SshdServer::start(SshdOptions::default());
    let old = sshd.host_key_fingerprint();
    let mut entry = ServerEntry::for_sshd("pinned", &sshd);
    entry.extra = format!("host_key_fingerprint = {old:?}\n");
    let app = TestApp::builder()
        .server(entry)
        .known_hosts("# nothing for the pinned server")
        .env("PINKPAGE_HEALTH_INTERVAL_S", "600")
        .spawn()
        .await;
    let admin = app.admin_token.clone().unwrap();
    sshd.restart_with_new_host_key();
    let new = sshd.host_key_fingerprint();

    let (status, report) = show(&app, &admin, "pinned").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["pinned"], old.as_str());
    assert_eq!(report["status"], "changed");
    assert_eq!(report["offered"]["fingerprint"], new.as_str());

    let known_hosts = app.dir().join("known_hosts");
    let before = std::fs::read(&known_hosts).unwrap();
    let (status, body) = accept(&app, &admin, "pinned", &new).await;
    assert_eq!(
        (status, body["error"]["code"].as_u64()),
        (409, Some(20005)),
        "{body}"
    );
    assert!(
        detail(&body).contains(&format!("host_key_fingerprint = \"{new}\""))
            && detail(&body).contains("reload"),
        "{body}"
    );
    assert_eq!(std::fs::read(&known_hosts).unwrap(), before);
    let (status, _) = check(&app, "pinned").await;
    assert_eq!(status, 502, "still pinned to the old key");
}

/// `pinkpage hostkey ARGS` with the daemon's settings (servers file,
/// known_hosts, server password, database and audit key): what an admin
/// on the host runs.
fn hostkey_cli(app: &TestApp, args: &[&str]) -> (Option<i32>, String, String) {
    let dir: &Path = app.dir();
    let out = Command::new(env!("CARGO_BIN_EXE_pinkpage"))
        .arg("hostkey")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PINKPAGE_DB", app.database())
        .env("PINKPAGE_AUDIT_KEY_FILE", dir.join("data/audit.key"))
        .env("PINKPAGE_SERVERS_FILE", dir.join("servers.toml"))
        .env("PINKPAGE_KNOWN_HOSTS", dir.join("known_hosts"))
        .env("PINKPAGE_TEST_SERVER_PW_0", TestUser::get().password.expose())
        .stdin(Stdio::null())
        .output()
        .expect("run pinkpage hostkey");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_command_line_accepts_a_rotated_key_only_with_its_fingerprint_and_audits_it() {
    let mut sshd = SshdServer::start(SshdOptions::default());
    let app = app_for(&sshd).await;
    let old = sshd.host_key_fingerprint();
    sshd.restart_with_new_host_key();
    let new = sshd.host_key_fingerprint();
    let known_hosts = app.dir().join("known_hosts");
    let before = std::fs::read(&known_hosts).unwrap();

    let (code, out, err) = hostkey_cli(&app, &["show", "web"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("status   changed") && out.contains(&old) && out.contains(&new),
        "{out}"
    );

    let (code, _, err) = hostkey_cli(&app, &["accept", "web", &old]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("20004") && err.contains(&new), "{err}");
    assert_eq!(std::fs::read(&known_hosts).unwrap(), before);

    let (code, out, err) = hostkey_cli(&app, &["accept", "web", &new]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(&new) && out.contains(&old), "{out}");
    // the running daemon reads the file afresh: no restart, no cache
    let (status, body) = check(&app, "web").await;
    assert_eq!(status, 200, "{body}");
    let rows = app.audit_events("action=host_key.accept", 2).await;
    let ok = rows
        .iter()
        .find(|r| r["outcome"] == "ok")
        .expect("the acceptance");
    assert_eq!(ok["actor"], "cli");
    assert_eq!(ok["detail"]["new"], new.as_str());
    assert_eq!(ok["detail"]["old"], json!([old]));
}

#[tokio::test]
async fn a_name_hashed_by_ssh_keygen_is_replaced_by_a_hashed_entry_openssh_itself_finds() {
    let mut sshd = SshdServer::start(SshdOptions::default());
    let app = app_for(&sshd).await;
    let admin = app.admin_token.clone().unwrap();
    let known_hosts = app.dir().join("known_hosts");
    let other =
        "[10.9.8.7]:2200 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBLmic869NihaHvl6gmBPxd+/hUrvn8eu+E+6/PWja0L";
    let hashed = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&known_hosts)
        .output()
        .unwrap();
    assert!(
        hashed.status.success(),
        "{}",
        String::from_utf8_lossy(&hashed.stderr)
    );
    let text = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(text.starts_with("|1|") && !text.contains("127.0.0.1"), "{text}");
    std::fs::write(
        &known_hosts,
        format!("# another host, spelled out\n{other}\n{text}"),
    )
    .unwrap();
    sshd.restart_with_new_host_key();
    let new = sshd.host_key_fingerprint();

    let (status, body) = accept(&app, &admin, "web", &new).await;

    assert_eq!(status, 200, "{body}");
    let text = std::fs::read_to_string(&known_hosts).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(&lines[..2], ["# another host, spelled out", other], "{text}");
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[2].starts_with("|1|") && !text.contains("127.0.0.1"),
        "{text}"
    );
    // OpenSSH finds the new key under the hashed name
    let host = format!("[127.0.0.1]:{}", sshd.port());
    let found = Command::new("ssh-keygen")
        .arg("-F")
        .arg(&host)
        .arg("-f")
        .arg(&known_hosts)
        .output()
        .unwrap();
    let found = String::from_utf8_lossy(&found.stdout);
    let new_key = sshd.known_hosts_line();
    let new_key = new_key.split_once(' ').unwrap().1;
    assert!(found.contains(new_key), "{found}");
    let (status, body) = check(&app, "web").await;
    assert_eq!(status, 200, "{body}");
}
