//! The identity benchmark's body: `cargo bench --bench identity` runs it
//! with [`Workload::FULL`], the suite's smoke run
//! (`bench::identity_benchmark_reports_request_rates_round_trips_and_sign_ins_on_a_tiny_workload`)
//! with a tiny one.
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
//! - (d) the same logins with many other sign-in sessions stored (written
//!   into the database while the daemon is stopped, then a restart), and
//!   the daemon's resident memory before and after them: a login must cost
//!   the same at any number of sessions. `PINKPAGE_BENCH_SESSIONS` sets
//!   another number for the full run.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::json;

use super::stats::median;
use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::ws::WsClient;

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Sequential requests in one round of one path.
    pub requests: usize,
    /// Rounds of every path (REST and WebSocket), alternating.
    pub rounds: usize,
    /// Frames in one WebSocket round.
    pub frames: usize,
    /// Sign-ins timed.
    pub logins: usize,
    /// Other sign-in sessions stored for (d).
    pub sessions: usize,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        requests: 3000,
        rounds: 5,
        frames: 3000,
        logins: 20,
        sessions: 100_000,
    };
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    /// Requests per second of each round: anonymous `health`.
    pub anon_rps: Vec<f64>,
    /// `health` with an API token.
    pub token_rps: Vec<f64>,
    /// `health` with a session cookie.
    pub session_rps: Vec<f64>,
    /// `servers` with an API token.
    pub servers_rps: Vec<f64>,
    /// Median round trip (µs) of `ping`, per round.
    pub ping_us: Vec<f64>,
    /// Median round trip (µs) of a role-checked `cancel`, per round.
    pub checked_us: Vec<f64>,
    /// Each sign-in's time, sorted.
    pub logins: Vec<Duration>,
    /// Each sign-in's time with `workload.sessions` others stored, sorted.
    pub crowded_logins: Vec<Duration>,
    /// The daemon's resident memory (KiB) before and after those sign-ins.
    pub crowded_rss_kib: (u64, u64),
}

/// Runs the benchmark against a fresh daemon.
pub async fn run(w: Workload) -> Report {
    let mut app = TestApp::builder()
        .server(ServerEntry::unreachable("bench"))
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
    rps(&app, w, "/api/v1/health", &[]).await;
    let (mut anon_rps, mut token_rps, mut session_rps, mut servers_rps) = (vec![], vec![], vec![], vec![]);
    for _ in 0..w.rounds {
        anon_rps.push(rps(&app, w, "/api/v1/health", &[]).await);
        token_rps.push(rps(&app, w, "/api/v1/health", &[("authorization", bearer.clone())]).await);
        session_rps.push(rps(&app, w, "/api/v1/health", &[("cookie", cookie.clone())]).await);
        servers_rps.push(rps(&app, w, "/api/v1/servers", &[("authorization", bearer.clone())]).await);
    }

    let mut ws = WsClient::connect_with_token(&app, "/ws/v1/stub", &who.token).await;
    round_trip(&mut ws, w, json!({"type": "ping"}), "pong").await;
    let (mut ping_us, mut checked_us) = (vec![], vec![]);
    for _ in 0..w.rounds {
        ping_us.push(round_trip(&mut ws, w, json!({"type": "ping"}), "pong").await);
        checked_us.push(round_trip(&mut ws, w, json!({"type": "cancel"}), "error").await);
    }

    let mut logins = Vec::new();
    for _ in 0..w.logins {
        let started = Instant::now();
        let res = login().await.unwrap();
        assert_eq!(res.status(), 200);
        logins.push(started.elapsed());
    }
    logins.sort();
    drop(ws);

    // (d) the same logins among many stored sessions of another user
    let res = app
        .post_json("/api/v1/users", &json!({"name": "crowd", "role": "viewer"}))
        .await;
    assert_eq!(res.status(), 201);
    app.kill();
    store_sessions(&app, "crowd", w.sessions);
    app.kill_and_restart().await;
    let rss_before = app.rss_kib();
    let mut crowded_logins = Vec::new();
    for _ in 0..w.logins {
        let started = Instant::now();
        let res = app
            .anon
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"name": who.name, "password": who.password}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        crowded_logins.push(started.elapsed());
    }
    crowded_logins.sort();
    let crowded_rss_kib = (rss_before, app.rss_kib());
    Report {
        workload: w,
        crowded_logins,
        crowded_rss_kib,
        anon_rps,
        token_rps,
        session_rps,
        servers_rps,
        ping_us,
        checked_us,
        logins,
    }
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

/// Requests per second of `w.requests` sequential GETs of `path` on one
/// keep-alive connection, each with `headers`.
async fn rps(app: &TestApp, w: Workload, path: &str, headers: &[(&str, String)]) -> f64 {
    let url = app.url(path);
    let started = Instant::now();
    for _ in 0..w.requests {
        let mut req = app.anon.get(&url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        res.bytes().await.unwrap();
    }
    w.requests as f64 / started.elapsed().as_secs_f64()
}

/// Median round trip (µs) of `w.frames` frames of `frame`, each answered.
async fn round_trip(client: &mut WsClient, w: Workload, frame: serde_json::Value, answer: &str) -> f64 {
    let mut times = Vec::with_capacity(w.frames);
    for _ in 0..w.frames {
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

/// The markdown of docs/benchmarks.md.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.workload;
        let (anon, token, session, servers) = (
            &self.anon_rps,
            &self.token_rps,
            &self.session_rps,
            &self.servers_rps,
        );
        let (a, t, s, v) = (
            median(anon.clone()),
            median(token.clone()),
            median(session.clone()),
            median(servers.clone()),
        );
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let logins = &self.logins;
        writeln!(
            f,
            "\n## Identity ({} sequential requests a round, median of {} alternating rounds)\n",
            w.requests, w.rounds
        )?;
        writeln!(f, "| path | result |\n|---|---|")?;
        writeln!(
            f,
            "| `GET /api/v1/health`, anonymous | {a:.0} req/s (rounds: {anon:.0?}) |"
        )?;
        writeln!(
            f,
            "| `GET /api/v1/health` with an API token | {t:.0} req/s (rounds: {token:.0?}) |"
        )?;
        writeln!(
            f,
            "| `GET /api/v1/health` with a session cookie | {s:.0} req/s (rounds: {session:.0?}) |"
        )?;
        writeln!(
            f,
            "| `GET /api/v1/servers` with an API token | {v:.0} req/s (rounds: {servers:.0?}) |"
        )?;
        writeln!(
            f,
            "| cost of the token check on the same request | {:.1} % |",
            (a - t) / a * 100.0
        )?;
        writeln!(
            f,
            "| cost of the cookie check on the same request | {:.1} % |",
            (a - s) / a * 100.0
        )?;
        writeln!(
            f,
            "| authenticated `servers` vs anonymous `health` | {:.1} % |",
            (a - v) / a * 100.0
        )?;
        writeln!(
            f,
            "| WebSocket round trip, `ping` (no role check) / `cancel` (role-checked, 50011) | {:.0} µs / {:.0} µs |",
            median(self.ping_us.clone()),
            median(self.checked_us.clone())
        )?;
        writeln!(
            f,
            "| login (Argon2id verify + session), min / median / max of {} | {:.0} / {:.0} / {:.0} ms |",
            w.logins,
            ms(logins[0]),
            ms(logins[logins.len() / 2]),
            ms(logins[logins.len() - 1])
        )?;
        let crowded = &self.crowded_logins;
        writeln!(
            f,
            "| the same with {} other sessions stored, min / median / max | {:.0} / {:.0} / {:.0} ms |",
            w.sessions,
            ms(crowded[0]),
            ms(crowded[crowded.len() / 2]),
            ms(crowded[crowded.len() - 1])
        )?;
        writeln!(
            f,
            "| daemon resident memory with {} sessions, before / after those logins | {:.0} / {:.0} MiB |",
            w.sessions,
            self.crowded_rss_kib.0 as f64 / 1024.0,
            self.crowded_rss_kib.1 as f64 / 1024.0
        )
    }
}
