//! The REST skeleton, docs and error bodies.

use serde_json::Value;

use crate::support::daemon::TestApp;

#[tokio::test]
async fn health_reports_status_version_and_uptime() {
    let before_spawn = std::time::Instant::now();
    let app = TestApp::spawn_without_ssh().await;
    let res = app.get("/api/v1/health").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    // bounded on both sides: the daemon cannot have run longer than this
    // test has
    let uptime = body["uptime_s"].as_f64().unwrap();
    let alive = before_spawn.elapsed().as_secs_f64();
    assert!(
        (0.0..=alive).contains(&uptime),
        "uptime {uptime} s, test ran {alive} s"
    );
}

#[tokio::test]
async fn servers_are_listed_without_any_secret() {
    let app = TestApp::spawn_without_ssh().await;
    let res = app.get("/api/v1/servers").await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body[0]["name"], "mdwap1p");
    assert_eq!(body[0]["auth_method"], "password");
    assert!(!text.contains("unused-password"), "password leaked: {text}");
    assert!(
        !text.to_lowercase().contains("\"password\":"),
        "a password field: {text}"
    );
}

#[tokio::test]
async fn the_error_catalogue_is_served() {
    let app = TestApp::spawn_without_ssh().await;
    let body: Value = app.get("/api/v1/errors").await.json().await.unwrap();
    let codes: Vec<u64> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_u64().unwrap())
        .collect();
    for code in [10000, 20002, 31002, 50004, 53000] {
        assert!(codes.contains(&code), "{code} missing");
    }
    let locked = body
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["code"] == 50008)
        .unwrap();
    assert_eq!(locked["http_status"], 423);
}

#[tokio::test]
async fn an_unknown_route_gets_the_json_error_body_with_10004() {
    let app = TestApp::spawn_without_ssh().await;
    let res = app.get("/api/v1/nothing-here").await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], 10004);
    assert!(body["error"]["message"].is_string());
}

#[tokio::test]
async fn a_bad_query_parameter_gets_10001() {
    let app = TestApp::spawn_without_ssh().await;
    let res = app.get("/api/v1/audit?limit=banana").await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 10001);
}

#[tokio::test]
async fn the_root_redirects_to_the_console_and_swagger_is_served_from_the_binary() {
    let app = TestApp::spawn_without_ssh().await;
    let res = app.get("/").await;
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, "/ui/");
    let res = app.get("/swagger/docs").await;
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/swagger/docs/"), "{location}");

    let page = app.get("/swagger/docs/").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let bundle = app.get("/swagger/docs/swagger-ui-bundle.js").await;
    assert_eq!(
        bundle.status(),
        200,
        "the Swagger UI assets must be in the binary"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_the_rest_endpoints() {
    let app = TestApp::spawn_without_ssh().await;
    let doc: Value = app.get("/api-docs/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/health",
        "/api/v1/servers",
        "/api/v1/errors",
        "/api/v1/audit",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from OpenAPI");
    }
}

#[tokio::test]
async fn the_daemon_start_is_in_the_audit_trail() {
    let app = TestApp::spawn_without_ssh().await;
    // The start event is written without waiting: the bounded poll of
    // audit_events, rather than sleeping a guessed time.
    let events = app.audit_events("action=daemon.start", 1).await;
    assert_eq!(events[0]["actor"], "system");
}
