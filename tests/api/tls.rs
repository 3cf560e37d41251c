//! HTTPS and WSS (issue 28, part 1): the daemon serves the certificate of
//! `PINKPAGE_TLS_CERT` / `PINKPAGE_TLS_KEY`, marks its cookie `Secure`,
//! and serves a renewed certificate after SIGHUP without dropping an open
//! WebSocket. The certificates are made here with rcgen; the client is
//! tokio-rustls trusting exactly the certificate under test.

use std::path::Path;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

use crate::support::daemon::TestApp;

/// A self-signed certificate for 127.0.0.1 and its key, written as PEM.
fn certificate(dir: &Path) -> CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("a test certificate");
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    made.cert.der().clone()
}

/// ring, as the daemon uses (see `src/tls.rs` on why it is deprecated).
#[allow(deprecated)]
fn provider() -> Arc<tokio_rustls::rustls::crypto::CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

/// A TLS connection to the daemon trusting only `trusted`; the handshake
/// fails on any other certificate.
async fn connect(
    app: &TestApp,
    trusted: &[&CertificateDer<'static>],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    for cert in trusted {
        roots.add((*cert).clone()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(("127.0.0.1", app.port)).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
}

/// One HTTP/1.1 request over a fresh TLS connection; the status line and
/// headers, and the body.
async fn https(app: &TestApp, trusted: &[&CertificateDer<'static>], request: &str) -> (String, String) {
    let mut tls = connect(app, trusted).await.expect("TLS handshake");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // `Connection: close`: actix-web may close without TLS close_notify,
    // which rustls reports as an unexpected end after the whole answer
    match tls.read_to_end(&mut answer).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("reading the answer: {e}"),
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.to_owned(), body.to_owned())
}

fn get(path: &str, token: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
}

#[tokio::test]
async fn https_and_wss_serve_the_certificate_and_a_renewal_after_sighup_keeps_open_websockets() {
    let certs = tempfile::tempdir().unwrap();
    let first = certificate(certs.path());
    let app = TestApp::builder()
        .server(crate::support::daemon::ServerEntry::unreachable("mdwap1p"))
        .env(
            "PINKPAGE_TLS_CERT",
            certs.path().join("cert.pem").to_str().unwrap(),
        )
        .env("PINKPAGE_TLS_KEY", certs.path().join("key.pem").to_str().unwrap())
        .spawn()
        .await;
    let token = app.admin_token.clone().unwrap();

    let (head, body) = https(&app, &[&first], &get("/api/v1/servers", &token)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("mdwap1p"), "{body}");
    // plain HTTP is not served on the TLS port
    assert!(app.anon.get(app.url("/api/v1/health")).send().await.is_err());

    // the cookie is Secure over HTTPS
    let (code, _, err) = app.cli(
        &["user", "add", "tls-op", "--role", "operator", "--password-stdin"],
        "tls-op-password\n",
    );
    assert_eq!(code, Some(0), "{err}");
    let login = r#"{"name": "tls-op", "password": "tls-op-password"}"#;
    let (head, _) = https(
        &app,
        &[&first],
        &format!(
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{login}",
            login.len()
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(cookie.contains("Secure"), "{cookie}");

    // a WebSocket over TLS, with the browser's Origin
    let tls = connect(&app, &[&first]).await.unwrap();
    let request = tokio_tungstenite::tungstenite::http::Request::builder()
        .uri(format!("wss://127.0.0.1:{}/ws/v1/stub", app.port))
        .header("Host", format!("127.0.0.1:{}", app.port))
        .header("Origin", format!("https://127.0.0.1:{}", app.port))
        .header("Authorization", format!("Bearer {token}"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls)
        .await
        .expect("WSS handshake");
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    // renewal: a new certificate and key in the same files, then SIGHUP
    let second = certificate(certs.path());
    assert_ne!(first, second);
    app.signal("HUP");
    let rows = reload_rows(&app, &[&first, &second], &token, 1).await;
    let changes = rows[0]["detail"]["changes"].to_string();
    assert!(changes.contains("TLS certificate renewed"), "{}", rows[0]);
    // new connections get the new certificate, and refuse the old one
    let (head, _) = https(&app, &[&second], &get("/api/v1/health", &token)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        connect(&app, &[&first]).await.is_err(),
        "the old certificate is still served"
    );
    // the WebSocket opened before goes on
    ws.send(Message::text(
        json!({"type": "ping", "request_id": "p"}).to_string(),
    ))
    .await
    .unwrap();
    let pong = loop {
        let frame = next_json(&mut ws).await;
        if frame["type"] == "pong" {
            break frame;
        }
    };
    assert_eq!(pong["request_id"], "p");

    // a broken renewal changes nothing: the second certificate stays
    std::fs::write(certs.path().join("cert.pem"), "not a certificate").unwrap();
    app.signal("HUP");
    let rows = reload_rows(&app, &[&first, &second], &token, 2).await;
    assert_eq!(rows[0]["outcome"], "failed", "{}", rows[0]);
    assert!(
        rows[0]["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("PINKPAGE_TLS_CERT"),
        "{}",
        rows[0]
    );
    let (head, _) = https(&app, &[&second], &get("/api/v1/health", &token)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

/// The `config.reload` audit rows over HTTPS once there are `count`.
async fn reload_rows(
    app: &TestApp,
    trusted: &[&CertificateDer<'static>],
    token: &str,
    count: usize,
) -> Vec<Value> {
    crate::support::poll::eventually(&format!("{count} config.reload rows"), async || {
        let (head, body) = https(app, trusted, &get("/api/v1/audit?action=config.reload", token)).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        // the body may come chunked: the JSON array is between its brackets
        let json = &body[body.find('[').unwrap()..=body.rfind(']').unwrap()];
        let rows: Vec<Value> = serde_json::from_str(json).unwrap();
        if rows.len() >= count {
            Ok(rows)
        } else {
            Err(rows.len())
        }
    })
    .await
}

async fn next_json(ws: &mut tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>) -> Value {
    loop {
        match ws.next().await.expect("the WebSocket ended").expect("a frame") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame: {other:?}"),
        }
    }
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused_by_check_config_and_at_start() {
    let certs = tempfile::tempdir().unwrap();
    certificate(certs.path());
    let cert = certs.path().join("cert.pem");
    let key = certs.path().join("key.pem");
    let env = |cert: &Path, key: &Path| {
        vec![
            ("HIWARE_ID", "hiware".to_owned()),
            ("HIWARE_PW", "pw".to_owned()),
            ("MDWAP1P_IP", "127.0.0.1".to_owned()),
            ("PINKPAGE_TLS_CERT", cert.display().to_string()),
            ("PINKPAGE_TLS_KEY", key.display().to_string()),
        ]
    };
    let run = |args: &[&str], env: &[(&str, String)]| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        crate::support::daemon::run_to_exit(args, &env)
    };
    let (code, out) = run(&["check-config"], &env(&cert, &key));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("tls ok: SHA256:"), "{out}");

    // another certificate's key
    let other = tempfile::tempdir().unwrap();
    certificate(other.path());
    let (code, out) = run(&["check-config"], &env(&cert, &other.path().join("key.pem")));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("does not match the certificate"), "{out}");
    let mut serve = env(&cert, &other.path().join("key.pem"));
    serve.push(("PINKPAGE_BIND", "127.0.0.1:0".to_owned()));
    serve.push(("PINKPAGE_DB", certs.path().join("db").display().to_string()));
    serve.push((
        "PINKPAGE_DATA_DIR",
        certs.path().join("data").display().to_string(),
    ));
    let (code, out) = run(&["serve"], &serve);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("PINKPAGE_TLS_CERT") && out.contains("does not match"),
        "{out}"
    );
    // one without the other
    let mut half = env(&cert, &key);
    half.retain(|(k, _)| *k != "PINKPAGE_TLS_KEY");
    let (code, out) = run(&["check-config"], &half);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("PINKPAGE_TLS_KEY: required because PINKPAGE_TLS_CERT is set"),
        "{out}"
    );
}
