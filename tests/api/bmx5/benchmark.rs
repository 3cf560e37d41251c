//! The slow-client memory benchmark (issue 11; ignored in the suite, run
//! it by name): daemon memory with 1, 10 and 100 WebSocket clients that
//! never read while each runs a command that prints as fast as it can.

use std::time::Duration;

use super::*;

/// Resident and peak resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("daemon status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// For each N in 1, 10, 100: a fresh daemon, N BMX5 clients each running
/// `yes` as a script with `throttle_ms: 0` and then reading nothing.
/// After every script has started, the clients are left unread for
/// `SOAK` (a soak, so a timed wait on purpose: there is no event for
/// "the buffers are full"), then the daemon's RSS and peak RSS are read.
/// Prints the table of docs/benchmarks.md and asserts the bound stated
/// there: peak RSS at most the idle size plus 16 MiB (the first SSH
/// sessions, allocator arenas) plus 1 MiB per slow client.
///
/// `cargo test --release --test api bmx5::benchmark -- --ignored --nocapture`
#[tokio::test]
#[ignore = "benchmark; run by hand (see docs/benchmarks.md)"]
async fn benchmark_daemon_memory_with_slow_clients_of_fast_printing_scripts() {
    const SOAK: Duration = Duration::from_secs(5);
    const FIXED_KIB: u64 = 16 * 1024;
    const PER_CLIENT_KIB: u64 = 1024;
    println!("| slow clients | idle RSS | RSS after {SOAK:?} | peak RSS | peak above idle, per client |");
    println!("|---|---|---|---|---|");
    for n in [1usize, 10, 100] {
        let (app, sshd) = app_with_server("mdwap1p").await;
        let (idle, _) = rss_kib(app.pid());
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            let mut c = bmx5(&app).await;
            c.send(
                json!({"type": "script_execute", "server": "mdwap1p", "throttle_ms": 0,
                "script": "#!/bin/sh\nexec yes pinkpage-slow-client-benchmark\n"}),
            )
            .await;
            c.recv_until("script_started").await;
            clients.push(c);
        }
        tokio::time::sleep(SOAK).await;
        let (rss, peak) = rss_kib(app.pid());
        let per_client = peak.saturating_sub(idle) / n as u64;
        println!(
            "| {n} | {} MiB | {} MiB | {} MiB | {per_client} KiB |",
            idle / 1024,
            rss / 1024,
            peak / 1024
        );
        let bound = idle + FIXED_KIB + n as u64 * PER_CLIENT_KIB;
        assert!(
            peak <= bound,
            "{n} slow clients: peak {peak} KiB over the bound {bound} KiB"
        );
        drop(clients);
        drop(app);
        drop(sshd);
    }
}
