//! The known_hosts file as the daemon reads and writes it, against a real
//! sshd: trust on first use without races, `@revoked`, and names hashed by
//! OpenSSH's own `ssh-keygen -H`.

use std::process::Command;

use serde_json::Value;

use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::poll::eventually;
use crate::support::sshd::{SshdOptions, SshdServer};

/// Several server names for one sshd: each check is a first connection to
/// the same `host:port`.
const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

/// Waits for the start-up health sweep to have checked every server: its
/// TCP probes count against sshd's `MaxStartups` (10) like the checks do,
/// and together they would get connections dropped. With the interval at
/// 600 s no second sweep comes during the test.
async fn after_first_health_sweep(app: &TestApp) {
    eventually("every server health-checked once", async || {
        let all: Value = app.get("/api/v1/health/servers").await.json().await.ok()?;
        let all = all.as_array()?;
        (!all.is_empty() && all.iter().all(|s| s["last_checked"].is_string())).then_some(())
    })
    .await
}

async fn check(app: &TestApp, name: &str) -> (u16, Value) {
    let res = app
        .post_json(&format!("/api/v1/servers/{name}/check"), &Value::Null)
        .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn concurrent_first_connections_under_accept_new_record_exactly_one_key() {
    let sshd = SshdServer::start(SshdOptions::default());
    let mut builder = TestApp::builder()
        .env("PINKPAGE_HOST_KEY_POLICY", "accept-new")
        .env("PINKPAGE_HEALTH_INTERVAL_S", "600");
    for name in NAMES {
        builder = builder.server(ServerEntry::for_sshd(name, &sshd));
    }
    let app = builder.spawn().await;
    after_first_health_sweep(&app).await;
    let known_hosts = app.dir().join("known_hosts");
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), "", "not fresh");

    // all at once: each would record the key if learning were not serialised
    let checks = NAMES.map(|name| check(&app, name));
    let results = futures_util::future::join_all(checks).await;

    for (name, (status, body)) in NAMES.iter().zip(&results) {
        assert_eq!(*status, 200, "{name}: {body}");
    }
    let recorded = std::fs::read_to_string(&known_hosts).unwrap();
    assert_eq!(
        recorded.lines().collect::<Vec<_>>(),
        vec![sshd.known_hosts_line()],
        "{recorded}"
    );
    let learned = app
        .logs_settled()
        .await
        .matches("recorded a new host key")
        .count();
    assert_eq!(learned, 1, "{}", app.logs_settled().await);
}

#[tokio::test]
async fn two_daemons_sharing_one_known_hosts_file_record_exactly_one_key() {
    // the file lock, not the in-process mutex, is what keeps these apart
    let sshd = SshdServer::start(SshdOptions::default());
    let shared = tempfile::tempdir().unwrap();
    let known_hosts = shared.path().join("known_hosts");
    let spawn = || {
        let mut builder = TestApp::builder()
            .env("PINKPAGE_HOST_KEY_POLICY", "accept-new")
            .env("PINKPAGE_KNOWN_HOSTS", known_hosts.to_str().unwrap())
            .env("PINKPAGE_HEALTH_INTERVAL_S", "600");
        for name in &NAMES[..4] {
            builder = builder.server(ServerEntry::for_sshd(name, &sshd));
        }
        builder.spawn()
    };
    let (one, two) = tokio::join!(spawn(), spawn());
    after_first_health_sweep(&one).await;
    after_first_health_sweep(&two).await;

    // 8 at once: under sshd's MaxStartups (10), which drops the rest
    let checks = NAMES[..4]
        .iter()
        .flat_map(|name| [check(&one, name), check(&two, name)]);
    let results = futures_util::future::join_all(checks).await;

    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
    }
    let recorded = std::fs::read_to_string(&known_hosts).unwrap();
    assert_eq!(
        recorded.lines().collect::<Vec<_>>(),
        vec![sshd.known_hosts_line()],
        "{recorded}"
    );
    let mut learned = 0;
    for app in [&one, &two] {
        learned += app
            .logs_settled()
            .await
            .matches("recorded a new host key")
            .count();
    }
    assert_eq!(learned, 1);
    assert!(known_hosts.with_file_name("known_hosts.lock").exists());
}

#[tokio::test]
async fn a_revoked_host_key_is_refused_even_though_another_line_trusts_it() {
    let sshd = SshdServer::start(SshdOptions::default());
    let line = sshd.known_hosts_line();
    let app = TestApp::builder()
        .sshd("revoked", &sshd)
        .known_hosts(&format!("# retired after the incident\n@revoked {line}"))
        .env("PINKPAGE_HOST_KEY_POLICY", "accept-new")
        .spawn()
        .await;

    let (status, body) = check(&app, "revoked").await;

    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], 20002, "{body}");
    let detail = body["error"]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("REVOKED") && detail.contains("known_hosts:3"),
        "{detail}"
    );
    assert!(detail.contains(&sshd.host_key_fingerprint()), "{detail}");
}

#[tokio::test]
async fn a_name_hashed_by_ssh_keygen_is_trusted_under_strict() {
    let sshd = SshdServer::start(SshdOptions::default());
    let app = TestApp::builder().sshd("hashed", &sshd).spawn().await;
    let known_hosts = app.dir().join("known_hosts");
    let out = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&known_hosts)
        .output()
        .expect("run ssh-keygen -H");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hashed = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(
        hashed.starts_with("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );

    let (status, body) = check(&app, "hashed").await;

    assert_eq!(status, 200, "{body}");
    // still strict: a host the hashed line does not name is refused
    let other = SshdServer::start(SshdOptions::default());
    drop(app);
    let app = TestApp::builder()
        .server(ServerEntry::for_sshd("other", &other))
        .known_hosts(&hashed)
        .spawn()
        .await;
    let (status, body) = check(&app, "other").await;
    assert_eq!(body["error"]["code"], 20002, "{status} {body}");
    assert!(
        body["error"]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown host key"),
        "{body}"
    );
}
