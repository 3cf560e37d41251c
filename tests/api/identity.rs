//! Identity end to end: signing in and out, what revocation does to an
//! open WebSocket (it closes, its remote process dies, its lock is freed),
//! throttled logins, the first start, single sign-on behind a proxy, who
//! is named in the records, and a canary password and token that must
//! appear nowhere but where they belong.

use serde_json::{json, Value};

use crate::support::daemon::{Identity, ServerEntry, TestApp, TEST_ADMIN};
use crate::support::fixtures::{app_with_server, with_servers};
use crate::support::poll::eventually;
use crate::support::remote::RemoteProcess;
use crate::support::ws::WsClient;

/// Opens STUB with a cookie, takes the lock and starts `sleep <marker>`;
/// returns the client and the remote process, seen running.
async fn busy_with_cookie(app: &TestApp, cookie: &str, marker: &str) -> (WsClient, RemoteProcess) {
    let stream = WsClient::open(app, "/ws/v1/stub", &[("cookie".into(), cookie.to_owned())])
        .await
        .expect("upgrade with the cookie");
    let client = WsClient::welcomed(stream).await;
    busy(client, marker).await
}

async fn busy(mut client: WsClient, marker: &str) -> (WsClient, RemoteProcess) {
    client.start_session().await;
    client
        .send(json!({"type": "ssh_command", "server": "mdwap1p", "command": format!("sleep {marker}")}))
        .await;
    client.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started(&format!("sleep {marker}")).await;
    (client, sleeper)
}

/// The connection was closed for its credential, its command is gone and
/// the lock is free.
async fn stopped_for(app: &TestApp, mut client: WsClient, sleeper: RemoteProcess, why: &str) {
    let (code, reason) = client.recv_close().await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains(why) && reason.contains("10002"), "{reason}");
    sleeper
        .ended("the remote command outlived its revoked connection")
        .await;
    eventually("the lock is released", async || {
        let s: Value = app.get("/api/v1/session").await.json().await.unwrap();
        if s["active"] == false {
            Ok(())
        } else {
            Err(s)
        }
    })
    .await;
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_and_logout_closes_its_websockets() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let otto = app.identity("otto", "operator", None).await;
    let (cookie, set_cookie) = app.sign_in(&otto).await;
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "no Secure over plain HTTP by default: {set_cookie}"
    );
    let me: Value = app
        .anon
        .get(app.url("/api/v1/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "operator");

    let (client, sleeper) = busy_with_cookie(&app, &cookie, "1101.5").await;
    let res = app
        .anon
        .post(app.url("/api/v1/auth/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["signed_out"], true);
    stopped_for(&app, client, sleeper, "revoked").await;
    // the cookie no longer works
    let res = app
        .anon
        .get(app.url("/api/v1/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    app.audit_events("action=auth.logout&user=otto", 1).await;
}

#[tokio::test]
async fn secure_cookies_when_configured() {
    let app = TestApp::builder()
        .server(ServerEntry::unreachable("mdwap1p"))
        .env("PINKPAGE_COOKIE_SECURE", "true")
        .spawn()
        .await;
    let otto = app.identity("otto", "operator", None).await;
    let (_, set_cookie) = app.sign_in(&otto).await;
    assert!(set_cookie.contains("Secure"), "{set_cookie}");
}

#[tokio::test]
async fn revoking_a_token_over_rest_closes_its_websocket_at_once() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let otto = app.identity("otto", "operator", None).await;
    let client = WsClient::connect_with_token(&app, "/ws/v1/stub", &otto.token).await;
    let (client, sleeper) = busy(client, "1102.5").await;
    let tokens: Value = app.get("/api/v1/tokens?user=otto").await.json().await.unwrap();
    let id = tokens[0]["id"].as_str().unwrap().to_owned();
    assert!(
        !tokens.to_string().contains(&otto.token),
        "a token list never shows the secret"
    );
    let res = app
        .http
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    stopped_for(&app, client, sleeper, "credential revoked").await;
    let res = app
        .anon
        .get(app.url("/api/v1/servers"))
        .bearer_auth(&otto.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["detail"], "credential revoked");
}

#[tokio::test]
async fn disabling_a_user_from_the_command_line_closes_its_websockets() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let otto = app.identity("otto", "operator", None).await;
    let client = WsClient::connect_with_token(&app, "/ws/v1/stub", &otto.token).await;
    let (client, sleeper) = busy(client, "1103.5").await;
    // another process changes the database; the daemon notices by itself
    let started = std::time::Instant::now();
    let (code, _, err) = app.cli(&["user", "disable", "otto"], "");
    assert_eq!(code, Some(0), "{err}");
    stopped_for(&app, client, sleeper, "account disabled").await;
    eprintln!(
        "disable from the command line took effect in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_session_past_its_lifetime_closes_its_websocket() {
    let (builder, [_sshd]) = with_servers(["mdwap1p"]);
    let app = builder
        .env("PINKPAGE_SESSION_IDLE_S", "2")
        .env("PINKPAGE_SESSION_MAX_S", "3")
        .spawn()
        .await;
    let otto = app.identity("otto", "operator", None).await;
    let (cookie, _) = app.sign_in(&otto).await;
    let (client, sleeper) = busy_with_cookie(&app, &cookie, "1104.5").await;
    stopped_for(&app, client, sleeper, "expired").await;
}

#[tokio::test]
async fn repeated_failed_logins_are_slowed_down_and_audited() {
    let app = TestApp::builder()
        .server(ServerEntry::unreachable("mdwap1p"))
        .env("PINKPAGE_LOGIN_MAX_FAILURES", "2")
        .env("PINKPAGE_LOGIN_AUDIT_INTERVAL_S", "1")
        .spawn()
        .await;
    let otto = app.identity("otto", "operator", None).await;
    let login = |password: String| {
        app.anon
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"name": "otto", "password": password}))
            .send()
    };
    // an unknown name and a wrong password get the same answer
    let res = app
        .anon
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"name": "nobody-here", "password": "whatever-it-is"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let unknown: Value = res.json().await.unwrap();
    let res = login("not-the-password".into()).await.unwrap();
    assert_eq!(res.status(), 401);
    let wrong: Value = res.json().await.unwrap();
    assert_eq!(unknown, wrong);
    assert_eq!(wrong["error"]["detail"], "wrong name or password");
    // two failures from this address: now even the right password waits
    let res = login(otto.password.clone()).await.unwrap();
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 10007);
    let failed = app.audit_events("action=auth.login.failed", 2).await;
    assert!(failed.iter().all(|e| !e.to_string().contains("not-the-password")));
    assert!(failed.iter().any(|e| e["detail"]["reason"] == "wrong password"));
    // the throttled attempt is summarised when its interval ends
    let throttled = app.audit_events("action=auth.login.throttled", 1).await;
    assert_eq!(throttled[0]["detail"]["count"], 1, "{}", throttled[0]);
    assert_eq!(throttled[0]["user"], "otto");
}

#[tokio::test]
async fn the_first_start_says_how_to_create_the_first_admin() {
    let app = TestApp::builder()
        .server(ServerEntry::unreachable("mdwap1p"))
        .without_accounts()
        .spawn()
        .await;
    let res = app.anon.get(app.url("/api/v1/auth/me")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("pinkpage user add NAME --role admin"),
        "{body}"
    );
    assert!(app
        .logs_settled()
        .await
        .contains("pinkpage user add NAME --role admin"));
    // health and the docs stay reachable without signing in
    let health: Value = app
        .anon
        .get(app.url("/api/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert!(
        health.get("servers").is_none(),
        "no server detail for anonymous callers: {health}"
    );
    let res = app.anon.get(app.url("/swagger/docs/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app.anon.get(app.url("/api/v1/servers")).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn a_trusted_proxy_signs_users_in_and_an_untrusted_one_does_not() {
    let app = TestApp::builder()
        .server(ServerEntry::unreachable("mdwap1p"))
        .env("PINKPAGE_TRUSTED_PROXIES", "127.0.0.1/32")
        .env("PINKPAGE_AUTH_PROXY_HEADER", "X-Forwarded-User")
        .env("PINKPAGE_AUTH_PROXY_AUTOCREATE_ROLE", "viewer")
        .spawn()
        .await;
    let res = app
        .anon
        .get(app.url("/api/v1/auth/me"))
        .header("x-forwarded-user", "sso.user")
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(
        me,
        json!({"user": "sso.user", "role": "viewer", "servers": null, "credential": "proxy"})
    );
    let created = app.audit_events("action=user.autocreate", 1).await;
    assert_eq!(created[0]["user"], "sso.user");
    assert_eq!(
        created[0]["remote_addr"], "198.51.100.7",
        "the client behind the proxy"
    );
    // a viewer from the proxy still may not act
    let res = app
        .anon
        .post(app.url("/api/v1/servers/mdwap1p/check"))
        .header("x-forwarded-user", "sso.user")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    let untrusted = TestApp::builder()
        .server(ServerEntry::unreachable("mdwap1p"))
        .env("PINKPAGE_TRUSTED_PROXIES", "10.9.9.9")
        .env("PINKPAGE_AUTH_PROXY_HEADER", "X-Forwarded-User")
        .spawn()
        .await;
    let res = untrusted
        .anon
        .get(untrusted.url("/api/v1/auth/me"))
        .header("x-forwarded-user", TEST_ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "the header is believed only from a trusted proxy"
    );
}

#[tokio::test]
async fn the_records_name_the_person() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let otto = app.identity("otto", "operator", None).await;
    let mut watcher = WsClient::stub(&app).await;
    let mut c = WsClient::connect_with_token(&app, "/ws/v1/stub", &otto.token).await;
    c.start_session().await;
    let (status, _) = watcher.recv_until("session_status").await;
    assert_eq!(status["owner_user"], "otto");
    assert_eq!(status["owner"], c.id.as_str());
    let (_, _, done) = c.run("mdwap1p", "echo named").await;
    assert_eq!(done["exit_status"], 0, "{done}");
    let rows = app.audit_events("action=session.start&user=otto", 1).await;
    assert_eq!(rows[0]["remote_addr"], "127.0.0.1");
    // the admin who takes the lock away is recorded by name
    let res = app.http.delete(app.url("/api/v1/session")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let rows = app.audit_events("action=session.force_release", 1).await;
    assert_eq!(rows[0]["user"], TEST_ADMIN);
    assert_eq!(rows[0]["detail"]["previous_owner_user"], "otto");

    let mut b = WsClient::connect_with_token(&app, "/ws/v1/bmx4", &otto.token).await;
    let started = b
        .request(
            json!({"type": "batch_execute", "server": "mdwap1p", "commands": ["true"]}),
            "batch_started",
        )
        .await;
    b.recv_until("batch_complete").await;
    let run_id = started["run_id"].as_str().unwrap();
    let run: Value = eventually("the run is stored", async || {
        let run: Value = app
            .get(&format!("/api/v1/bmx4/runs/{run_id}"))
            .await
            .json()
            .await
            .unwrap();
        if run["status"] == "completed" {
            Ok(run)
        } else {
            Err(run)
        }
    })
    .await;
    assert_eq!(run["user"], "otto", "{run}");
}

/// Every process's command line, for the canary check.
fn all_cmdlines() -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) {
            out.push_str(&String::from_utf8_lossy(&bytes));
            out.push('\n');
        }
    }
    out
}

#[tokio::test]
async fn a_canary_password_and_token_appear_nowhere_but_their_hashes() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let password = "Canary-Pass-5e1f0c9a7d";
    // the account is made with the command line, as an operator would
    let (code, _, err) = app.cli(
        &["user", "add", "canary", "--role", "operator", "--password-stdin"],
        &format!("{password}\n"),
    );
    assert_eq!(code, Some(0), "{err}");
    let canary = Identity {
        name: "canary".into(),
        password: password.into(),
        token: String::new(),
    };
    let (cookie, _) = app.sign_in(&canary).await;
    let cookie_value = cookie.split_once('=').unwrap().1.to_owned();
    let created: Value = app
        .post_json("/api/v1/tokens", &json!({"user": "canary", "label": "canary"}))
        .await
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();

    // use both: a command over the token, reads over the cookie, a failed
    // login with the password as a name
    let mut c = WsClient::connect_with_token(&app, "/ws/v1/stub", &token).await;
    c.start_session().await;
    let (_, _, done) = c.run("mdwap1p", "echo canary-run").await;
    assert_eq!(done["exit_status"], 0);
    c.close().await;
    let me = app
        .anon
        .get(app.url("/api/v1/auth/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // the classic slip: the password typed into the name field
    let res = app
        .anon
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"name": password, "password": "canary"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    app.audit_events("action=auth.login.failed", 1).await;

    let secrets = [password, token.as_str(), cookie_value.as_str()];
    let logs = app.logs_settled().await;
    let mut responses = String::new();
    for path in [
        "/api/v1/audit?limit=1000",
        "/api/v1/users",
        "/api/v1/tokens",
        "/api/v1/session",
    ] {
        responses.push_str(&app.get(path).await.text().await.unwrap());
    }
    let database = match app.postgres_url() {
        // the PostgreSQL pass: every row of the database, as pg_dump writes it
        Some(url) => {
            let out = std::process::Command::new("pg_dump")
                .arg("--data-only")
                .arg("--dbname")
                .arg(url)
                .output()
                .expect("run pg_dump");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        None => {
            let mut database = Vec::new();
            for file in ["pinkpage.db", "pinkpage.db-wal", "pinkpage.db-shm"] {
                database.extend(std::fs::read(app.dir().join(file)).unwrap_or_default());
            }
            String::from_utf8_lossy(&database).into_owned()
        }
    };
    let cmdlines = all_cmdlines();
    for secret in secrets {
        assert!(secret.len() > 10);
        assert!(!logs.contains(secret), "a secret reached the log");
        assert!(!responses.contains(secret), "a secret reached a response");
        assert!(!database.contains(secret), "a secret is in the database in clear");
        assert!(!cmdlines.contains(secret), "a secret is in a process's arguments");
    }
    // ... while the hashes are there
    assert!(database.contains("$argon2id$"), "the password's hash is stored");
}

#[tokio::test]
async fn parallel_guesses_get_no_more_tries_than_sequential_ones() {
    let app = TestApp::builder()
        .server(ServerEntry::unreachable("mdwap1p"))
        .env("PINKPAGE_LOGIN_MAX_FAILURES", "2")
        .spawn()
        .await;
    app.identity("otto", "operator", None).await;
    let guesses = (0..20).map(|i| {
        app.anon
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"name": "otto", "password": format!("guess-number-{i:04}")}))
            .send()
    });
    let statuses: Vec<u16> = futures_util::future::join_all(guesses)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let slowed = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + slowed, 20, "{statuses:?}");
    assert!(checked <= 2, "{checked} passwords were checked: {statuses:?}");
}

#[tokio::test]
async fn a_stale_cookie_does_not_lock_its_browser_out() {
    let app = TestApp::spawn_without_ssh().await;
    let otto = app.identity("otto", "operator", None).await;
    let stale = "pinkpage_session=not-a-session-any-more";
    // a route that needs sign-in refuses it and clears it
    let res = app
        .anon
        .get(app.url("/api/v1/servers"))
        .header("cookie", stale)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let cleared = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cleared.starts_with("pinkpage_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    // signing in again works with the stale cookie still sent
    let res = app
        .anon
        .post(app.url("/api/v1/auth/login"))
        .header("cookie", stale)
        .json(&json!({"name": "otto", "password": otto.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // a bad token is still refused even where anyone may go
    let res = app
        .anon
        .get(app.url("/api/v1/health"))
        .bearer_auth("ppt_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn a_malformed_session_cookie_beside_a_good_token_is_refused_like_any_bad_credential() {
    let app = TestApp::spawn_without_ssh().await;
    // the token alone is good
    assert_eq!(app.get("/api/v1/servers").await.status(), 200);
    for cookie in [
        "pinkpage_session",
        "pinkpage_session=",
        "pinkpage_session=forged",
        "theme=dark; pinkpage_session",
        // a cookie parser that gives up on the whole header at `junk`
        // would not see the session cookie after it
        "junk; pinkpage_session=forged",
    ] {
        let res = app
            .http
            .get(app.url("/api/v1/servers"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "Cookie: {cookie}");
        let cleared = res.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cleared.contains("Max-Age=0"), "Cookie: {cookie}: {cleared}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], 10002, "Cookie: {cookie}: {body}");
    }
    // other sites' cookies, well-formed or not, are no credential of ours
    for cookie in ["theme=dark", "junk", "pinkpage_session_old=x"] {
        let res = app
            .http
            .get(app.url("/api/v1/servers"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "Cookie: {cookie}");
    }
}

#[tokio::test]
async fn a_login_name_is_measured_in_characters_as_the_document_says() {
    let app = TestApp::spawn_without_ssh().await;
    let login = |name: String| {
        app.anon
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"name": name, "password": "not-the-password"}))
            .send()
    };
    // 64 characters (128 bytes): within the document's maxLength, so it is
    // judged like any name (no such account)
    let res = login("é".repeat(64)).await.unwrap();
    assert_eq!(res.status(), 401);
    // one more is past it
    let res = login("é".repeat(65)).await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 10001, "{body}");
}
