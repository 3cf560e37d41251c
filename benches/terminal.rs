//! Terminal benchmark (issue: STUB). Run with
//!
//! ```text
//! sudo scripts/test-env.sh && cargo bench --bench terminal
//! ```
//!
//! Side by side, in one run, against the same private sshd on loopback:
//! - (a) PTY output throughput: a command printing text on a PTY, read
//!   through the daemon by a WebSocket client, vs `ssh -tt` to /dev/null;
//! - (b) keystroke echo round trip: `ssh_input` of one character to its
//!   echo in `ssh_output` through the daemon (default 100 ms throttle in
//!   force, keystrokes 150 ms apart like a fast typist), vs the same round
//!   trip on a PTY opened with russh directly.
//!
//! Both sides log in with the same key. Prints a markdown table for
//! docs/benchmarks.md.

#[path = "../tests/api/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pinkpage_actors::ssh::{self, HostKeyMode, HostKeyPolicy, PtyRequest, ShellEvent, SshOptions};
use serde_json::json;
use support::daemon::{ServerEntry, TestApp};
use support::sshd::{SshdOptions, SshdServer, TestUser};
use support::ws::WsClient;

const BYTES: u64 = 200_000_000;
const RUNS: usize = 5;
const KEYSTROKES: usize = 100;
const KEY_GAP: Duration = Duration::from_millis(150);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// The text-printing command: lines of 37 printable bytes, `BYTES` in all.
fn flood_command() -> String {
    format!("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {BYTES}")
}

async fn daemon_throughput(app: &TestApp) -> f64 {
    let mut c = WsClient::stub(app).await;
    c.start_session().await;
    let started = Instant::now();
    c.send(json!({"type": "ssh_command", "server": "bench", "command": flood_command()}))
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
    assert!(chars as u64 >= BYTES, "only {chars} bytes arrived");
    c.close().await;
    BYTES as f64 / secs / 1e6
}

fn openssh_throughput(sshd: &SshdServer, user: &TestUser, known_hosts: &std::path::Path) -> f64 {
    let started = Instant::now();
    let status = Command::new("ssh")
        .args(["-tt", "-q", "-i"])
        .arg(&user.key_path)
        .args(["-o", "BatchMode=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "StrictHostKeyChecking=yes", "-p", &sshd.port().to_string()])
        .arg(format!("{}@127.0.0.1", user.name))
        .arg(flood_command())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("ssh");
    assert!(status.success(), "ssh -tt failed: {status}");
    BYTES as f64 / started.elapsed().as_secs_f64() / 1e6
}

async fn daemon_echo(app: &TestApp) -> Vec<f64> {
    let mut c = WsClient::stub(app).await;
    c.start_session().await;
    c.send(json!({"type": "ssh_command", "server": "bench", "command": "stty -icanon; cat >/dev/null"}))
        .await;
    c.recv_until("ssh_command_started").await;
    tokio::time::sleep(Duration::from_millis(500)).await; // let stty run first
    let mut samples = Vec::new();
    for i in 0..KEYSTROKES {
        let ch = (b'a' + (i % 26) as u8) as char;
        tokio::time::sleep(KEY_GAP).await;
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

async fn russh_echo(sshd: &SshdServer, user: &TestUser, known_hosts: &std::path::Path) -> Vec<f64> {
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
    let shell = session
        .open_pty(pty, Some("stty -icanon; cat >/dev/null"))
        .await
        .expect("pty");
    let (input, mut output) = shell.into_parts();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // drain whatever the start printed
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), output.next_event()).await {}
    let mut samples = Vec::new();
    for i in 0..KEYSTROKES {
        let ch = b'a' + (i % 26) as u8;
        tokio::time::sleep(KEY_GAP).await;
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

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // useful either: this only runs as a benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("terminal benchmark: run with `cargo bench --bench terminal`");
        return;
    }
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

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        ours.push(daemon_throughput(&app).await);
        theirs.push(openssh_throughput(&sshd, &user, &known_hosts));
    }
    let (ours_mb, theirs_mb) = (median(ours.clone()), median(theirs.clone()));
    let echo_daemon = daemon_echo(&app).await;
    let echo_russh = russh_echo(&sshd, &user, &known_hosts).await;

    println!(
        "\n## Terminal ({} MB of text on a PTY, median of {RUNS}; {KEYSTROKES} keystrokes {} ms apart)\n",
        BYTES / 1_000_000,
        KEY_GAP.as_millis()
    );
    println!("| path | result |\n|---|---|");
    println!(
        "| PTY output through the daemon to a WebSocket client | {ours_mb:.1} MB/s (runs: {ours:.1?}) |"
    );
    println!("| `ssh -tt` to /dev/null | {theirs_mb:.1} MB/s (runs: {theirs:.1?}) |");
    println!("| ratio daemon / ssh -tt | {:.2} |", ours_mb / theirs_mb);
    println!(
        "| keystroke echo through the daemon, p50 / p99 | {:.2} ms / {:.2} ms |",
        percentile(echo_daemon.clone(), 0.5),
        percentile(echo_daemon.clone(), 0.99)
    );
    println!(
        "| keystroke echo with russh directly, p50 / p99 | {:.2} ms / {:.2} ms |",
        percentile(echo_russh.clone(), 0.5),
        percentile(echo_russh.clone(), 0.99)
    );
    println!(
        "| added by the daemon, p50 / p99 | {:.2} ms / {:.2} ms |",
        percentile(echo_daemon.clone(), 0.5) - percentile(echo_russh.clone(), 0.5),
        percentile(echo_daemon, 0.99) - percentile(echo_russh, 0.99)
    );
}
