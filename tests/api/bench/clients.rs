//! The idle-clients benchmark's body: `cargo bench --bench clients` runs
//! it with [`Workload::FULL`], the suite's smoke run
//! (`bench::clients_benchmark_reports_memory_and_broadcast_spread_on_a_tiny_workload`)
//! with a tiny one.
//!
//! Many idle WebSocket clients, spread over several client processes (one
//! process's own scheduling would otherwise be most of what is measured):
//! - the daemon's resident memory per connection as clients are added
//!   (at each step of `steps`), against its memory with none;
//! - a `server_health` change (a configured server's port closes) and the
//!   moment each client received it, by the clients' own clocks
//!   (`CLOCK_REALTIME`, shared by the processes): the spread after the
//!   first client, p50 / p99 / max;
//! - the same clients against a minimal WebSocket server (tokio-tungstenite
//!   in this process, one text frame written to every socket): its spread
//!   is what the clients themselves add.
//!
//! A client process is this same executable run again with
//! `PINKPAGE_BENCH_CLIENTS` set ([`client_process`]): it opens its
//! connections, says `ready`, waits for the first frame naming
//! `server_health` on each, and prints each arrival time.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::stats::percentile;
use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::tcp::BannerListener;

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Clients in all after each step (memory is read at each).
    pub steps: [usize; 3],
    /// Client processes.
    pub processes: usize,
    /// Wait after each step before memory is read.
    pub settle: Duration,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        steps: [1_000, 5_000, 10_000],
        processes: 4,
        settle: Duration::from_secs(2),
    };
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    /// The steps as run (cut to what the descriptor limit allows).
    pub workload: Workload,
    /// The hard descriptor limit the daemon ran under.
    pub hard_nofile: u64,
    /// Daemon RSS with no client, KiB.
    pub idle_kib: u64,
    /// Daemon RSS at each step, KiB.
    pub step_kib: Vec<u64>,
    /// glibc heap in use with no client and at each step, bytes (the
    /// daemon's `pinkpage_heap_in_use_bytes`; 0 where it has none).
    pub heap_bytes: Vec<u64>,
    /// Arrival after the first client's, ms, every client: the daemon.
    pub daemon_spread_ms: Vec<f64>,
    /// The same against the minimal server.
    pub minimal_spread_ms: Vec<f64>,
}

/// The env var that makes this executable a client process.
pub const CLIENT_ENV: &str = "PINKPAGE_BENCH_CLIENTS";

/// The body of a client process: `PINKPAGE_BENCH_CLIENTS` is
/// `COUNT URL`, `PINKPAGE_BENCH_TOKEN` the bearer token (none for the
/// minimal server). Prints `ready`, then one `at <unix ns>` per client.
pub async fn client_process() {
    let spec = std::env::var(CLIENT_ENV).expect("client spec");
    let (count, url) = spec.split_once(' ').expect("COUNT URL");
    let count: usize = count.parse().unwrap();
    let token = std::env::var("PINKPAGE_BENCH_TOKEN").ok();
    // a socket per client
    let _ = pinkpage::limits::descriptors::raise_nofile();
    let arrivals = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut opened = Vec::new();
    // a few connects at a time: the daemon admits in order
    for batch in (0..count).collect::<Vec<_>>().chunks(16) {
        let mut pending = Vec::new();
        for _ in batch {
            pending.push(connect(url, token.as_deref()));
        }
        for ws in futures_util::future::join_all(pending).await {
            opened.push(ws);
        }
    }
    for mut ws in opened {
        let arrivals = arrivals.clone();
        let mut go = go_rx.clone();
        tasks.push(tokio::spawn(async move {
            // wait for the go, discarding what comes before (the welcome)
            let _ = go.wait_for(|g| *g).await;
            while let Some(Ok(msg)) = ws.next().await {
                match msg {
                    Message::Text(t) if t.contains("server_health") => {
                        let ns = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
                        arrivals.lock().unwrap().push(ns);
                        break;
                    }
                    Message::Ping(p) => {
                        let _ = ws.send(Message::Pong(p)).await;
                    }
                    _ => {}
                }
            }
            // stay connected until the process ends
            std::future::pending::<()>().await;
        }));
    }
    println!("ready");
    // the go: a line on stdin, once every process is ready (a health
    // change before it would find some clients not yet listening)
    let mut line = String::new();
    tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    let _ = go_tx.send(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while arrivals.lock().unwrap().len() < count && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for ns in arrivals.lock().unwrap().iter() {
        println!("at {ns}");
    }
    println!("done");
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, token: Option<&str>) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    if let Some(t) = token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("connect");
    // the welcome (or the minimal server's hello)
    let _ = ws.next().await;
    ws
}

/// A running client process.
struct Clients {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Clients {
    /// Starts `count` clients of `url`; returns once they are all open.
    fn start(exe: &[String], count: usize, url: &str, token: Option<&str>) -> Clients {
        let mut cmd = Command::new(&exe[0]);
        cmd.args(&exe[1..])
            .env(CLIENT_ENV, format!("{count} {url}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(t) = token {
            cmd.env("PINKPAGE_BENCH_TOKEN", t);
        }
        let mut child = cmd.spawn().expect("a client process");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("client output").unwrap();
            if line == "ready" {
                break;
            }
        }
        Clients { child, lines }
    }

    fn go(&mut self) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Arrival times, unix ns.
    fn arrivals(&mut self) -> Vec<u128> {
        let mut at = Vec::new();
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if line == "done" {
                break;
            }
            if let Some(ns) = line.strip_prefix("at ") {
                at.push(ns.parse().unwrap());
            }
        }
        at
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `count` clients over `processes` processes, blocking (client
/// processes connect while this one waits).
async fn start_clients(
    exe: &[String],
    count: usize,
    processes: usize,
    url: &str,
    token: Option<&str>,
) -> Vec<Clients> {
    let (exe, url, token) = (exe.to_vec(), url.to_owned(), token.map(str::to_owned));
    tokio::task::spawn_blocking(move || {
        let per = count.div_ceil(processes);
        let mut left = count;
        let mut all = Vec::new();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..processes)
                .map(|_| {
                    let n = per.min(left);
                    left -= n;
                    let (exe, url, token) = (&exe, &url, &token);
                    s.spawn(move || (n > 0).then(|| Clients::start(exe, n, url, token.as_deref())))
                })
                .collect();
            for h in handles {
                if let Some(c) = h.join().unwrap() {
                    all.push(c);
                }
            }
        });
        all
    })
    .await
    .unwrap()
}

/// Tells every process to listen, runs `trigger`, and returns each
/// client's arrival after the first, ms.
async fn spread(
    clients: Vec<Clients>,
    expected: usize,
    trigger: impl std::future::Future<Output = ()>,
) -> Vec<f64> {
    let mut clients = clients;
    for c in &mut clients {
        c.go();
    }
    // every process has read its go before the change (a pipe write is
    // read at once; give the readers a moment to arm)
    tokio::time::sleep(Duration::from_millis(200)).await;
    trigger.await;
    let at = tokio::task::spawn_blocking(move || {
        let mut at = Vec::new();
        for c in &mut clients {
            at.extend(c.arrivals());
        }
        at
    })
    .await
    .unwrap();
    assert_eq!(at.len(), expected, "every client got the frame");
    let first = *at.iter().min().unwrap();
    at.iter().map(|ns| (ns - first) as f64 / 1e6).collect()
}

/// A minimal WebSocket server: says hello to each client and, on
/// `broadcast`, writes one frame to all of them.
struct Minimal {
    port: u16,
    senders: Arc<Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Arc<str>>>>>,
}

impl Minimal {
    async fn start() -> Minimal {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let senders: Arc<Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Arc<str>>>>> = Arc::default();
        let registry = senders.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let registry = registry.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Arc<str>>();
                    registry.lock().unwrap().push(tx);
                    let _ = ws.send(Message::text("{\"type\":\"welcome\"}")).await;
                    loop {
                        tokio::select! {
                            frame = rx.recv() => match frame {
                                Some(text) => { let _ = ws.send(Message::text(&*text)).await; }
                                None => break,
                            },
                            msg = ws.next() => if msg.is_none() { break },
                        }
                    }
                });
            }
        });
        Minimal { port, senders }
    }

    fn broadcast(&self, text: &str) {
        let frame: Arc<str> = text.into();
        for tx in self.senders.lock().unwrap().iter() {
            let _ = tx.send(frame.clone());
        }
    }
}

/// Runs the benchmark. `exe` is how to run this executable as a client
/// process (`CLIENT_ENV` is added).
pub async fn run(mut w: Workload, exe: &[String]) -> Report {
    // The daemon takes two descriptors a WebSocket and keeps a third of
    // what is left after its reserve for them (src/limits/descriptors.rs);
    // where the hard limit cannot be raised (no CAP_SYS_RESOURCE), the
    // steps stop at what the limit allows, and the report says so.
    // soft to hard, which the daemon and the client processes inherit
    let hard = pinkpage::limits::descriptors::raise_nofile()
        .map(|n| n.hard)
        .expect("read the descriptor limit");
    let fits = (hard.saturating_sub(256) / 3) as usize;
    for step in w.steps.iter_mut() {
        *step = (*step).min(fits.saturating_sub(16));
    }
    let flip = BannerListener::start().await;
    let total = w.steps[2];
    let app = TestApp::builder()
        .server(ServerEntry {
            port: flip.port,
            ..ServerEntry::unreachable("flip")
        })
        .env("RUST_LOG", "warn,pinkpage::startup=info")
        .env("PINKPAGE_HEALTH_INTERVAL_S", "0.2")
        .env("PINKPAGE_HEALTH_TIMEOUT_S", "0.5")
        .env("PINKPAGE_HEALTH_FAILURES", "1")
        // the benchmark's one user holds every connection (WAVE2: the
        // per-user cap raised in a benchmark's configuration)
        .env("PINKPAGE_WS_MAX_CONNECTIONS", &(total + 100).to_string())
        .env("PINKPAGE_WS_MAX_CONNECTIONS_PER_USER", &(total + 100).to_string())
        .env("PINKPAGE_MAX_PENDING_PER_ADDRESS", "1000")
        .spawn()
        .await;
    let token = app.admin_token.clone().expect("the test admin's token");
    let url = app.ws_url("/ws/v1/stub");
    // the server up before any client, so the only change is ours
    let up = async || {
        let body: serde_json::Value = app.get("/api/v1/health/servers/flip").await.json().await.unwrap();
        body["is_healthy"] == true
    };
    while !up().await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let idle_kib = app.rss_kib();
    let heap = async || {
        app.metric("pinkpage_heap_in_use_bytes")
            .await
            .map_or(0, |v| v as u64)
    };
    let mut heap_bytes = vec![heap().await];
    let mut clients = Vec::new();
    let mut step_kib = Vec::new();
    let mut so_far = 0;
    for &step in &w.steps {
        let more = start_clients(exe, step - so_far, w.processes, &url, Some(&token)).await;
        clients.extend(more);
        so_far = step;
        // let the last welcomes' buffers settle
        tokio::time::sleep(w.settle).await;
        step_kib.push(app.rss_kib());
        heap_bytes.push(heap().await);
    }
    let daemon_spread_ms = spread(clients, total, async {
        flip.stop().await;
    })
    .await;
    drop(app);

    let minimal = Minimal::start().await;
    let murl = format!("ws://127.0.0.1:{}/", minimal.port);
    let mclients = start_clients(exe, total, w.processes, &murl, None).await;
    let minimal_spread_ms = spread(mclients, total, async {
        minimal.broadcast("{\"type\":\"server_health\",\"server_name\":\"flip\",\"is_healthy\":false}");
    })
    .await;
    Report {
        workload: w,
        hard_nofile: hard,
        idle_kib,
        step_kib,
        heap_bytes,
        daemon_spread_ms,
        minimal_spread_ms,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.workload;
        writeln!(
            f,
            "\n## Idle clients ({} client processes; one user, per-user cap raised; hard descriptor limit {})\n",
            w.processes, self.hard_nofile
        )?;
        writeln!(
            f,
            "| clients | daemon RSS | per connection | heap in use | of it, per connection |\n|---|---|---|---|---|"
        )?;
        let heap0 = self.heap_bytes.first().copied().unwrap_or(0);
        writeln!(
            f,
            "| 0 | {:.1} MiB | | {:.1} MiB | |",
            self.idle_kib as f64 / 1024.0,
            heap0 as f64 / 1048576.0
        )?;
        for (i, (n, kib)) in w.steps.iter().zip(&self.step_kib).enumerate() {
            let heap = self.heap_bytes.get(i + 1).copied().unwrap_or(0);
            writeln!(
                f,
                "| {n} | {:.1} MiB | {:.1} KB | {:.1} MiB | {:.1} KB |",
                *kib as f64 / 1024.0,
                (kib.saturating_sub(self.idle_kib)) as f64 * 1.024 / *n as f64,
                heap as f64 / 1048576.0,
                heap.saturating_sub(heap0) as f64 / 1000.0 / *n as f64
            )?;
        }
        writeln!(
            f,
            "\n| broadcast to {} clients, after the first | p50 | p99 | max |\n|---|---|---|---|",
            w.steps[2]
        )?;
        for (who, v) in [
            ("the daemon (`server_health`)", &self.daemon_spread_ms),
            (
                "a minimal WebSocket server (same clients)",
                &self.minimal_spread_ms,
            ),
        ] {
            writeln!(
                f,
                "| {who} | {:.1} ms | {:.1} ms | {:.1} ms |",
                percentile(v.clone(), 0.5),
                percentile(v.clone(), 0.99),
                v.iter().cloned().fold(0.0, f64::max)
            )?;
        }
        Ok(())
    }
}
