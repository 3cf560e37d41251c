//! The recordings benchmark's body (issue 26): `cargo bench --bench
//! recordings` runs it with [`Workload::FULL`], the suite's smoke run
//! (`bench::recordings_benchmark_reports_throughput_on_and_off_on_a_tiny_workload`)
//! with a tiny one.
//!
//! In one run, against one daemon and one harness sshd reached as two
//! servers, `rec` (recorded, the default) and `plain` (`record = false`):
//! a command printing `bytes` of text runs on a PTY and a WebSocket
//! client reads it all, alternately on each server, `runs` times, two
//! ways: as a STUB `ssh_command` and in an operator terminal. Reported:
//! MB/s each way (median), the ratio recorded / plain, and the
//! recording's size on disk per MB the command printed (the asciicast
//! framing, JSON escaping and the PTY's `\r` included).

use std::fmt;
use std::time::Instant;

use serde_json::{json, Value};

use super::stats::median;
use crate::support::daemon::TestApp;
use crate::support::sshd::{SshdOptions, SshdServer};
use crate::support::ws::WsClient;

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Bytes of text the command prints, per run.
    pub bytes: u64,
    /// Runs on each server, interleaved.
    pub runs: usize,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        bytes: 100_000_000,
        runs: 7,
    };
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    /// MB/s of each run on the recorded server.
    pub recorded_mb_s: Vec<f64>,
    /// MB/s of each run on the unrecorded one.
    pub plain_mb_s: Vec<f64>,
    /// Bytes on disk per MB printed, of each recording.
    pub disk_bytes_per_mb: Vec<f64>,
    /// MB/s of each STUB command on the recorded server.
    pub stub_recorded_mb_s: Vec<f64>,
    /// MB/s of each STUB command on the unrecorded one.
    pub stub_plain_mb_s: Vec<f64>,
}

/// Runs the benchmark.
pub async fn run(w: Workload) -> Report {
    let sshd = SshdServer::start(SshdOptions::default());
    let app = TestApp::builder()
        .sshd("rec", &sshd)
        .sshd_with("plain", &sshd, "record = false")
        .env("RUST_LOG", "info,russh=warn")
        .spawn()
        .await;
    let (mut recorded_mb_s, mut plain_mb_s, mut disk_bytes_per_mb) = (Vec::new(), Vec::new(), Vec::new());
    let (mut stub_recorded_mb_s, mut stub_plain_mb_s) = (Vec::new(), Vec::new());
    for _ in 0..w.runs {
        stub_recorded_mb_s.push(stub_flood(&app, "rec", w.bytes).await);
        stub_plain_mb_s.push(stub_flood(&app, "plain", w.bytes).await);
        let (mb_s, pty_id) = flood(&app, "rec", w.bytes).await;
        recorded_mb_s.push(mb_s);
        let size = recorded_size(&app, &pty_id).await;
        disk_bytes_per_mb.push(size as f64 / (w.bytes as f64 / 1e6));
        plain_mb_s.push(flood(&app, "plain", w.bytes).await.0);
    }
    Report {
        workload: w,
        recorded_mb_s,
        plain_mb_s,
        disk_bytes_per_mb,
        stub_recorded_mb_s,
        stub_plain_mb_s,
    }
}

fn flood_command(bytes: u64) -> String {
    format!("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {bytes}")
}

/// Runs the flood as a STUB command on `server`: MB/s. A connection of
/// its own each time: one left silent through a terminal's run would be
/// dropped by the heartbeat.
async fn stub_flood(app: &TestApp, server: &str, bytes: u64) -> f64 {
    let mut stub = WsClient::stub(app).await;
    stub.start_session().await;
    let started = Instant::now();
    stub.send(json!({"type": "ssh_command", "server": server, "command": flood_command(bytes)}))
        .await;
    let mut chars = 0u64;
    loop {
        let f = stub.recv().await;
        match f["type"].as_str() {
            Some("ssh_output") => chars += f["data"].as_str().unwrap().len() as u64,
            Some("ssh_command_complete") => break,
            Some("error") => panic!("{f}"),
            _ => {}
        }
    }
    let mb_s = bytes as f64 / started.elapsed().as_secs_f64() / 1e6;
    assert!(chars >= bytes, "only {chars} bytes arrived");
    stub.request(json!({"type": "end_session"}), "session_ended")
        .await;
    stub.close().await;
    mb_s
}

/// Opens a terminal on `server` running the flood, reads it to its close:
/// MB/s, and the PTY's id. A connection of its own, like the STUB runs.
async fn flood(app: &TestApp, server: &str, bytes: u64) -> (f64, String) {
    let mut ws = WsClient::connect(app, "/ws/v1/terminal").await;
    let started = Instant::now();
    ws.send(json!({"type": "terminal_open", "server": server, "command": flood_command(bytes)}))
        .await;
    let mut pty_id = String::new();
    let mut chars = 0u64;
    loop {
        let f: Value = ws.recv().await;
        match f["type"].as_str() {
            Some("terminal_opened") => pty_id = f["pty_id"].as_str().unwrap().to_owned(),
            Some("terminal_output") => chars += f["data"].as_str().unwrap().len() as u64,
            Some("terminal_closed") => break,
            Some("error") => panic!("{f}"),
            _ => {}
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // the PTY adds a \r per line; count what the program printed
    assert!(chars >= bytes, "only {chars} bytes arrived");
    ws.close().await;
    (bytes as f64 / secs / 1e6, pty_id)
}

/// The finished recording's size.
async fn recorded_size(app: &TestApp, pty_id: &str) -> i64 {
    crate::support::poll::eventually("the recording ended", async || {
        let list: Value = app.get("/api/v1/recordings?limit=5").await.json().await.unwrap();
        match list.as_array().unwrap().iter().find(|r| r["id"] == pty_id) {
            Some(r) if r["state"] == "ended" => Ok(r["bytes"].as_i64().unwrap()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// The markdown of docs/benchmarks.md.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.workload;
        let (on, off) = (
            median(self.recorded_mb_s.clone()),
            median(self.plain_mb_s.clone()),
        );
        writeln!(
            f,
            "\n## Recordings ({} MB of text on a PTY, recorded or not, median of {} runs each, interleaved)\n",
            w.bytes / 1_000_000,
            w.runs
        )?;
        let (s_on, s_off) = (
            median(self.stub_recorded_mb_s.clone()),
            median(self.stub_plain_mb_s.clone()),
        );
        writeln!(f, "| path | result |\n|---|---|")?;
        writeln!(
            f,
            "| STUB command, recorded (`rec`) | {s_on:.1} MB/s (runs: {:.1?}) |",
            self.stub_recorded_mb_s
        )?;
        writeln!(
            f,
            "| STUB command, not recorded (`plain`, `record = false`) | {s_off:.1} MB/s (runs: {:.1?}) |",
            self.stub_plain_mb_s
        )?;
        writeln!(f, "| STUB ratio recorded / not recorded | {:.3} |", s_on / s_off)?;
        writeln!(
            f,
            "| operator terminal, recorded | {on:.1} MB/s (runs: {:.1?}) |",
            self.recorded_mb_s
        )?;
        writeln!(
            f,
            "| operator terminal, not recorded | {off:.1} MB/s (runs: {:.1?}) |",
            self.plain_mb_s
        )?;
        writeln!(f, "| terminal ratio recorded / not recorded | {:.3} |", on / off)?;
        writeln!(
            f,
            "| recording on disk per MB printed | {:.0} bytes |",
            median(self.disk_bytes_per_mb.clone())
        )
    }
}
