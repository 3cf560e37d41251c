//! The slow-client memory benchmark (issue 11): the ignored test
//! [`benchmark_daemon_memory_with_slow_clients_of_fast_printing_scripts`]
//! runs it with [`Workload::FULL`], the suite's smoke run
//! (`bench::bmx5_benchmark_measures_memory_under_slow_clients_on_a_tiny_workload`)
//! with a tiny one.
//!
//! Daemon memory with several counts of WebSocket clients that never read
//! while each runs a command that prints as fast as it can.

use std::fmt;
use std::time::Duration;

use serde_json::json;

use crate::support::fixtures::app_with_server;
use crate::support::ws::WsClient;

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Counts of slow clients, each measured on a fresh daemon and sshd.
    pub clients: &'static [usize],
    /// How long nobody reads before memory is read.
    pub soak: Duration,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        clients: &[1, 10, 100],
        soak: Duration::from_secs(5),
    };
}

/// The bound the benchmark asserts: peak RSS at most the idle size plus
/// this (the first SSH sessions, allocator arenas) ...
const FIXED_KIB: u64 = 16 * 1024;
/// ... plus this per slow client.
const PER_CLIENT_KIB: u64 = 1024;

/// One count of slow clients.
#[derive(Debug)]
pub struct Row {
    pub clients: usize,
    /// `VmRSS` before any client, KiB.
    pub idle_kib: u64,
    /// `VmRSS` after the soak, KiB.
    pub rss_kib: u64,
    /// `VmHWM` after the soak, KiB.
    pub peak_kib: u64,
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    /// One row per count of clients, in the workload's order.
    pub rows: Vec<Row>,
}

/// For each count N: a fresh daemon, N BMX5 clients each running `yes` as
/// a script with `throttle_ms: 0` and then reading nothing. After every
/// script has started, the clients are left unread for the soak (a timed
/// wait on purpose: there is no event for "the buffers are full"), then
/// the daemon's RSS and peak RSS are read. Asserts the bound of
/// docs/benchmarks.md: peak RSS at most idle + 16 MiB + 1 MiB per client.
pub async fn run(w: Workload) -> Report {
    let mut rows = Vec::new();
    for &n in w.clients {
        let (app, sshd) = app_with_server("mdwap1p").await;
        let idle_kib = app.rss_kib();
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            let mut c = WsClient::connect(&app, "/ws/v1/bmx5").await;
            c.send(
                json!({"type": "script_execute", "server": "mdwap1p", "throttle_ms": 0,
                "script": "#!/bin/sh\nexec yes pinkpage-slow-client-benchmark\n"}),
            )
            .await;
            c.recv_until("script_started").await;
            clients.push(c);
        }
        tokio::time::sleep(w.soak).await;
        let (rss_kib, peak_kib) = (app.rss_kib(), app.peak_rss_kib());
        let bound = idle_kib + FIXED_KIB + n as u64 * PER_CLIENT_KIB;
        assert!(
            peak_kib <= bound,
            "{n} slow clients: peak {peak_kib} KiB over the bound {bound} KiB"
        );
        rows.push(Row {
            clients: n,
            idle_kib,
            rss_kib,
            peak_kib,
        });
        drop(clients);
        drop(app);
        drop(sshd);
    }
    Report { workload: w, rows }
}

/// The markdown of docs/benchmarks.md.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "| slow clients | idle RSS | RSS after {:?} | peak RSS | peak above idle, per client |",
            self.workload.soak
        )?;
        writeln!(f, "|---|---|---|---|---|")?;
        for r in &self.rows {
            writeln!(
                f,
                "| {} | {} MiB | {} MiB | {} MiB | {} KiB |",
                r.clients,
                r.idle_kib / 1024,
                r.rss_kib / 1024,
                r.peak_kib / 1024,
                r.peak_kib.saturating_sub(r.idle_kib) / r.clients as u64
            )?;
        }
        Ok(())
    }
}

/// The full benchmark of docs/benchmarks.md (1, 10 and 100 slow clients,
/// 5 s unread), ignored in the suite:
///
/// `cargo test --release --test api bmx5::benchmark -- --ignored --nocapture`
#[tokio::test]
#[ignore = "benchmark; run by hand (see docs/benchmarks.md)"]
async fn benchmark_daemon_memory_with_slow_clients_of_fast_printing_scripts() {
    print!("{}", run(Workload::FULL).await);
}
