//! The terminal (STUB) benchmark's body: `cargo bench --bench terminal`
//! runs it with [`Workload::FULL`], the suite's smoke run
//! (`bench::terminal_benchmark_reports_throughput_and_echo_on_a_tiny_workload`)
//! with a tiny one.
//!
//! Side by side, in one run, against the same private sshd on loopback:
//! - (a) PTY output throughput: a command printing text on a PTY, read
//!   through the daemon by a WebSocket client, vs `ssh -tt` to /dev/null;
//! - (b) keystroke echo round trip: `ssh_input` of one character to its
//!   echo in `ssh_output` through the daemon (default 100 ms throttle in
//!   force, keystrokes 150 ms apart like a fast typist), vs the same round
//!   trip on a PTY opened with russh directly.
//!
//! Both sides log in with the same key.

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pinkpage_actors::ssh::{self, HostKeyMode, HostKeyPolicy, PtyRequest, ShellEvent, SshOptions};
use serde_json::json;

use super::stats::{median, percentile};
use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::sshd::{SshdOptions, SshdServer, TestUser};
use crate::support::ws::WsClient;

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Bytes of text the flood command prints, per run.
    pub bytes: u64,
    /// Throughput runs of each way, interleaved.
    pub runs: usize,
    /// Keystrokes timed on each way.
    pub keystrokes: usize,
    /// Time between two keystrokes: above the default 100 ms throttle, so
    /// every echo is the first output after a quiet period.
    pub key_gap: Duration,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        bytes: 200_000_000,
        runs: 5,
        keystrokes: 100,
        key_gap: Duration::from_millis(150),
    };
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    /// MB/s (10^6 B/s) of each run through the daemon.
    pub daemon_mb_s: Vec<f64>,
    /// MB/s of each run of `ssh -tt`.
    pub openssh_mb_s: Vec<f64>,
    /// Milliseconds from `ssh_input` to its echo, per keystroke.
    pub echo_daemon_ms: Vec<f64>,
    /// Milliseconds from a write on a russh PTY to its echo, per keystroke.
    pub echo_russh_ms: Vec<f64>,
}

/// Printed by the remote side once `stty` has run, so keystrokes are sent
/// only after the terminal left canonical mode.
const READY: &str = "pinkpage-echo-ready";

/// The text-printing command: lines of 37 printable bytes, `bytes` in all.
fn flood_command(bytes: u64) -> String {
    format!("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {bytes}")
}

/// Leaves canonical mode, says so, and reads keystrokes (the PTY echoes
/// them).
fn echo_command() -> String {
    format!("stty -icanon; echo {READY}; cat >/dev/null")
}

/// Runs the benchmark: a fresh sshd and daemon, the throughput runs
/// interleaved, then the echo round trips.
pub async fn run(w: Workload) -> Report {
    let user = TestUser::get();
    let sshd = SshdServer::start(SshdOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line() + "\n").unwrap();
    let entry = ServerEntry {
        name: "bench".into(),
        host: "127.0.0.1".into(),
        port: sshd.port(),
        username: user.name.clone(),
        password: None,
        key_file: Some(user.key_path.clone()),
        extra: String::new(),
    };
    let app = TestApp::builder()
        .server(entry)
        .known_hosts(&sshd.known_hosts_line())
        .env("RUST_LOG", "warn,pinkpage::startup=info")
        .spawn()
        .await;

    let (mut daemon_mb_s, mut openssh_mb_s) = (Vec::new(), Vec::new());
    for _ in 0..w.runs {
        daemon_mb_s.push(daemon_throughput(&app, w.bytes).await);
        openssh_mb_s.push(openssh_throughput(&sshd, &user, &known_hosts, w.bytes));
    }
    let echo_daemon_ms = daemon_echo(&app, w).await;
    let echo_russh_ms = russh_echo(&sshd, &user, &known_hosts, w).await;
    Report {
        workload: w,
        daemon_mb_s,
        openssh_mb_s,
        echo_daemon_ms,
        echo_russh_ms,
    }
}

async fn daemon_throughput(app: &TestApp, bytes: u64) -> f64 {
    let mut c = WsClient::stub(app).await;
    c.start_session().await;
    let started = Instant::now();
    c.send(json!({"type": "ssh_command", "server": "bench", "command": flood_command(bytes)}))
        .await;
    let mut chars = 0usize;
    loop {
        let f = c.recv().await;
        match f["type"].as_str() {
            Some("ssh_output") => chars += f["data"].as_str().unwrap().len(),
            Some("ssh_command_complete") => break,
            Some("error") => panic!("{f}"),
            _ => {}
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // the PTY adds a \r per line; count what the program printed
    assert!(chars as u64 >= bytes, "only {chars} bytes arrived");
    c.close().await;
    bytes as f64 / secs / 1e6
}

fn openssh_throughput(sshd: &SshdServer, user: &TestUser, known_hosts: &Path, bytes: u64) -> f64 {
    let started = Instant::now();
    let status = Command::new("ssh")
        .args(["-tt", "-q", "-i"])
        .arg(&user.key_path)
        .args(["-o", "BatchMode=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "StrictHostKeyChecking=yes", "-p", &sshd.port().to_string()])
        .arg(format!("{}@127.0.0.1", user.name))
        .arg(flood_command(bytes))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("ssh");
    assert!(status.success(), "ssh -tt failed: {status}");
    bytes as f64 / started.elapsed().as_secs_f64() / 1e6
}

async fn daemon_echo(app: &TestApp, w: Workload) -> Vec<f64> {
    let mut c = WsClient::stub(app).await;
    c.start_session().await;
    c.send(json!({"type": "ssh_command", "server": "bench", "command": echo_command()}))
        .await;
    c.wait_for_output(READY).await;
    let mut samples = Vec::new();
    for i in 0..w.keystrokes {
        let ch = (b'a' + (i % 26) as u8) as char;
        tokio::time::sleep(w.key_gap).await; // the typist's pace, not a wait for an event
        let started = Instant::now();
        c.send(json!({"type": "ssh_input", "data": ch.to_string()})).await;
        loop {
            let f = c.recv().await;
            if f["type"] == "ssh_output" && f["data"].as_str().unwrap().contains(ch) {
                break;
            }
        }
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    c.send(json!({"type": "cancel"})).await;
    c.close().await;
    samples
}

async fn russh_echo(sshd: &SshdServer, user: &TestUser, known_hosts: &Path, w: Workload) -> Vec<f64> {
    let spec = sshd.server_spec("bench", user.key_auth());
    let opts = SshOptions {
        connect_timeout: Duration::from_secs(10),
        host_keys: HostKeyPolicy {
            known_hosts: known_hosts.to_path_buf(),
            mode: HostKeyMode::Strict,
        },
        keepalive: None,
        sessions: Default::default(),
        on_connect: Default::default(),
    };
    let session = ssh::connect(&spec, &opts).await.expect("connect");
    let pty = PtyRequest {
        term: "xterm".into(),
        cols: 80,
        rows: 24,
    };
    let shell = session.open_pty(pty, Some(&echo_command())).await.expect("pty");
    let (input, mut output) = shell.into_parts();
    let mut start = Vec::new();
    while !String::from_utf8_lossy(&start).contains(READY) {
        match output.next_event().await {
            Some(ShellEvent::Output(data)) => start.extend_from_slice(&data),
            Some(_) => {}
            None => panic!("shell closed before {READY:?}"),
        }
    }
    let mut samples = Vec::new();
    for i in 0..w.keystrokes {
        let ch = b'a' + (i % 26) as u8;
        tokio::time::sleep(w.key_gap).await; // the typist's pace
        let started = Instant::now();
        input.write(vec![ch]).await.expect("write");
        loop {
            match output.next_event().await {
                Some(ShellEvent::Output(data)) if data.contains(&ch) => break,
                Some(_) => {}
                None => panic!("shell closed"),
            }
        }
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = input.close().await;
    let _ = session.disconnect().await;
    samples
}

/// The markdown of docs/benchmarks.md.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.workload;
        let (ours, theirs) = (&self.daemon_mb_s, &self.openssh_mb_s);
        let (ours_mb, theirs_mb) = (median(ours.clone()), median(theirs.clone()));
        let (daemon, russh) = (&self.echo_daemon_ms, &self.echo_russh_ms);
        let p = |v: &Vec<f64>, q| percentile(v.clone(), q);
        writeln!(
            f,
            "\n## Terminal ({} MB of text on a PTY, median of {}; {} keystrokes {} ms apart)\n",
            w.bytes / 1_000_000,
            w.runs,
            w.keystrokes,
            w.key_gap.as_millis()
        )?;
        writeln!(f, "| path | result |\n|---|---|")?;
        writeln!(
            f,
            "| PTY output through the daemon to a WebSocket client | {ours_mb:.1} MB/s (runs: {ours:.1?}) |"
        )?;
        writeln!(
            f,
            "| `ssh -tt` to /dev/null | {theirs_mb:.1} MB/s (runs: {theirs:.1?}) |"
        )?;
        writeln!(f, "| ratio daemon / ssh -tt | {:.2} |", ours_mb / theirs_mb)?;
        writeln!(
            f,
            "| keystroke echo through the daemon, p50 / p99 | {:.2} ms / {:.2} ms |",
            p(daemon, 0.5),
            p(daemon, 0.99)
        )?;
        writeln!(
            f,
            "| keystroke echo with russh directly, p50 / p99 | {:.2} ms / {:.2} ms |",
            p(russh, 0.5),
            p(russh, 0.99)
        )?;
        writeln!(
            f,
            "| added by the daemon, p50 / p99 | {:.2} ms / {:.2} ms |",
            p(daemon, 0.5) - p(russh, 0.5),
            p(daemon, 0.99) - p(russh, 0.99)
        )
    }
}
