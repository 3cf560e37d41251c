//! The operator terminals' benchmark body (issue 25): `cargo bench --bench
//! terminals` runs it with [`Workload::FULL`], the suite's smoke run
//! (`bench::terminals_benchmark_reports_load_echo_memory_and_resume_on_a_tiny_workload`)
//! with a tiny one.
//!
//! In one run against one daemon and one harness sshd:
//! - (a) keystroke echo in a terminal with nothing else running: one
//!   character in `terminal_input` to its echo in `terminal_output`
//!   (`stty -icanon` on the remote side, so the PTY echoes each key);
//! - (b) `terminals` terminals each printing `rate_kb_s` (a `perl` loop:
//!   10 KB lines, 100 ms apart), read by `connections` clients that
//!   discard what they read; meanwhile the daemon's CPU (utime + stime over
//!   the soak) and RSS, and the same echo as (a) in one more terminal;
//! - (c) memory per idle detached terminal with a full ring: `detached`
//!   terminals print 2.5 MB at once and are left (the socket dropped);
//!   once their rings are full and their programs paused, the daemon's RSS
//!   above what it was before they opened, per terminal;
//! - (d) resume latency: `terminal_attach` of each of those with all of its
//!   scrollback (the ring's 1 MiB) to the first missed byte, and to the
//!   last.
//!
//! The configuration raises the limits the load needs, and says so in the
//! table: `PINKPAGE_TERMINALS_PER_USER` and `PINKPAGE_TERMINALS_MAX` (one
//! user opens them all), `PINKPAGE_SSH_MAX_SESSIONS_PER_SERVER` (each
//! terminal has its own session), and a long idle time. The harness sshd
//! needs nothing raised: terminals are opened one after another, so its
//! `MaxStartups` (unauthenticated connections) is never reached, and each
//! terminal is its own connection, so `MaxSessions` (per connection) is 1.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::stats::{median, percentile};
use crate::support::daemon::TestApp;
use crate::support::fixtures::with_servers;
use crate::support::ws::WsClient;

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Terminals printing at once.
    pub terminals: usize,
    /// What each prints, KB/s.
    pub rate_kb_s: usize,
    /// Client connections the printing terminals are spread over.
    pub connections: usize,
    /// How long the printers run before the measuring starts.
    pub settle: Duration,
    /// How long the load runs while it is measured.
    pub soak: Duration,
    /// Keystrokes timed, with and without the load.
    pub keystrokes: usize,
    /// Detached terminals whose memory and resume are measured.
    pub detached: usize,
    /// Each terminal's ring (`PINKPAGE_TERMINAL_SCROLLBACK_BYTES`).
    pub ring_bytes: usize,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        terminals: 200,
        rate_kb_s: 100,
        connections: 20,
        settle: Duration::from_secs(2),
        soak: Duration::from_secs(20),
        keystrokes: 100,
        detached: 20,
        ring_bytes: 1 << 20,
    };
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    /// Echo with nothing else running, ms.
    pub echo_idle_ms: Vec<f64>,
    /// Echo while the terminals print, ms.
    pub echo_loaded_ms: Vec<f64>,
    /// The daemon's CPU over the soak, % of one core.
    pub cpu_percent: f64,
    /// Output the clients received over the soak, MB/s.
    pub received_mb_s: f64,
    /// The daemon's RSS before the terminals opened and at the end of
    /// the soak, KiB.
    pub rss_kib: (u64, u64),
    /// RSS above the baseline per idle detached terminal with a full
    /// ring, KiB.
    pub detached_kib_each: f64,
    /// Attach to the first missed byte, ms, one per detached terminal.
    pub resume_first_ms: Vec<f64>,
    /// Attach to the last byte of the scrollback, ms.
    pub resume_all_ms: Vec<f64>,
}

/// The daemon's CPU time so far (utime + stime), in seconds.
fn cpu_seconds(app: &TestApp) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", app.pid())).expect("daemon stat");
    // the fields after the command name's closing parenthesis
    let after = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

pub(super) async fn open(ws: &mut WsClient, command: &str) -> String {
    let reply = ws
        .ask(
            json!({"type": "terminal_open", "server": "alpha", "command": command}),
            "terminal_opened",
        )
        .await;
    assert_eq!(reply["type"], "terminal_opened", "{reply}");
    reply["terminal_id"].as_str().unwrap().to_owned()
}

/// Output of terminal `id` until `needle` appears (other frames skipped).
pub(super) async fn until_output(ws: &mut WsClient, id: &str, needle: &str) {
    let mut seen = String::new();
    loop {
        let f = ws.recv().await;
        if f["type"] == "terminal_output" && f["terminal_id"] == id {
            seen.push_str(f["data"].as_str().unwrap());
            if seen.contains(needle) {
                return;
            }
        }
        assert_ne!(f["type"], "error", "{f}");
        assert_ne!(f["type"], "terminal_closed", "{f}");
    }
}

/// `count` keystrokes 150 ms apart (a fast typist) into an echoing
/// terminal: each one's round trip, ms.
pub(super) async fn echoes(ws: &mut WsClient, id: &str, count: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let key = ["a", "b", "c", "d"][i % 4];
        let start = Instant::now();
        ws.send(json!({"type": "terminal_input", "terminal_id": id, "data": key}))
            .await;
        until_output(ws, id, key).await;
        out.push(start.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    out
}

/// A terminal whose PTY echoes each key at once.
pub(super) async fn echo_terminal(app: &TestApp) -> (WsClient, String) {
    let mut ws = WsClient::connect(app, "/ws/v1/terminal").await;
    let id = open(&mut ws, "stty -icanon; echo echo-rea''dy; cat >/dev/null").await;
    until_output(&mut ws, &id, "echo-ready").await;
    (ws, id)
}

/// Runs the benchmark.
pub async fn run(w: Workload) -> Report {
    let (builder, [_sshd]) = with_servers(["alpha"]);
    let most = (w.terminals + w.detached + 8).to_string();
    let app = builder
        .env("PINKPAGE_TERMINALS_PER_USER", &most)
        .env("PINKPAGE_TERMINALS_MAX", &most)
        .env("PINKPAGE_SSH_MAX_SESSIONS_PER_SERVER", &most)
        .env("PINKPAGE_TERMINAL_IDLE_S", "3600")
        .env("PINKPAGE_TERMINAL_SCROLLBACK_BYTES", &w.ring_bytes.to_string())
        // the harness logs at debug, which for russh is a line per packet:
        // at 20 MB/s the log, not the terminals, would be measured
        .env("RUST_LOG", "info,russh=warn")
        .spawn()
        .await;

    // (a) echo with nothing else running
    let (mut echo_ws, echo_id) = echo_terminal(&app).await;
    echoes(&mut echo_ws, &echo_id, 3).await; // warm-up
    let echo_idle_ms = echoes(&mut echo_ws, &echo_id, w.keystrokes).await;
    echo_ws
        .ask(
            json!({"type": "terminal_close", "terminal_id": echo_id}),
            "terminal_closed",
        )
        .await;
    drop(echo_ws);

    // (c) idle detached terminals with full rings
    eprintln!(
        "terminals bench: echo alone measured; filling {} detached rings",
        w.detached
    );
    // measured on the fresh daemon, before the load allocated anything
    let rss_quiet = app.rss_kib();
    let mut admin = WsClient::connect(&app, "/ws/v1/terminal").await;
    let filler = "perl -e '$|=1; print q(y) x 2500000; sleep 100000'";
    let mut fill_ws = WsClient::connect(&app, "/ws/v1/terminal").await;
    let mut ids = Vec::new();
    for _ in 0..w.detached {
        ids.push(open(&mut fill_ws, filler).await);
    }
    drop(fill_ws);
    let full = |list: &Value| {
        list["terminals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["bytes"].as_u64().unwrap_or(0) >= w.ring_bytes as u64)
            .count()
    };
    // full, then paused: the count of bytes stops moving
    let mut last = Value::Null;
    loop {
        let list = admin.ask(json!({"type": "terminal_list"}), "terminal_list").await;
        let bytes: Vec<Value> = list["terminals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["bytes"].clone())
            .collect();
        if full(&list) == w.detached && Value::from(bytes.clone()) == last {
            break;
        }
        last = Value::from(bytes);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rss_detached = app.rss_kib();
    let detached_kib_each = (rss_detached as f64 - rss_quiet as f64) / w.detached as f64;

    drop(admin);

    // (d) resume: all of each ring
    let mut resume_first_ms = Vec::new();
    let mut resume_all_ms = Vec::new();
    for id in &ids {
        let mut ws = WsClient::connect(&app, "/ws/v1/terminal").await;
        let start = Instant::now();
        ws.send(json!({"type": "terminal_attach", "terminal_id": id}))
            .await;
        let attached = loop {
            let f = ws.recv().await;
            if f["type"] == "terminal_attached" {
                break f;
            }
        };
        let want = attached["end"].as_u64().unwrap() - attached["from"].as_u64().unwrap();
        let mut got = 0;
        let mut first = None;
        while got < want {
            let f = ws.recv().await;
            if f["type"] == "terminal_output" {
                first.get_or_insert_with(|| start.elapsed());
                got += f["data"].as_str().unwrap().len() as u64;
            }
        }
        resume_first_ms.push(first.unwrap().as_secs_f64() * 1e3);
        resume_all_ms.push(start.elapsed().as_secs_f64() * 1e3);
        ws.ask(
            json!({"type": "terminal_close", "terminal_id": id}),
            "terminal_closed",
        )
        .await;
    }

    // (b) the load
    eprintln!(
        "terminals bench: detached rings and resume measured; opening {} printers",
        w.terminals
    );
    let line = w.rate_kb_s * 100; // bytes per 100 ms
    let printer = format!(
        "perl -e '$|=1; $l = (q(x) x {}) . qq(\\n); while (1) {{ print $l; select(undef, undef, undef, 0.1) }}'",
        line - 1
    );
    let per = w.terminals.div_ceil(w.connections);
    let received = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rss_before = app.rss_kib();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    let mut opened = 0;
    for _ in 0..w.connections {
        let n = per.min(w.terminals - opened);
        if n == 0 {
            break;
        }
        let mut ws = WsClient::connect(&app, "/ws/v1/terminal").await;
        for _ in 0..n {
            open(&mut ws, &printer).await;
        }
        opened += n;
        let received = received.clone();
        let mut stop = stop_rx.clone();
        readers.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => return ws,
                    f = ws.try_recv(Duration::from_secs(5)) => {
                        let Some(f) = f else { return ws };
                        if f["type"] == "terminal_output" {
                            let n = f["data"].as_str().map_or(0, str::len) as u64;
                            received.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            }
        }));
    }
    // let every printer start before measuring; the echo terminal opens
    // now (a client that reads nothing for the heartbeat timeout while
    // the printers open would be dropped)
    tokio::time::sleep(w.settle).await;
    let (mut echo_ws, echo_id) = echo_terminal(&app).await;
    let cpu0 = cpu_seconds(&app);
    let bytes0 = received.load(std::sync::atomic::Ordering::Relaxed);
    let t0 = Instant::now();
    let echo_loaded_ms = echoes(&mut echo_ws, &echo_id, w.keystrokes).await;
    let left = w.soak.saturating_sub(t0.elapsed());
    tokio::time::sleep(left).await;
    let wall = t0.elapsed().as_secs_f64();
    let cpu_percent = (cpu_seconds(&app) - cpu0) / wall * 100.0;
    let received_mb_s = (received.load(std::sync::atomic::Ordering::Relaxed) - bytes0) as f64 / wall / 1e6;
    let rss_loaded = app.rss_kib();
    let _ = stop_tx.send(true);
    for r in readers {
        if let Ok(ws) = r.await {
            // closing the clients leaves the terminals detached: close them
            drop(ws);
        }
    }
    drop(echo_ws);

    Report {
        workload: w,
        echo_idle_ms,
        echo_loaded_ms,
        cpu_percent,
        received_mb_s,
        rss_kib: (rss_before, rss_loaded),
        detached_kib_each,
        resume_first_ms,
        resume_all_ms,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = &self.workload;
        let p = |v: &[f64], q: f64| percentile(v.to_vec(), q);
        writeln!(
            f,
            "## Operator terminals ({} terminals x {} KB/s over {} connections, {:?} soak; {} keystrokes 150 ms apart; {} detached with a {} KiB ring)",
            w.terminals,
            w.rate_kb_s,
            w.connections,
            w.soak,
            w.keystrokes,
            w.detached,
            w.ring_bytes / 1024
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "Raised for the run: PINKPAGE_TERMINALS_PER_USER, PINKPAGE_TERMINALS_MAX and PINKPAGE_SSH_MAX_SESSIONS_PER_SERVER to {}; PINKPAGE_TERMINAL_IDLE_S 3600. sshd: defaults.",
            w.terminals + w.detached + 8
        )?;
        writeln!(f)?;
        writeln!(f, "| what | result |")?;
        writeln!(f, "|---|---|")?;
        writeln!(
            f,
            "| keystroke echo, no load, p50 / p99 | {:.2} ms / {:.2} ms |",
            p(&self.echo_idle_ms, 0.5),
            p(&self.echo_idle_ms, 0.99)
        )?;
        writeln!(
            f,
            "| keystroke echo under the load, p50 / p99 | {:.2} ms / {:.2} ms |",
            p(&self.echo_loaded_ms, 0.5),
            p(&self.echo_loaded_ms, 0.99)
        )?;
        writeln!(
            f,
            "| daemon CPU under the load | {:.0}% of one core |",
            self.cpu_percent
        )?;
        writeln!(
            f,
            "| output delivered to the clients | {:.1} MB/s (offered {:.1} MB/s) |",
            self.received_mb_s,
            (w.terminals * w.rate_kb_s) as f64 / 1e3
        )?;
        writeln!(
            f,
            "| daemon RSS before / under the load | {} MiB / {} MiB |",
            self.rss_kib.0 / 1024,
            self.rss_kib.1 / 1024
        )?;
        writeln!(
            f,
            "| RSS per idle detached terminal with a full ring | {:.0} KiB |",
            self.detached_kib_each
        )?;
        writeln!(
            f,
            "| resume, attach to the first missed byte, median / max | {:.2} ms / {:.2} ms |",
            median(self.resume_first_ms.clone()),
            p(&self.resume_first_ms, 1.0)
        )?;
        writeln!(
            f,
            "| resume, attach to the last byte of the ring, median / max | {:.2} ms / {:.2} ms |",
            median(self.resume_all_ms.clone()),
            p(&self.resume_all_ms, 1.0)
        )
    }
}
