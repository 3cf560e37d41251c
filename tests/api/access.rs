//! Who may do what, walked from the documents themselves: every route of
//! the OpenAPI document and every WebSocket message type against the
//! access table of `docs/security.md` (a route or type the page does not
//! name fails the walk), then each defence attacked: cross-site WebSocket
//! hijacking, a foreign Origin on a POST, a rebinding Host, CORS, and an
//! operator limited by server tags trying every domain on a server outside
//! its tags.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite;

use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::fixtures::TempTree;
use crate::support::sshd::{SshdOptions, SshdServer};
use crate::support::ws::WsClient;

/// One row of the page's route table: anonymous, viewer, operator, admin.
type Allowed = [bool; 4];

/// The page's tables: routes by (method, pattern), message types by
/// (endpoint, type) with viewer, operator, admin.
type Tables = (
    BTreeMap<(String, String), Allowed>,
    BTreeMap<(String, String), [bool; 3]>,
);

/// The access table of docs/security.md: routes by (method, pattern) and
/// message types by (endpoint, type) (viewer, operator, admin).
fn documented_table() -> Tables {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md")).unwrap();
    let start = doc
        .find("<!-- access-table:start -->")
        .expect("table start marker");
    let end = doc.find("<!-- access-table:end -->").expect("table end marker");
    let yes = |c: &str| match c.trim() {
        "yes" => true,
        "no" => false,
        other => panic!("cell {other:?} is neither yes nor no"),
    };
    let (mut routes, mut messages) = (BTreeMap::new(), BTreeMap::new());
    for line in doc[start..end].lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let unquote = |c: &str| c.trim_matches('`').to_owned();
        match cells.len() {
            7 if cells[0] != "method" => {
                routes.insert(
                    (cells[0].to_owned(), unquote(cells[1])),
                    [yes(cells[2]), yes(cells[3]), yes(cells[4]), yes(cells[5])],
                );
            }
            5 if cells[0] != "endpoint" => {
                messages.insert(
                    (unquote(cells[0]), unquote(cells[1])),
                    [yes(cells[2]), yes(cells[3]), yes(cells[4])],
                );
            }
            _ => {}
        }
    }
    assert!(
        routes.len() > 20 && messages.len() > 15,
        "the table did not parse"
    );
    (routes, messages)
}

/// A concrete path for an OpenAPI template.
fn fill(template: &str) -> String {
    template
        .replace("{name}", "mdwap1p")
        .replace("{run_id}", "5f0c5a59-1111-4a4a-9b9b-000000000000")
        .replace("{id}", "000000000000")
}

/// The same path with the first letter after `/api/v1/` percent-encoded
/// (`/api/v1/%75sers`): the router decodes it, so access must too.
fn encoded(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/v1/")?;
    let first = rest.chars().next().filter(char::is_ascii_alphabetic)?;
    Some(format!("/api/v1/%{:02X}{}", first as u32, &rest[1..]))
}

fn error_code(body: &Value) -> Option<u64> {
    body["error"]["code"].as_u64()
}

async fn send(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = app
        .anon
        .request(Method::from_bytes(method.as_bytes()).unwrap(), app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if matches!(method, "POST" | "PUT" | "PATCH") {
        req = req.json(&json!({}));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn people(app: &TestApp) -> [(String, Option<String>); 4] {
    let viewer = app.identity("vera", "viewer", None).await;
    let operator = app.identity("otto", "operator", None).await;
    [
        ("anonymous".to_owned(), None),
        ("viewer".to_owned(), Some(viewer.token)),
        ("operator".to_owned(), Some(operator.token)),
        ("admin".to_owned(), app.admin_token.clone()),
    ]
}

#[tokio::test]
async fn every_route_of_the_openapi_document_follows_the_access_table() {
    let app = TestApp::spawn_without_ssh().await;
    let (routes, _) = documented_table();
    let who = people(&app).await;
    let res = app
        .anon
        .get(app.url("/api-docs/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the OpenAPI document is public");
    let doc: Value = res.json().await.unwrap();
    let mut walked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            let method = method.to_uppercase();
            let allowed = routes
                .get(&(method.clone(), template.clone()))
                .unwrap_or_else(|| panic!("{method} {template} is not in docs/security.md's table"));
            let plain = fill(template);
            let paths = [Some(plain.clone()), encoded(&plain)];
            for ((name, token), may) in who.iter().zip(allowed) {
                for path in paths.iter().flatten() {
                    let (status, body) = send(&app, &method, path, token.as_deref()).await;
                    let code = error_code(&body);
                    if *may {
                        assert!(
                            status != 401 && !(status == 403 && code == Some(10003)),
                            "{name} may {method} {path} but got {status} {body}"
                        );
                    } else if token.is_none() {
                        assert_eq!(
                            (status, code),
                            (401, Some(10002)),
                            "anonymous {method} {path}: {body}"
                        );
                    } else {
                        assert_eq!(
                            (status, code),
                            (403, Some(10003)),
                            "{name} {method} {path}: {body}"
                        );
                    }
                }
            }
            walked += 1;
        }
    }
    assert!(walked >= 25, "only {walked} operations walked");
}

/// Sends `{"type": kind}` and returns the reply that answers it.
async fn reply_to(client: &mut WsClient, kind: &str) -> Value {
    client.send(json!({"type": kind, "request_id": kind})).await;
    loop {
        let frame = client.recv().await;
        if frame["request_id"] == kind {
            return frame;
        }
    }
}

#[tokio::test]
async fn every_websocket_message_type_follows_the_access_table() {
    let app = TestApp::spawn_without_ssh().await;
    let (routes, messages) = documented_table();
    let who = people(&app).await;
    for endpoint in ["/ws/v1/stub", "/ws/v1/bmx4", "/ws/v1/bmx5", "/ws/v1/diff"] {
        let upgrade = routes[&("GET".to_owned(), endpoint.to_owned())];
        assert!(!upgrade[0] && upgrade[1], "{endpoint}: signed-in users only");
        match WsClient::open(&app, endpoint, &[]).await {
            Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401, "{endpoint}"),
            other => panic!(
                "anonymous upgrade of {endpoint} was not refused: {:?}",
                other.map(|_| ())
            ),
        }
        let kinds: Vec<_> = messages.iter().filter(|((e, _), _)| e == endpoint).collect();
        assert!(!kinds.is_empty(), "{endpoint} has no message types in the table");
        for ((name, token), role) in who.iter().skip(1).zip(0..) {
            let mut client = WsClient::connect_with_token(&app, endpoint, token.as_deref().unwrap()).await;
            for ((_, kind), allowed) in &kinds {
                let reply = reply_to(&mut client, kind).await;
                let code = error_code(&reply);
                if allowed[role] {
                    assert!(
                        !matches!(code, Some(10002 | 10003)),
                        "{name} may send {kind} on {endpoint}: {reply}"
                    );
                } else {
                    assert_eq!(code, Some(10003), "{name} {kind} on {endpoint}: {reply}");
                }
            }
            // a type the table does not name is refused as unknown
            let reply = reply_to(&mut client, "launch_missiles").await;
            assert_eq!(error_code(&reply), Some(31001), "{reply}");
            client.close().await;
        }
    }
}

fn refusal_status(result: Result<impl Sized, tungstenite::Error>) -> (u16, Value) {
    match result {
        Err(tungstenite::Error::Http(res)) => {
            let body = res
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (res.status().as_u16(), body)
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

#[tokio::test]
async fn a_foreign_origin_cannot_open_a_websocket_even_with_a_good_cookie() {
    let app = TestApp::spawn_without_ssh().await;
    let otto = app.identity("otto", "operator", None).await;
    let (cookie, _) = app.sign_in(&otto).await;
    for endpoint in ["/ws/v1/stub", "/ws/v1/bmx4", "/ws/v1/bmx5", "/ws/v1/diff"] {
        // the page's own origin with the cookie works: the control
        let own = format!("http://127.0.0.1:{}", app.port);
        let ok = WsClient::open(
            &app,
            endpoint,
            &[("origin".into(), own), ("cookie".into(), cookie.clone())],
        )
        .await;
        let client = WsClient::welcomed(ok.expect("own origin with a cookie")).await;
        client.close().await;
        for creds in [None, Some(cookie.clone())] {
            let mut headers = vec![("origin".to_owned(), "https://evil.example".to_owned())];
            if let Some(c) = &creds {
                headers.push(("cookie".to_owned(), c.clone()));
            }
            let (status, body) = refusal_status(WsClient::open(&app, endpoint, &headers).await);
            assert_eq!(
                (status, error_code(&body)),
                (403, Some(10005)),
                "{endpoint} {creds:?}: {body}"
            );
        }
    }
    // only the four controls ever became connections
    let logs = app.logs_settled().await;
    assert_eq!(logs.matches("websocket connected").count(), 4);
}

#[tokio::test]
async fn a_foreign_origin_cannot_post_and_a_rebinding_host_is_refused() {
    let app = TestApp::spawn_without_ssh().await;
    let token = app.admin_token.clone().unwrap();
    let res = app
        .anon
        .post(app.url("/api/v1/servers/mdwap1p/check"))
        .bearer_auth(&token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), Some(10005), "{body}");
    // `Origin: null` (a sandboxed page, a file) is foreign too
    let res = app
        .anon
        .delete(app.url("/api/v1/session"))
        .bearer_auth(&token)
        .header("origin", "null")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), Some(10005), "{body}");

    // DNS rebinding: evil.example resolves to 127.0.0.1, the browser sends
    // its own name as Host
    let res = app
        .anon
        .get(app.url("/api/v1/servers"))
        .bearer_auth(&token)
        .header("host", format!("evil.example:{}", app.port))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), Some(10006), "{body}");
    let (status, body) = refusal_status(
        WsClient::open(
            &app,
            "/ws/v1/stub",
            &[
                ("host".into(), "evil.example".into()),
                ("authorization".into(), format!("Bearer {token}")),
            ],
        )
        .await,
    );
    assert_eq!((status, error_code(&body)), (403, Some(10006)));
    // the names the daemon is reached by are fine
    for host in ["localhost", "127.0.0.1"] {
        let res = app
            .http
            .get(app.url("/api/v1/servers"))
            .header("host", format!("{host}:{}", app.port))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{host}");
    }
}

#[tokio::test]
async fn cors_answers_listed_origins_only_and_never_with_a_wildcard() {
    let app = TestApp::builder()
        .server(ServerEntry::unreachable("mdwap1p"))
        .env("PINKPAGE_ALLOWED_ORIGINS", "https://console.example.com")
        .spawn()
        .await;
    let preflight = |origin: &'static str| {
        app.anon
            .request(Method::OPTIONS, app.url("/api/v1/servers/mdwap1p/check"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let res = preflight("https://console.example.com").await.unwrap();
    assert_eq!(res.status(), 204);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "https://console.example.com");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let res = preflight("https://evil.example").await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("access-control-allow-origin").is_none());

    // a listed origin's request goes through and may be read
    let res = app
        .http
        .get(app.url("/api/v1/servers"))
        .header("origin", "https://console.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://console.example.com"
    );
    assert_eq!(res.headers()["vary"], "Origin");
}

/// Two servers, `web-a` tagged `a` (a real sshd) and `web-b` tagged `b`,
/// a transfer between them, and an operator limited to tag `a`.
#[tokio::test]
async fn an_operator_limited_to_a_tag_reaches_no_other_server_through_any_domain() {
    let sshd = SshdServer::start(SshdOptions::default());
    let tree = TempTree::for_test_user("tags");
    let mut a = ServerEntry::for_sshd("web-a", &sshd);
    a.extra = "tags = [\"a\"]\n".into();
    let mut b = ServerEntry::for_sshd("web-b", &sshd);
    b.extra = "tags = [\"b\"]\n".into();
    let app = TestApp::builder()
        .server(a)
        .server(b)
        .known_hosts(&sshd.known_hosts_line())
        .transfers_toml(&format!(
            "[[transfers]]\nname = \"a_to_b\"\nsource_server = \"web-a\"\nsource_glob = \"{0}/*.dat\"\n\
             destination_server = \"web-b\"\ndestination_dir = \"{0}/out\"\n",
            tree.root().display()
        ))
        .spawn()
        .await;
    let ana = app.identity("ana", "operator", Some(&["a"])).await;
    let forbidden = |reply: &Value| {
        assert_eq!(error_code(reply), Some(10003), "{reply}");
        assert!(
            reply["error"]["detail"].as_str().unwrap().contains("web-b"),
            "{reply}"
        );
    };

    // STUB: a command on web-b is refused; on web-a it runs (the control)
    let mut stub = WsClient::connect_with_token(&app, "/ws/v1/stub", &ana.token).await;
    stub.start_session().await;
    forbidden(
        &stub
            .ask(
                json!({"type": "ssh_command", "server": "web-b", "command": "true"}),
                "ssh_command_started",
            )
            .await,
    );
    let (out, _, done) = stub.run("web-a", "echo tag-a-ok").await;
    assert!(out.contains("tag-a-ok"), "{out} {done}");
    // a transfer whose destination is outside the tags
    forbidden(
        &stub
            .ask(
                json!({"type": "scp_transfer", "transfer_name": "a_to_b"}),
                "scp_started",
            )
            .await,
    );

    // BMX4, BMX5 (SFTP and scripts), DIFF over WebSockets
    let mut bmx4 = WsClient::connect_with_token(&app, "/ws/v1/bmx4", &ana.token).await;
    forbidden(
        &bmx4
            .ask(
                json!({"type": "batch_execute", "servers": ["web-a", "web-b"], "commands": ["true"]}),
                "batch_started",
            )
            .await,
    );
    let mut bmx5 = WsClient::connect_with_token(&app, "/ws/v1/bmx5", &ana.token).await;
    forbidden(
        &bmx5
            .ask(
                json!({"type": "sftp_list", "server": "web-b", "path": "/tmp"}),
                "sftp_list_result",
            )
            .await,
    );
    forbidden(
        &bmx5
            .ask(
                json!({"type": "script_execute", "server": "web-b", "script": "true"}),
                "script_started",
            )
            .await,
    );
    let mut diff = WsClient::connect_with_token(&app, "/ws/v1/diff", &ana.token).await;
    forbidden(
        &diff
            .ask(
                json!({"type": "diff_files", "left": {"server": "web-a", "path": "/etc/hostname"},
                       "right": {"server": "web-b", "path": "/etc/hostname"}}),
                "diff_result",
            )
            .await,
    );
    forbidden(
        &diff
            .ask(
                json!({"type": "diff_command", "left_server": "web-a", "right_server": "web-b", "command": "true"}),
                "diff_command_result",
            )
            .await,
    );

    // REST: a check, a download, a diff
    for (method, path, body) in [
        ("POST", "/api/v1/servers/web-b/check".to_owned(), None),
        (
            "GET",
            "/api/v1/bmx5/files?server=web-b&path=/etc/hostname".to_owned(),
            None,
        ),
        (
            "POST",
            "/api/v1/diff/command".to_owned(),
            Some(json!({"left_server": "web-b", "right_server": "web-a", "command": "true"})),
        ),
    ] {
        let mut req = app
            .anon
            .request(Method::from_bytes(method.as_bytes()).unwrap(), app.url(&path))
            .bearer_auth(&ana.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 403, "{method} {path}");
        forbidden(&res.json().await.unwrap());
    }
    // web-a over REST works (the control)
    let res = app
        .anon
        .post(app.url("/api/v1/servers/web-a/check"))
        .bearer_auth(&ana.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_rebound_page_cannot_borrow_a_trusted_proxys_headers() {
    // A proxy on this machine is trusted; a DNS-rebound page in a browser
    // here reaches the daemon from 127.0.0.1 too, and can add any header
    // but cannot change its Host.
    let app = TestApp::builder()
        .server(ServerEntry::unreachable("mdwap1p"))
        .env("PINKPAGE_TRUSTED_PROXIES", "127.0.0.1")
        .env("PINKPAGE_AUTH_PROXY_HEADER", "X-Forwarded-User")
        .spawn()
        .await;
    let admin = crate::support::daemon::TEST_ADMIN;
    let res = app
        .anon
        .get(app.url("/api/v1/users"))
        .header("host", "evil.example")
        .header("x-forwarded-host", "localhost")
        .header("x-forwarded-user", admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(error_code(&body), Some(10006), "{body}");
    // the same headers with the daemon's own Host are the proxy's: allowed
    let res = app
        .anon
        .get(app.url("/api/v1/users"))
        .header("x-forwarded-host", "localhost")
        .header("x-forwarded-user", admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // a forwarded host outside the list is refused as well
    let res = app
        .anon
        .get(app.url("/api/v1/users"))
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-user", admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
