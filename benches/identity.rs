//! Identity benchmark (issue: identity and access). Run with
//!
//! ```text
//! sudo scripts/test-env.sh && cargo bench --bench identity
//! ```
//!
//! Side by side, in one run, against one daemon:
//! - (a) REST: requests per second of `GET /api/v1/health` with no
//!   credential, the same request with an API token (the identity check is
//!   the only difference), the same with a session cookie, and the
//!   authenticated trivial read `GET /api/v1/servers`; rounds alternate so
//!   drift hits all alike;
//! - (b) WebSocket, on one token-authenticated connection: the round trip
//!   of `ping` (answered before any role check) vs `cancel` with nothing
//!   running (role-checked, then answered 50011);
//! - (c) login time with the chosen Argon2id parameters;
//! - (d) the same logins with 100,000 other sign-in sessions stored
//!   (written into the database while the daemon is stopped, then a
//!   restart), and the daemon's resident memory before and after them: a
//!   login must cost the same at any number of sessions.
//!   `PINKPAGE_BENCH_SESSIONS` sets another number.
//!
//! Prints a markdown table for docs/benchmarks.md.

#[path = "../tests/api/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::daemon::TestApp;
use support::ws::WsClient;

const REQUESTS: usize = 3000;
const ROUNDS: usize = 5;
const FRAMES: usize = 3000;
const LOGINS: usize = 20;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Requests per second of `REQUESTS` sequential GETs of `path` on one
/// keep-alive connection, each with `headers`.
async fn rps(app: &TestApp, path: &str, headers: &[(&str, String)]) -> f64 {
    let url = app.url(path);
    let started = Instant::now();
    for _ in 0..REQUESTS {
        let mut req = app.anon.get(&url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        res.bytes().await.unwrap();
    }
    REQUESTS as f64 / started.elapsed().as_secs_f64()
}

/// Median round trip (µs) of `FRAMES` frames of `frame`, each answered.
async fn round_trip(client: &mut WsClient, frame: serde_json::Value, answer: &str) -> f64 {
    let mut times = Vec::with_capacity(FRAMES);
    for _ in 0..FRAMES {
        let started = Instant::now();
        client.send(frame.clone()).await;
        loop {
            let f = client.recv().await;
            if f["type"] == answer {
                break;
            }
        }
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    median(times)
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("identity benchmark: run with `cargo bench --bench identity`");
        return;
    }
    let mut app = TestApp::builder()
        .server(support::daemon::ServerEntry::unreachable("bench"))
        .env("RUST_LOG", "warn,pinkpage::startup=info")
        .spawn()
        .await;
    let who = app.identity("bench-op", "operator", None).await;
    let login = || {
        app.anon
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"name": who.name, "password": who.password}))
            .send()
    };
    let res = login().await.unwrap();
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {}", who.token);

    // warm up every path once
    rps(&app, "/api/v1/health", &[]).await;
    let (mut anon, mut token, mut session, mut servers) = (vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        anon.push(rps(&app, "/api/v1/health", &[]).await);
        token.push(rps(&app, "/api/v1/health", &[("authorization", bearer.clone())]).await);
        session.push(rps(&app, "/api/v1/health", &[("cookie", cookie.clone())]).await);
        servers.push(rps(&app, "/api/v1/servers", &[("authorization", bearer.clone())]).await);
    }

    let mut ws = WsClient::connect_with_token(&app, "/ws/v1/stub", &who.token).await;
    round_trip(&mut ws, json!({"type": "ping"}), "pong").await;
    let (mut ping, mut checked) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        ping.push(round_trip(&mut ws, json!({"type": "ping"}), "pong").await);
        checked.push(round_trip(&mut ws, json!({"type": "cancel"}), "error").await);
    }

    let mut logins = Vec::new();
    for _ in 0..LOGINS {
        let started = Instant::now();
        let res = login().await.unwrap();
        assert_eq!(res.status(), 200);
        logins.push(started.elapsed());
    }
    logins.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;

    // (d) the same logins among many stored sessions of another user
    let crowd: usize = std::env::var("PINKPAGE_BENCH_SESSIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let res = app
        .post_json("/api/v1/users", &json!({"name": "crowd", "role": "viewer"}))
        .await;
    assert_eq!(res.status(), 201);
    app.kill();
    store_sessions(&app, "crowd", crowd);
    app.kill_and_restart().await;
    let rss_before = rss_kib(&app);
    let mut crowded = Vec::new();
    for _ in 0..LOGINS {
        let started = Instant::now();
        let res = app
            .anon
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"name": who.name, "password": who.password}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        crowded.push(started.elapsed());
    }
    crowded.sort();
    let rss_after = rss_kib(&app);

    let (a, t, s, v) = (
        median(anon.clone()),
        median(token.clone()),
        median(session.clone()),
        median(servers.clone()),
    );
    println!(
        "\n## Identity ({REQUESTS} sequential requests a round, median of {ROUNDS} alternating rounds)\n"
    );
    println!("| path | result |\n|---|---|");
    println!("| `GET /api/v1/health`, anonymous | {a:.0} req/s (rounds: {anon:.0?}) |");
    println!("| `GET /api/v1/health` with an API token | {t:.0} req/s (rounds: {token:.0?}) |");
    println!("| `GET /api/v1/health` with a session cookie | {s:.0} req/s (rounds: {session:.0?}) |");
    println!("| `GET /api/v1/servers` with an API token | {v:.0} req/s (rounds: {servers:.0?}) |");
    println!(
        "| cost of the token check on the same request | {:.1} % |",
        (a - t) / a * 100.0
    );
    println!(
        "| cost of the cookie check on the same request | {:.1} % |",
        (a - s) / a * 100.0
    );
    println!(
        "| authenticated `servers` vs anonymous `health` | {:.1} % |",
        (a - v) / a * 100.0
    );
    println!(
        "| WebSocket round trip, `ping` (no role check) / `cancel` (role-checked, 50011) | {:.0} µs / {:.0} µs |",
        median(ping),
        median(checked)
    );
    println!(
        "| login (Argon2id verify + session), min / median / max of {LOGINS} | {:.0} / {:.0} / {:.0} ms |",
        ms(logins[0]),
        ms(logins[LOGINS / 2]),
        ms(logins[LOGINS - 1])
    );
    println!(
        "| the same with {crowd} other sessions stored, min / median / max | {:.0} / {:.0} / {:.0} ms |",
        ms(crowded[0]),
        ms(crowded[LOGINS / 2]),
        ms(crowded[LOGINS - 1])
    );
    println!(
        "| daemon resident memory with {crowd} sessions, before / after those logins | {:.0} / {:.0} MiB |",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
}

/// Writes `count` sign-in sessions of `user` straight into the stopped
/// daemon's database (as many users' browsers would have over weeks).
fn store_sessions(app: &TestApp, user: &str, count: usize) {
    let mut db = rusqlite::Connection::open(app.database()).unwrap();
    let tx = db.transaction().unwrap();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let far = (chrono::Utc::now() + chrono::Duration::days(365))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO web_sessions (id, secret_hash, user_id, created_at, last_seen_at, expires_at)
                 VALUES (?1, ?2, (SELECT id FROM users WHERE name = ?3), ?4, ?4, ?5)",
            )
            .unwrap();
        for i in 0..count {
            insert
                .execute(rusqlite::params![
                    format!("bench{i:07}"),
                    format!("{i:064x}"),
                    user,
                    now,
                    far
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// The daemon's resident memory now (`VmRSS`), in KiB.
fn rss_kib(app: &TestApp) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap()
}
