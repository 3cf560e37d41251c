//! Every benchmark of docs/benchmarks.md, run in the suite with a tiny
//! workload, so a benchmark that no longer runs fails CI instead of
//! waiting for the next person who measures.
//!
//! Each benchmark's body is a function taking its workload, in a file
//! here, with the full workload as `Workload::FULL`: `cargo bench --bench
//! <name>` (`benches/<name>.rs`, a thin `main` that includes
//! [`crate::support`] and the file by path) and the ignored tests
//! `bench::bmx4::benchmark_*` and `bench::bmx5::benchmark_*` run that;
//! the tests below run the same code, in the test profile, in a few
//! seconds each, and check that it produced its figures. Figures from a
//! debug build on a busy machine mean nothing, so nothing here compares
//! them. The transfer benchmark is a script (`scripts/bench-transfers.sh`);
//! its smoke run calls the script with the test profile's daemon.

mod audit;
mod bmx4;
mod bmx5;
mod clients;
mod health;
mod identity;
mod memory;
mod peer;
mod policy;
mod recordings;
mod stats;
mod stores;
mod terminal;
mod terminals;
mod transfers;
mod workflows;

use std::time::Duration;

/// Asserts that `figures` holds `count` positive, finite numbers.
fn assert_figures(what: &str, figures: &[f64], count: usize) {
    assert_eq!(figures.len(), count, "{what}: {figures:?}");
    assert!(
        figures.iter().all(|x| x.is_finite() && *x > 0.0),
        "{what}: {figures:?}"
    );
}

/// Asserts that the printed table has a line starting with `start`.
fn assert_table_line(table: &str, start: &str) {
    assert!(
        table.lines().any(|l| l.starts_with(start)),
        "no line starting {start:?} in\n{table}"
    );
}

#[test]
fn stores_benchmark_compares_sqlite_and_postgres_appends_on_a_tiny_workload() {
    let w = stores::Workload {
        rows: 300,
        ..stores::Workload::FULL
    };
    let report = stores::run(w);
    for (what, figures) in [
        ("SQLite", &report.sqlite_rps),
        ("PostgreSQL", &report.postgres_rps),
        ("three PostgreSQL instances", &report.three_instances_rps),
    ] {
        assert_figures(&format!("{what}, one row"), &figures[0], w.rounds);
        assert_figures(&format!("{what}, 256 rows"), &figures[1], w.rounds);
    }
    let table = report.to_string();
    assert_table_line(&table, "## Audit appends by store (300 rows");
    assert_table_line(&table, "| 1 row a transaction | ");
    assert_table_line(&table, "| 256 rows a transaction | ");
}

#[test]
fn audit_benchmark_compares_chained_and_plain_appends_on_a_tiny_workload() {
    let w = audit::Workload {
        rows: 300,
        ..audit::Workload::FULL
    };
    let report = audit::run(w);
    assert_figures("chained, one row a transaction", &report.chained_rps[0], 3);
    assert_figures("chained, 256 rows a transaction", &report.chained_rps[1], 3);
    assert_figures("plain, one row a transaction", &report.plain_rps[0], 3);
    assert_figures("plain, 256 rows a transaction", &report.plain_rps[1], 3);
    let table = report.to_string();
    assert_table_line(
        &table,
        "## Audit rows (300 rows a way and batch size, median of 3)",
    );
    assert_table_line(&table, "| 1 row a transaction | ");
    assert_table_line(&table, "| 256 rows a transaction | ");
}

#[tokio::test]
async fn clients_benchmark_reports_memory_and_broadcast_spread_on_a_tiny_workload() {
    let w = clients::Workload {
        steps: [4, 10, 20],
        settle: Duration::from_millis(100),
        ..clients::Workload::FULL
    };
    // a client process is this test binary running the test below
    let exe = [
        std::env::current_exe().unwrap().display().to_string(),
        "bench::clients_benchmark_client_process".to_owned(),
        "--exact".to_owned(),
        "--ignored".to_owned(),
        "--nocapture".to_owned(),
    ];
    let report = clients::run(w, &exe).await;
    assert_eq!(report.step_kib.len(), 3);
    assert!(report.idle_kib > 0 && report.step_kib.iter().all(|k| *k > 0));
    // every client heard each broadcast: 20 arrivals, the first at 0
    assert_eq!(report.daemon_spread_ms.len(), 20);
    assert_eq!(report.minimal_spread_ms.len(), 20);
    for v in report.daemon_spread_ms.iter().chain(&report.minimal_spread_ms) {
        assert!(v.is_finite() && *v >= 0.0, "{report:?}");
    }
    let table = report.to_string();
    assert_table_line(&table, "## Idle clients (4 client processes");
    assert_table_line(&table, "| 20 | ");
    assert_table_line(&table, "| the daemon (`server_health`) | ");
    assert_table_line(&table, "| a minimal WebSocket server (same clients) | ");
}

/// The client process of the test above (and only that: without its
/// environment it does nothing).
#[tokio::test]
#[ignore = "a client process of clients_benchmark_reports_memory_and_broadcast_spread_on_a_tiny_workload"]
async fn clients_benchmark_client_process() {
    if std::env::var_os(clients::CLIENT_ENV).is_some() {
        clients::client_process().await;
    }
}

#[tokio::test]
async fn health_benchmark_times_sweeps_welcomes_and_listings_on_a_tiny_workload() {
    let w = health::Workload {
        servers: 80,
        timeout: Duration::from_millis(200),
        sweeps: 2,
        requests: 3,
        ..health::Workload::FULL
    };
    let report = health::run(w).await;
    assert_figures("sweep wall time, s", &report.sweep_s, 2);
    assert_figures("sweep wall time at 64, s", &report.sweep_64_s, 2);
    assert_eq!(report.cpu_ms.len(), 2);
    assert_figures("welcome, ms", &report.welcome_ms, 3);
    assert_figures("whole listing, ms", &report.list_ms, 3);
    assert_figures("one page, ms", &report.page_ms, 3);
    // every server at once: more than the 64 of before
    assert_eq!(report.in_flight, 80, "{report:?}");
    let table = report.to_string();
    assert_table_line(&table, "## Health of 80 servers");
    assert_table_line(&table, "| sweep wall time, median (each) | ");
    assert_table_line(&table, "| the same with 64 checks at once: sweep");
    assert_table_line(&table, "| welcome (every server's health)");
}

#[tokio::test]
async fn memory_benchmark_reports_idle_burst_and_after_per_allocator_on_a_tiny_workload() {
    let w = memory::Workload {
        bytes: 200_000,
        settle: Duration::from_millis(100),
        ..memory::Workload::FULL
    };
    let report = memory::run(w).await;
    assert_eq!(report.sides.len(), 6);
    // glibc, every way, always runs, and the daemon reports its heap
    for side in &report.sides[..4] {
        let x = side.figures.expect("glibc always runs");
        assert!(x.fresh > 0 && x.peak > 0 && x.after > 0, "{report:?}");
        assert!(x.heap.is_some_and(|(used, _)| used > 0), "{report:?}");
    }
    let table = report.to_string();
    assert_table_line(&table, "## Memory after a burst (0 MB through a STUB command");
    assert_table_line(
        &table,
        "| glibc, one arena a core, trimmed every 10 s (shipped) | ",
    );
    assert_table_line(&table, "| mimalloc (LD_PRELOAD) | ");
}

#[tokio::test]
async fn peer_benchmark_measures_the_daemon_and_webssh_side_by_side_on_a_tiny_workload() {
    let mut w = peer::Workload::FULL;
    (w.keystrokes, w.gaps) = (3, [Duration::from_millis(20), Duration::from_millis(50)]);
    (w.bytes, w.runs, w.settle) = (100_000, 2, Duration::from_millis(100));
    (w.stall_bytes, w.stall) = (2_000_000, Duration::from_millis(500));
    let report = peer::run(w).await;
    for (who, side) in [("daemon", &report.daemon), ("webssh", &report.webssh)] {
        assert_figures(&format!("{who}: echo 20 ms apart, ms"), &side.echo_ms[0], 3);
        assert_figures(&format!("{who}: echo 50 ms apart, ms"), &side.echo_ms[1], 3);
        assert_figures(&format!("{who}: output, MB/s"), &side.output_mb_s, 2);
        let rss = [
            side.idle_kib,
            side.output_peak_kib,
            side.after_kib,
            side.stalled_kib,
            side.stalled_peak_kib,
        ];
        assert_figures(&format!("{who}: RSS, KiB"), &rss.map(|k| k as f64), 5);
    }
    let table = report.to_string();
    assert_table_line(&table, "## Peer: webssh ");
    assert_table_line(&table, "| keystroke echo, 20 ms apart, p50 / p90 | ");
    assert_table_line(&table, "| keystroke echo, 50 ms apart, p50 / p90 | ");
    assert_table_line(&table, "| output to the client, median (runs) | ");
    assert_table_line(&table, "| RSS peak during the output | ");
    assert_table_line(&table, "| RSS 500ms after a client stopped reading | ");
}

#[tokio::test]
async fn terminal_benchmark_reports_throughput_and_echo_on_a_tiny_workload() {
    let w = terminal::Workload {
        bytes: 1_000_000,
        runs: 2,
        keystrokes: 3,
        ..terminal::Workload::FULL
    };
    let report = terminal::run(w).await;
    assert_figures("through the daemon, MB/s", &report.daemon_mb_s, 2);
    assert_figures("ssh -tt, MB/s", &report.openssh_mb_s, 2);
    assert_figures("echo through the daemon, ms", &report.echo_daemon_ms, 3);
    assert_figures("echo with russh, ms", &report.echo_russh_ms, 3);
    let table = report.to_string();
    assert_table_line(
        &table,
        "## Terminal (1 MB of text on a PTY, median of 2; 3 keystrokes 150 ms apart)",
    );
    assert_table_line(&table, "| PTY output through the daemon to a WebSocket client | ");
    assert_table_line(&table, "| added by the daemon, p50 / p99 | ");
}

#[tokio::test]
async fn terminals_benchmark_reports_load_echo_memory_and_resume_on_a_tiny_workload() {
    let w = terminals::Workload {
        terminals: 3,
        connections: 2,
        settle: Duration::from_millis(200),
        soak: Duration::from_secs(1),
        keystrokes: 3,
        detached: 2,
        ring_bytes: 65536,
        ..terminals::Workload::FULL
    };
    let report = terminals::run(w).await;
    assert_figures("echo with no load, ms", &report.echo_idle_ms, 3);
    assert_figures("echo under the load, ms", &report.echo_loaded_ms, 3);
    assert_figures("resume to the first byte, ms", &report.resume_first_ms, 2);
    assert_figures("resume to the last byte, ms", &report.resume_all_ms, 2);
    assert_figures("CPU %, MB/s", &[report.cpu_percent, report.received_mb_s], 2);
    assert!(report.rss_kib.0 > 0 && report.rss_kib.1 > 0, "{report:?}");
    assert!(report.detached_kib_each.is_finite(), "{report:?}");
    let table = report.to_string();
    assert_table_line(
        &table,
        "## Operator terminals (3 terminals x 100 KB/s over 2 connections",
    );
    assert_table_line(&table, "| keystroke echo under the load, p50 / p99 | ");
    assert_table_line(&table, "| RSS per idle detached terminal with a full ring | ");
    assert_table_line(
        &table,
        "| resume, attach to the first missed byte, median / max | ",
    );
}

#[tokio::test]
async fn identity_benchmark_reports_rates_round_trips_and_sign_ins_on_a_tiny_workload() {
    let w = identity::Workload {
        requests: 20,
        frames: 20,
        logins: 2,
        sessions: 500,
        ..identity::Workload::FULL
    };
    let report = identity::run(w).await;
    let rounds = w.rounds;
    assert_figures("anonymous health, req/s", &report.anon_rps, rounds);
    assert_figures("health with a token, req/s", &report.token_rps, rounds);
    assert_figures("health with a cookie, req/s", &report.session_rps, rounds);
    assert_figures("servers with a token, req/s", &report.servers_rps, rounds);
    assert_figures("ping round trip, µs", &report.ping_us, rounds);
    assert_figures("cancel round trip, µs", &report.checked_us, rounds);
    assert_eq!(report.logins.len(), 2);
    assert_eq!(report.crowded_logins.len(), 2);
    assert!(report.crowded_rss_kib.0 > 0 && report.crowded_rss_kib.1 > 0);
    assert!(
        report.logins.iter().all(|d| *d > Duration::ZERO),
        "{:?}",
        report.logins
    );
    let table = report.to_string();
    assert_table_line(
        &table,
        &format!("## Identity (20 sequential requests a round, median of {rounds} alternating rounds)"),
    );
    assert_table_line(&table, "| `GET /api/v1/health` with an API token | ");
    assert_table_line(
        &table,
        "| login (Argon2id verify + session), min / median / max of 2 | ",
    );
}

#[tokio::test]
async fn workflows_benchmark_times_the_three_ways_on_a_tiny_workload() {
    let w = workflows::Workload {
        files: 5,
        rounds: 1,
        ..workflows::Workload::FULL
    };
    let report = workflows::run(w).await;
    assert_figures("one workflow_run, s", &report.workflow_s, 1);
    assert_figures("by hand, s", &report.by_hand_s, 1);
    assert_figures("OpenSSH, s", &report.openssh_s, 1);
    let table = report.to_string();
    assert_table_line(
        &table,
        "| 5 files, median of 1 rounds | wall time | vs OpenSSH script |",
    );
    assert_table_line(&table, "| (a) one `workflow_run` | ");
    assert_table_line(&table, "| (c) `ssh` + `scp -3` + `ssh` (OpenSSH) | ");
}

#[tokio::test]
async fn bmx4_benchmark_times_the_three_ways_on_a_tiny_workload() {
    let w = bmx4::Workload {
        commands: 3,
        rounds: 1,
    };
    let report = bmx4::run(w).await;
    assert_figures("daemon batch_execute, ms", &report.daemon_ms, 1);
    assert_figures("one connection per command, ms", &report.per_connection_ms, 1);
    assert_figures("ControlMaster, ms", &report.multiplexed_ms, 1);
    let table = report.to_string();
    assert_table_line(
        &table,
        "BMX4 benchmark: 3 x `true` on one server, median of 1 rounds",
    );
    assert_table_line(
        &table,
        "| daemon batch_execute (one connection, connect included) | ",
    );
    assert_table_line(&table, "| OpenSSH ControlMaster (master connect excluded) | ");
}

#[tokio::test]
async fn bmx5_benchmark_measures_memory_under_slow_clients_on_a_tiny_workload() {
    let w = bmx5::Workload {
        clients: &[2],
        soak: Duration::from_millis(300),
    };
    let report = bmx5::run(w).await;
    let [row] = &report.rows[..] else {
        panic!("one row per count of clients: {:?}", report.rows)
    };
    assert_eq!(row.clients, 2);
    assert!(row.idle_kib > 0 && row.rss_kib > 0, "{row:?}");
    assert!(row.peak_kib >= row.rss_kib.max(row.idle_kib), "{row:?}");
    let table = report.to_string();
    assert_table_line(
        &table,
        "| slow clients | idle RSS | RSS after 300ms | peak RSS | peak above idle, per client |",
    );
    assert_table_line(&table, "| 2 | ");
}

#[tokio::test]
async fn transfers_benchmark_script_reports_every_tool_on_a_tiny_workload() {
    const TEST: &str = "bench::transfers_benchmark_script_reports_every_tool_on_a_tiny_workload";
    if !transfers::root_or_skip(TEST) {
        return;
    }
    let w = transfers::Workload {
        large_mib: 1,
        small_files: 5,
        runs: 1,
        ..transfers::Workload::FULL
    };
    let rows = transfers::run(w).await;
    let seen: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.workload.as_str(), r.tool.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("large", "pinkpage"),
            ("large", "scp3"),
            ("large", "scp3-aes"),
            ("small", "pinkpage"),
            ("small", "scp3"),
            ("small", "scp3-aes"),
        ]
    );
    for r in &rows {
        let what = format!("{} {}", r.workload, r.tool);
        assert_figures(&format!("{what}, runs s"), &r.runs_s, 1);
        assert_eq!(r.median_s, r.runs_s[0], "{what}: the median of one run");
        // printed to 0.1 MB/s, which a tiny workload may round to 0.0
        let mb_s = w.bytes(&r.workload) as f64 / r.median_s / 1e6;
        assert!(
            (r.mb_s - mb_s).abs() <= 0.05 + 1e-9,
            "{what}: {} MB/s printed, {mb_s} copied",
            r.mb_s
        );
        // every run starts two SSH sessions and a client: some CPU, and
        // at most what the machine's cores give in its time (with slack
        // for what the script does around the timed part)
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
        assert!(
            r.cpu_s > 0.0 && r.cpu_s <= cores * (r.median_s + 1.0),
            "{what}: {} CPU s in {} s",
            r.cpu_s,
            r.median_s
        );
    }
}

#[tokio::test]
async fn recordings_benchmark_reports_throughput_on_and_off_on_a_tiny_workload() {
    let mut w = recordings::Workload::FULL;
    (w.bytes, w.runs) = (500_000, 2);
    let report = recordings::run(w).await;
    assert_figures("recorded, MB/s", &report.recorded_mb_s, 2);
    assert_figures("not recorded, MB/s", &report.plain_mb_s, 2);
    assert_figures("disk bytes per MB", &report.disk_bytes_per_mb, 2);
    assert_figures("STUB recorded, MB/s", &report.stub_recorded_mb_s, 2);
    assert_figures("STUB not recorded, MB/s", &report.stub_plain_mb_s, 2);
    // every printed byte is in the recording (at least once)
    assert!(report.disk_bytes_per_mb.iter().all(|b| *b >= 1e6), "{report:?}");
    let table = report.to_string();
    assert_table_line(
        &table,
        "## Recordings (0 MB of text on a PTY, recorded or not, median of 2 runs",
    );
    assert_table_line(&table, "| STUB ratio recorded / not recorded | ");
    assert_table_line(&table, "| terminal ratio recorded / not recorded | ");
}

#[tokio::test]
async fn policy_benchmark_reports_rule_checks_and_echo_on_a_tiny_workload() {
    let mut w = policy::Workload::FULL;
    (w.rules, w.checks, w.keystrokes) = (20, 200, 4);
    let report = policy::run(w).await;
    assert_figures("checks with rules, us", &report.check_us, 5);
    assert_figures("checks without rules, us", &report.open_check_us, 5);
    assert_figures("echo with rules, ms", &report.echo_ruled_ms, 4);
    assert_figures("echo without rules, ms", &report.echo_plain_ms, 4);
    assert_figures("enter with rules, ms", &report.enter_ruled_ms, 4);
    assert_figures("enter without rules, ms", &report.enter_plain_ms, 4);
    assert_eq!(report.workload.rules, 20);
    let table = report.to_string();
    assert_table_line(&table, "## Command policy (20 rules, none matching;");
    assert_table_line(&table, "| one check of a command, in the process | ");
    assert_table_line(&table, "| Enter to the next prompt, p50 / p99 | ");
}
