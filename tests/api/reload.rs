//! Changes without a restart (issue 28, part 2): SIGHUP and
//! `POST /api/v1/admin/reload` read the servers file and `.env` again and
//! apply what can change live; running work keeps its configuration unless
//! the change withdraws its access; an invalid configuration changes
//! nothing and says why.

use serde_json::{json, Value};

use crate::support::daemon::TestApp;
use crate::support::remote::{pgrep, RemoteProcess};
use crate::support::sshd::{SshdOptions, SshdServer};
use crate::support::ws::WsClient;

/// The `[[servers]]` entry of `name` on `sshd`, logging in with the
/// password the harness gave the first server (same test user).
fn server_toml(name: &str, sshd: &SshdServer) -> String {
    let user = crate::support::sshd::TestUser::get();
    format!(
        "\n[[servers]]\nname = {name:?}\nhost = \"127.0.0.1\"\nport = {}\nusername = {:?}\npassword_env = \"PINKPAGE_TEST_SERVER_PW_0\"\n",
        sshd.port(),
        user.name
    )
}

/// Appends `text` to the daemon's servers file.
fn append_to_servers_file(app: &TestApp, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(app.dir().join("servers.toml"))
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// The names `GET /api/v1/servers` lists.
async fn server_names(app: &TestApp) -> Vec<String> {
    let servers: Value = app.get("/api/v1/servers").await.json().await.unwrap();
    servers
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The `config.reload` audit rows once there are `count`, newest first.
async fn reload_rows(app: &TestApp, count: usize) -> Vec<Value> {
    app.audit_events("action=config.reload", count).await
}

#[tokio::test]
async fn a_server_added_by_sighup_is_served_and_checked_while_a_running_command_goes_on() {
    let first = SshdServer::start(SshdOptions::default());
    let second = SshdServer::start(SshdOptions::default());
    let app = TestApp::builder()
        .sshd("mdwap1p", &first)
        .known_hosts(&second.known_hosts_line())
        .spawn()
        .await;
    assert_eq!(server_names(&app).await, ["mdwap1p"]);

    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "sleep 2801.5", "request_id": "s"}))
        .await;
    c.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started("sleep 2801.5").await;

    append_to_servers_file(&app, &server_toml("db3", &second));
    app.signal("HUP");
    let rows = reload_rows(&app, 1).await;
    assert_eq!(rows[0]["actor"], "signal", "{}", rows[0]);
    assert_eq!(rows[0]["outcome"], "ok", "{}", rows[0]);
    assert_eq!(
        rows[0]["detail"]["changes"],
        json!(["server 'db3' added"]),
        "{}",
        rows[0]
    );
    assert_eq!(rows[0]["detail"]["access_changed"], false);

    assert_eq!(server_names(&app).await, ["db3", "mdwap1p"]);
    // checked at once and its verdict broadcast to connections already open
    let mut frames = Vec::new();
    loop {
        let frame = c.recv().await;
        if frame["type"] == "server_health" && frame["server_name"] == "db3" {
            assert_eq!(frame["is_healthy"], true, "{frame}");
            break;
        }
        frames.push(frame);
    }
    assert!(
        !frames
            .iter()
            .any(|f| f["type"] == "ssh_command_complete" || f["type"] == "error"),
        "the running command was disturbed by the reload: {frames:?}"
    );
    assert!(pgrep("sleep 2801.5"), "the running command's process is gone");
    // a new connection's welcome shows it; an SSH check reaches it
    let other = WsClient::stub(&app).await;
    let welcome_health = other.welcome["server_health"].to_string();
    assert!(welcome_health.contains("db3"), "{welcome_health}");
    let res = app.post_json("/api/v1/servers/db3/check", &json!({})).await;
    let check: Value = res.json().await.unwrap();
    assert_eq!(check["ok"], true, "{check}");

    // removed again: gone from the list and from the health a welcome shows
    std::fs::write(
        app.dir().join("servers.toml"),
        std::fs::read_to_string(app.dir().join("servers.toml"))
            .unwrap()
            .replace(&server_toml("db3", &second), ""),
    )
    .unwrap();
    let res = app.post_json("/api/v1/admin/reload", &json!({})).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["changes"], json!(["server 'db3' removed"]), "{body}");
    assert_eq!(body["access_changed"], true, "{body}");
    assert_eq!(server_names(&app).await, ["mdwap1p"]);
    let later = WsClient::stub(&app).await;
    let welcome_health = later.welcome["server_health"].to_string();
    assert!(!welcome_health.contains("db3"), "{welcome_health}");
    // the command on the server that stayed ran through all of it
    assert!(pgrep("sleep 2801.5"), "the running command's process is gone");
    c.close().await;
    sleeper.ended("its connection closed").await;
}

#[tokio::test]
async fn an_invalid_servers_file_changes_nothing_and_the_reply_says_why() {
    let sshd = SshdServer::start(SshdOptions::default());
    let app = TestApp::builder().sshd("mdwap1p", &sshd).spawn().await;
    let before = std::fs::read_to_string(app.dir().join("servers.toml")).unwrap();
    // a transfer naming a server that does not exist
    append_to_servers_file(
        &app,
        "\n[[transfers]]\nname = \"nowhere\"\nsource_server = \"mdwap1p\"\nsource_glob = \"/tmp/*\"\ndestination_server = \"ghost\"\ndestination_dir = \"/tmp/\"\n",
    );
    let res = app.post_json("/api/v1/admin/reload", &json!({})).await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 10012, "{body}");
    let detail = body["error"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("PINKPAGE_SERVERS_FILE") && detail.contains("ghost"),
        "{detail}"
    );
    let transfers: Value = app.get("/api/v1/transfers").await.json().await.unwrap();
    assert!(!transfers.to_string().contains("nowhere"), "{transfers}");
    let rows = reload_rows(&app, 1).await;
    assert_eq!(rows[0]["outcome"], "failed", "{}", rows[0]);
    assert_eq!(rows[0]["code"], 10012, "{}", rows[0]);

    // the same by SIGHUP: refused, logged, and the daemon serves on
    std::fs::write(app.dir().join("servers.toml"), "[[servers]\nthis is not TOML").unwrap();
    app.signal("HUP");
    let rows = reload_rows(&app, 2).await;
    assert_eq!(rows[0]["actor"], "signal");
    assert_eq!(rows[0]["outcome"], "failed", "{}", rows[0]);
    assert_eq!(server_names(&app).await, ["mdwap1p"]);
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    let (out, _, _) = c.run("mdwap1p", "echo still-here").await;
    assert!(out.contains("still-here"), "{out}");

    // put right, a reload with nothing changed says so
    std::fs::write(app.dir().join("servers.toml"), before).unwrap();
    let res = app.post_json("/api/v1/admin/reload", &json!({})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"changes": [], "restart_needed": [], "access_changed": false})
    );
}

#[tokio::test]
async fn dotenv_is_read_again_and_what_needs_a_restart_is_named_not_applied() {
    let app = TestApp::spawn_without_ssh().await;
    std::fs::write(
        app.dir().join(".env"),
        "PINKPAGE_HEALTH_INTERVAL_S=7\nPINKPAGE_THROTTLE_MS=20\nPINKPAGE_RETENTION_DAYS=30\n",
    )
    .unwrap();
    let res = app.post_json("/api/v1/admin/reload", &json!({})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    // in the order of the settings list, as every report
    assert_eq!(
        body["changes"],
        json!([
            "PINKPAGE_HEALTH_INTERVAL_S changed",
            "PINKPAGE_RETENTION_DAYS changed"
        ]),
        "{body}"
    );
    assert_eq!(body["restart_needed"], json!(["PINKPAGE_THROTTLE_MS"]), "{body}");
    crate::support::poll::eventually("the health monitor takes the new interval", async || {
        app.logs()
            .lines()
            .any(|l| l.contains("health monitor reconfigured") && l.contains("\"interval_s\":7"))
    })
    .await;
    // asked again, the change still waiting for a restart is named again
    let res = app.post_json("/api/v1/admin/reload", &json!({})).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["changes"], json!([]), "{body}");
    assert_eq!(body["restart_needed"], json!(["PINKPAGE_THROTTLE_MS"]), "{body}");

    // only admins reload
    let op = app.identity("op", "operator", None).await;
    let res = app
        .anon
        .post(app.url("/api/v1/admin/reload"))
        .bearer_auth(&op.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn a_rule_added_by_reload_stops_the_running_command_it_now_denies() {
    let sshd = SshdServer::start(SshdOptions::default());
    let app = TestApp::builder().sshd("mdwap1p", &sshd).spawn().await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "sleep 2802.5", "request_id": "s"}))
        .await;
    c.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started("sleep 2802.5").await;

    append_to_servers_file(
        &app,
        "\n[[command_rules]]\nname = \"no-sleeping\"\nwords = [\"sleep\"]\naction = \"deny\"\nmessage = \"stay awake\"\n",
    );
    let res = app.post_json("/api/v1/admin/reload", &json!({})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["access_changed"], true, "{body}");
    assert_eq!(body["changes"], json!(["command rules changed"]), "{body}");

    let stopped = loop {
        let frame = c.recv().await;
        if frame["type"] == "error" && frame["request_id"] == "s" {
            break frame;
        }
    };
    assert_eq!(stopped["error"]["code"], 10010, "{stopped}");
    assert!(
        stopped["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("no-sleeping"),
        "{stopped}"
    );
    sleeper.ended("the rules now deny it").await;
    // and new work meets the new rule
    c.recv_until("ssh_command_complete").await;
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "sleep 1", "request_id": "t"}))
        .await;
    assert_eq!(c.expect_error().await["error"]["code"], 55000);
}

#[tokio::test]
async fn a_cap_lowered_below_use_refuses_new_connections_until_use_falls_and_closes_none() {
    let app = TestApp::spawn_without_ssh().await;
    let first = WsClient::stub(&app).await;
    let mut second = WsClient::stub(&app).await;
    std::fs::write(app.dir().join(".env"), "PINKPAGE_WS_MAX_CONNECTIONS_PER_USER=1\n").unwrap();
    let res = app.post_json("/api/v1/admin/reload", &json!({})).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["changes"],
        json!(["PINKPAGE_WS_MAX_CONNECTIONS_PER_USER changed"]),
        "{body}"
    );

    // both stay open and answer
    second.send(json!({"type": "ping", "request_id": "p"})).await;
    assert_eq!(second.recv_until("pong").await.0["request_id"], "p");
    let token = app.admin_token.clone().unwrap();
    let headers = [("authorization".to_owned(), format!("Bearer {token}"))];
    let refused = WsClient::open(&app, "/ws/v1/stub", &headers).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(answer)) = refused else {
        panic!("a third connection was admitted past the lowered cap");
    };
    let body = String::from_utf8_lossy(answer.body().as_deref().unwrap_or_default()).into_owned();
    assert!(body.contains("30002"), "{body}");
    // once both closed, use is below the cap again: admitted
    first.close().await;
    second.close().await;
    crate::support::poll::eventually("a connection is admitted once use fell", async || {
        WsClient::open(&app, "/ws/v1/stub", &headers).await.ok()
    })
    .await;
}

#[tokio::test]
async fn listening_beyond_loopback_in_clear_is_warned_at_start() {
    let app = TestApp::builder()
        .server(crate::support::daemon::ServerEntry::unreachable("mdwap1p"))
        .env("PINKPAGE_BIND", "0.0.0.0:0")
        .spawn()
        .await;
    assert!(
        app.logs().contains("listening beyond loopback over plain HTTP"),
        "no warning"
    );
    let local = TestApp::spawn_without_ssh().await;
    assert!(!local.logs().contains("listening beyond loopback"));
}

#[tokio::test]
async fn terminal_limits_and_the_review_wait_change_by_reload() {
    let sshd = SshdServer::start(SshdOptions::default());
    let app = TestApp::builder().sshd("mdwap1p", &sshd).spawn().await;
    let ana = app.identity("ana", "operator", None).await;
    let mut terms = crate::support::term::Terms::connect(&app, &ana.token).await;
    let (first, _) = terms.open("mdwap1p").await;
    std::fs::write(
        app.dir().join(".env"),
        "PINKPAGE_TERMINALS_PER_USER=1\nPINKPAGE_REVIEW_TIMEOUT_S=42\n",
    )
    .unwrap();
    let res = app.post_json("/api/v1/admin/reload", &json!({})).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["changes"],
        json!([
            "PINKPAGE_REVIEW_TIMEOUT_S changed",
            "PINKPAGE_TERMINALS_PER_USER changed"
        ]),
        "{body}"
    );
    // at the new limit: the open terminal stays, a second is refused
    terms
        .refused(
            json!({"type": "terminal_open", "server": "mdwap1p"}),
            "terminal_opened",
            54001,
        )
        .await;
    terms.type_in(&first, "echo still-open\r").await;
    terms.output(&first, "still-open").await;

    // a command held after the reload waits the new time
    append_to_servers_file(
        &app,
        "\n[[command_rules]]\nname = \"ask-first\"\nwords = [\"uptime\"]\naction = \"review\"\n",
    );
    let res = app.post_json("/api/v1/admin/reload", &json!({})).await;
    assert_eq!(res.status(), 200);
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "uptime", "request_id": "u"}))
        .await;
    let (held, _) = c.recv_until("command_held").await;
    let at = |field: &str| chrono::DateTime::parse_from_rfc3339(held[field].as_str().unwrap()).unwrap();
    let reviews: Value = app.get("/api/v1/command-reviews").await.json().await.unwrap();
    let listed = reviews.to_string();
    assert!(listed.contains(held["held_id"].as_str().unwrap()), "{listed}");
    let held_at = reviews
        .as_array()
        .and_then(|r| r.iter().find(|h| h["held_id"] == held["held_id"]))
        .map(|h| chrono::DateTime::parse_from_rfc3339(h["held_at"].as_str().unwrap()).unwrap())
        .expect("the hold is listed with its time");
    // expires_at is told in whole seconds, held_at in milliseconds
    let waits = (at("expires_at") - held_at).num_milliseconds();
    assert!((41_000..=42_000).contains(&waits), "waits {waits} ms: {held}");
}
