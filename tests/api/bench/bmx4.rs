//! The BMX4 benchmark: the ignored test
//! [`benchmark_one_hundred_short_commands_daemon_vs_openssh`] runs it with
//! [`Workload::FULL`], the suite's smoke run
//! (`bench::bmx4_benchmark_times_the_three_ways_on_a_tiny_workload`) with a
//! tiny one.
//!
//! Short commands (`true`) on one server, three ways, against the same
//! harness sshd, key auth for all: the daemon's `batch_execute`, OpenSSH
//! with one connection per command, and OpenSSH ControlMaster
//! multiplexing.

use std::fmt;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::stats::median;
use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::fixtures::TempTree;
use crate::support::sshd::{SshdOptions, SshdServer, TestUser};
use crate::support::ws::WsClient;

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Commands in one round of each way.
    pub commands: usize,
    /// Rounds, each running the three ways in turn.
    pub rounds: usize,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        commands: 100,
        rounds: 3,
    };
}

/// What one run measured: milliseconds of each round, per way.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    /// One `batch_execute` of all the commands, connect included.
    pub daemon_ms: Vec<f64>,
    /// `ssh ... true`, one connection per command.
    pub per_connection_ms: Vec<f64>,
    /// `ssh -o ControlPath=... true` through a master (its connect not
    /// counted).
    pub multiplexed_ms: Vec<f64>,
}

/// Runs the benchmark: a fresh sshd and a daemon logging in with the test
/// user's key.
pub async fn run(w: Workload) -> Report {
    let sshd = SshdServer::start(SshdOptions::default());
    let user = TestUser::get();
    let app = TestApp::builder()
        .server(ServerEntry {
            name: "s1".into(),
            host: "127.0.0.1".into(),
            port: sshd.port(),
            username: user.name.clone(),
            password: None,
            key_file: Some(user.key_path.clone()),
            extra: String::new(),
        })
        .known_hosts(&sshd.known_hosts_line())
        .env("RUST_LOG", "info")
        .spawn()
        .await;
    let dir = TempTree::private("bench");
    let known_hosts = dir.join("known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line() + "\n").unwrap();
    let control = dir.join("cm.sock");
    let ssh = |extra: &[&str]| {
        let mut cmd = Command::new("ssh");
        cmd.args(["-p", &sshd.port().to_string(), "-i"])
            .arg(&user.key_path)
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args(["-o", "StrictHostKeyChecking=yes"])
            .args(extra)
            .arg(format!("{}@127.0.0.1", user.name));
        cmd
    };
    let cp = format!("ControlPath={}", control.display());
    let run_n = |extra: &[&str]| {
        let t = Instant::now();
        for _ in 0..w.commands {
            let st = ssh(extra).arg("true").status().unwrap();
            assert!(st.success());
        }
        ms(t.elapsed())
    };

    let (mut daemon_ms, mut per_connection_ms, mut multiplexed_ms) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..w.rounds {
        // A fresh client each round: the blocking OpenSSH loops below keep
        // this task from answering pings, and the daemon rightly drops a
        // client silent past PINKPAGE_WS_TIMEOUT_S.
        let mut c = WsClient::connect(&app, "/ws/v1/bmx4").await;
        let t = Instant::now();
        c.send(json!({"type": "batch_execute", "server": "s1", "commands": vec!["true"; w.commands]}))
            .await;
        let (complete, frames) = c.recv_until("batch_complete").await;
        daemon_ms.push(ms(t.elapsed()));
        let errors: Vec<_> = frames.iter().filter(|f| f["type"] == "error").collect();
        assert!(errors.is_empty(), "{errors:?}");
        let counts = ["succeeded", "failed", "skipped"].map(|k| complete[k].as_u64());
        assert_eq!(counts, [Some(w.commands as u64), Some(0), Some(0)], "{complete}");
        c.close().await;

        per_connection_ms.push(run_n(&[]));

        // the master's own connect is not counted: it is paid once
        let st = ssh(&["-M", "-N", "-f", "-o", &cp, "-o", "ControlPersist=yes"])
            .status()
            .unwrap();
        assert!(st.success());
        multiplexed_ms.push(run_n(&["-o", &cp, "-o", "ControlMaster=no"]));
        let _ = ssh(&["-o", &cp, "-O", "exit"]).output();
    }
    Report {
        workload: w,
        daemon_ms,
        per_connection_ms,
        multiplexed_ms,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The markdown of docs/benchmarks.md.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.workload.commands;
        let (d, p, m) = (
            median(self.daemon_ms.clone()),
            median(self.per_connection_ms.clone()),
            median(self.multiplexed_ms.clone()),
        );
        writeln!(
            f,
            "BMX4 benchmark: {n} x `true` on one server, median of {} rounds",
            self.workload.rounds
        )?;
        writeln!(f, "| way | total ms | per command ms |")?;
        writeln!(f, "|---|---|---|")?;
        writeln!(
            f,
            "| daemon batch_execute (one connection, connect included) | {d:.0} | {:.2} |",
            d / n as f64
        )?;
        writeln!(
            f,
            "| OpenSSH, one connection per command | {p:.0} | {:.2} |",
            p / n as f64
        )?;
        writeln!(
            f,
            "| OpenSSH ControlMaster (master connect excluded) | {m:.0} | {:.2} |",
            m / n as f64
        )
    }
}

/// The full benchmark of docs/benchmarks.md, ignored in the suite:
///
/// `cargo test --release --test api bmx4::benchmark -- --ignored --nocapture`
#[tokio::test]
#[ignore = "benchmark; run by hand (see docs/benchmarks.md)"]
async fn benchmark_one_hundred_short_commands_daemon_vs_openssh() {
    eprint!("{}", run(Workload::FULL).await);
}
