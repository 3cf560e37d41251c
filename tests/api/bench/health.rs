//! The health benchmark's body: `cargo bench --bench health` runs it with
//! [`Workload::FULL`], the suite's smoke run
//! (`bench::health_benchmark_times_sweeps_welcomes_and_listings_on_a_tiny_workload`)
//! with a tiny one.
//!
//! One daemon with a servers file of many entries on loopback, served by
//! small banner servers this process starts: most answer with an SSH
//! banner, some accept and never answer (each holds its check for the
//! whole timeout), some refuse. Measured in one run:
//! - each sweep's wall time against the health timeout (from the daemon's
//!   own `pinkpage_health_sweep_duration_seconds`), and the daemon's CPU
//!   time per sweep (`/proc/<pid>/stat`, between sweeps, idle included);
//! - a WebSocket's welcome (which carries every server's health) from
//!   connect to the frame, and its size;
//! - `GET /api/v1/health/servers`, whole and one page of 100.

use std::fmt;
use std::time::{Duration, Instant};

use super::stats::median;
use crate::support::daemon::{metric_in, ServerEntry, TestApp};
use crate::support::ws::WsClient;

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Servers in the file.
    pub servers: usize,
    /// Of them, per cent that accept and never answer.
    pub silent_pct: usize,
    /// Of them, per cent that refuse.
    pub refused_pct: usize,
    /// `PINKPAGE_HEALTH_TIMEOUT_S`.
    pub timeout: Duration,
    /// Sweeps timed (after the first, at start).
    pub sweeps: usize,
    /// Welcomes and listings timed.
    pub requests: usize,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        servers: 1000,
        silent_pct: 10,
        refused_pct: 5,
        timeout: Duration::from_secs(2),
        sweeps: 5,
        requests: 20,
    };
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    /// Each sweep's wall time, seconds.
    pub sweep_s: Vec<f64>,
    /// The daemon's CPU time per sweep interval, ms.
    pub cpu_ms: Vec<f64>,
    /// Connect to welcome, ms.
    pub welcome_ms: Vec<f64>,
    /// The welcome frame's size, bytes.
    pub welcome_bytes: usize,
    /// `GET /api/v1/health/servers`, whole, ms.
    pub list_ms: Vec<f64>,
    /// The same with `limit=100`, ms.
    pub page_ms: Vec<f64>,
    /// The health checks the daemon planned to run at once.
    pub in_flight: u64,
    /// The same sweeps with 64 checks at once, s.
    pub sweep_64_s: Vec<f64>,
    /// Its CPU time per sweep interval, ms.
    pub cpu_64_ms: Vec<f64>,
}

/// A port that greets with a banner and hangs up, or accepts and says
/// nothing (holding the connection until the benchmark ends).
async fn banner_server(silent: bool) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut conn, _)) = listener.accept().await {
            if silent {
                held.push(conn);
            } else {
                use tokio::io::AsyncWriteExt;
                let _ = conn.write_all(b"SSH-2.0-PinkPageBench_1.0\r\n").await;
            }
        }
    });
    port
}

/// The daemon's user + system CPU time, ms.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // the fields after the command name, which is in parentheses
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks * 1000.0 / hz
}

/// `(count, sum)` of a histogram in a scrape.
fn histogram(text: &str, name: &str) -> (f64, f64) {
    let value = |suffix: &str| metric_in(text, &format!("{name}_{suffix}")).unwrap_or(0.0);
    (value("count"), value("sum"))
}

/// Each sweep's wall time (s) and the daemon's CPU time per sweep
/// interval (ms), and the checks it planned at once.
struct Sweeps {
    wall_s: Vec<f64>,
    cpu_ms: Vec<f64>,
    in_flight: u64,
}

/// A daemon checking `servers` (`(name, port)`), at most `in_flight`
/// checks at once when given.
async fn daemon(w: Workload, servers: &[(String, u16)], in_flight: Option<usize>) -> TestApp {
    let mut builder = TestApp::builder()
        .env("RUST_LOG", "warn,pinkpage::startup=info")
        .env("PINKPAGE_HEALTH_TIMEOUT_S", &w.timeout.as_secs_f64().to_string())
        // one sweep per interval, with room for a slow one
        .env(
            "PINKPAGE_HEALTH_INTERVAL_S",
            &(w.timeout.as_secs_f64() * 3.0).to_string(),
        )
        .env("PINKPAGE_HEALTH_FAILURES", "1");
    if let Some(n) = in_flight {
        builder = builder.env("PINKPAGE_HEALTH_MAX_IN_FLIGHT", &n.to_string());
    }
    for (name, port) in servers {
        builder = builder.server(ServerEntry {
            port: *port,
            ..ServerEntry::unreachable(name)
        });
    }
    builder.spawn().await
}

/// Times `w.sweeps` sweeps after the first (at start).
async fn sweeps(app: &TestApp, w: Workload) -> Sweeps {
    let scrape = || async { app.get("/metrics").await.text().await.unwrap() };
    let name = "pinkpage_health_sweep_duration_seconds";
    let mut last = loop {
        let text = scrape().await;
        if histogram(&text, name).0 >= 1.0 {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let in_flight = app
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["fields"]["health_checks"].as_u64())
        .unwrap_or(0);
    let (mut wall_s, mut cpu) = (Vec::new(), Vec::new());
    let mut cpu_before = cpu_ms(app.pid());
    while wall_s.len() < w.sweeps {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let text = scrape().await;
        let (count, sum) = histogram(&text, name);
        let (count_before, sum_before) = histogram(&last, name);
        if count > count_before {
            // two sweeps may end between two scrapes on a busy machine:
            // each is then their mean
            wall_s.push((sum - sum_before) / (count - count_before));
            let now = cpu_ms(app.pid());
            cpu.push(now - cpu_before);
            cpu_before = now;
            last = text;
        }
    }
    let up = last
        .lines()
        .filter(|l| l.starts_with("pinkpage_server_up{") && l.ends_with(" 1"))
        .count();
    assert!(up > 0, "some servers are up");
    Sweeps {
        wall_s,
        cpu_ms: cpu,
        in_flight,
    }
}

/// Runs the benchmark: the banner servers, then a daemon checking every
/// server at once (the default) and one checking 64 at once (the fixed
/// bound before, `PINKPAGE_HEALTH_MAX_IN_FLIGHT=64`), side by side.
pub async fn run(w: Workload) -> Report {
    // a listener and a connection per server in this process
    let _ = pinkpage::limits::descriptors::raise_nofile();
    let silent_every = 100 / w.silent_pct.max(1);
    let refused_every = 100 / w.refused_pct.max(1);
    let mut servers = Vec::new();
    for i in 0..w.servers {
        let port = if i % silent_every == silent_every / 2 {
            banner_server(true).await
        } else if i % refused_every == refused_every / 3 {
            1 // nothing listens on loopback port 1
        } else {
            banner_server(false).await
        };
        servers.push((format!("s{i:04}"), port));
    }

    let mut fixed = daemon(w, &servers, Some(64)).await;
    let at_64 = sweeps(&fixed, w).await;
    fixed.kill();
    drop(fixed);
    let app = daemon(w, &servers, None).await;
    let all = sweeps(&app, w).await;

    let (mut welcome_ms, mut welcome_bytes) = (Vec::new(), 0);
    for _ in 0..w.requests {
        let started = Instant::now();
        let token = app.admin_token.clone().expect("the test admin's token");
        let headers = [("authorization".to_owned(), format!("Bearer {token}"))];
        let mut ws = WsClient::open(&app, "/ws/v1/stub", &headers).await.unwrap();
        use futures_util::StreamExt;
        let frame = ws.next().await.unwrap().unwrap();
        welcome_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let text = frame.into_text().unwrap();
        assert!(
            text.contains("\"server_health\""),
            "the welcome carries the servers' health"
        );
        welcome_bytes = text.len();
    }
    let timed = async |path: &str| {
        let mut ms = Vec::new();
        for _ in 0..w.requests {
            let started = Instant::now();
            let res = app.get(path).await;
            assert_eq!(res.status(), 200);
            let body: serde_json::Value = res.json().await.unwrap();
            assert!(!body.as_array().unwrap().is_empty());
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        ms
    };
    let list_ms = timed("/api/v1/health/servers").await;
    let page_ms = timed("/api/v1/health/servers?limit=100").await;
    Report {
        workload: w,
        sweep_s: all.wall_s,
        cpu_ms: all.cpu_ms,
        in_flight: all.in_flight,
        sweep_64_s: at_64.wall_s,
        cpu_64_ms: at_64.cpu_ms,
        welcome_ms,
        welcome_bytes,
        list_ms,
        page_ms,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.workload;
        let timeout = w.timeout.as_secs_f64();
        let sweep = median(self.sweep_s.clone());
        writeln!(
            f,
            "\n## Health of {} servers ({}% silent, {}% refusing; timeout {timeout} s; {} sweeps)\n",
            w.servers, w.silent_pct, w.refused_pct, w.sweeps
        )?;
        writeln!(f, "| measure | result |\n|---|---|")?;
        writeln!(
            f,
            "| sweep wall time, median (each) | {sweep:.2} s = {:.2} x the timeout ({:.2?}) |",
            sweep / timeout,
            self.sweep_s
        )?;
        writeln!(
            f,
            "| checks in flight at once (planned at start) | {} |",
            self.in_flight
        )?;
        writeln!(
            f,
            "| daemon CPU per sweep interval, median (each) | {:.0} ms ({:.0?}) |",
            median(self.cpu_ms.clone()),
            self.cpu_ms
        )?;
        let sweep_64 = median(self.sweep_64_s.clone());
        writeln!(
            f,
            "| the same with 64 checks at once: sweep, median (each) | {sweep_64:.2} s = {:.2} x the timeout ({:.2?}) |",
            sweep_64 / timeout,
            self.sweep_64_s
        )?;
        writeln!(
            f,
            "| the same with 64 checks at once: CPU per sweep interval, median | {:.0} ms |",
            median(self.cpu_64_ms.clone())
        )?;
        writeln!(
            f,
            "| welcome (every server's health), connect to frame, median / max | {:.1} / {:.1} ms, {} bytes |",
            median(self.welcome_ms.clone()),
            self.welcome_ms.iter().cloned().fold(0.0, f64::max),
            self.welcome_bytes
        )?;
        writeln!(
            f,
            "| `GET /api/v1/health/servers`, whole, median | {:.1} ms |",
            median(self.list_ms.clone())
        )?;
        writeln!(
            f,
            "| `GET /api/v1/health/servers?limit=100`, median | {:.1} ms |",
            median(self.page_ms.clone())
        )
    }
}
