//! The workflow benchmark's body: `cargo bench --bench workflows` runs it
//! with [`Workload::FULL`], the suite's smoke run
//! (`bench::workflows_benchmark_times_the_three_ways_on_a_tiny_workload`)
//! with a tiny one.
//!
//! The seed's sequence with small `.dat` files (unload on `alpha`: write
//! the files; copy them `alpha` -> `beta`; load on `beta`: count them),
//! timed side by side in one run, rounds interleaved so drift hits all
//! alike:
//! - (a) one `workflow_run` over `/ws/v1/stub`, until `workflow_complete`;
//! - (b) the same three steps driven by hand over the socket
//!   (`start_session`, `ssh_command`, `scp_transfer`, `ssh_command`,
//!   `end_session`), each awaited before the next;
//! - (c) a shell script with OpenSSH: `ssh` + `scp -3` + `ssh`.

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;

use super::stats::median;
use crate::support::daemon::TestApp;
use crate::support::fixtures::{with_servers, TempTree};
use crate::support::sshd::{SshdServer, TestUser};
use crate::support::ws::WsClient;

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// `.dat` files the unload writes and the copy carries.
    pub files: usize,
    /// Untimed rounds of each way first (host keys, page cache, the
    /// daemon's first connects).
    pub warm_ups: usize,
    /// Timed rounds, each running the three ways in turn.
    pub rounds: usize,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        files: 100,
        warm_ups: 1,
        rounds: 7,
    };
}

/// What one run measured: seconds of each timed round, per way.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    /// (a) one `workflow_run`.
    pub workflow_s: Vec<f64>,
    /// (b) the steps by hand over the socket.
    pub by_hand_s: Vec<f64>,
    /// (c) the OpenSSH script.
    pub openssh_s: Vec<f64>,
}

/// The places and commands of one run.
struct Sequence {
    files: usize,
    src: String,
    dst: String,
}

impl Sequence {
    fn unload(&self) -> String {
        format!(
            "cd {} && rm -f -- *.dat && for i in $(seq 1 {}); do printf 'id|t\\n%s|row\\n' \"$i\" > t_$i.dat; done",
            self.src, self.files
        )
    }

    fn load(&self) -> String {
        format!("cd {} && ls -- t_*.dat | wc -l && rm -f -- t_*.dat", self.dst)
    }
}

/// Runs the benchmark: two fresh sshd servers and a daemon with the
/// sequence as transfer `copy` and workflow `seed`.
pub async fn run(w: Workload) -> Report {
    let tree = TempTree::for_test_user("wfbench");
    let seq = Sequence {
        files: w.files,
        src: tree.mkdir("src"),
        dst: tree.mkdir("dst"),
    };
    let toml = format!(
        r#"
[[transfers]]
name = "copy"
source_server = "alpha"
source_glob = "{src}/*.dat"
destination_server = "beta"
destination_dir = "{dst}/"

[[workflows]]
name = "seed"
[[workflows.steps]]
type = "command"
server = "alpha"
command = '''{unload}'''
[[workflows.steps]]
type = "transfer"
transfer = "copy"
[[workflows.steps]]
type = "command"
server = "beta"
command = '''{load}'''
"#,
        src = seq.src,
        dst = seq.dst,
        unload = seq.unload(),
        load = seq.load(),
    );
    let (builder, servers) = with_servers(["alpha", "beta"]);
    let app = builder
        .transfers_toml(&toml)
        .env("RUST_LOG", "warn,pinkpage::startup=info")
        .spawn()
        .await;
    let user = TestUser::get();
    let known_hosts = tree.join("known_hosts");
    let lines: String = servers.iter().map(|s| s.known_hosts_line() + "\n").collect();
    std::fs::write(&known_hosts, lines).unwrap();

    for _ in 0..w.warm_ups {
        by_workflow(&app).await;
        by_hand(&app, &seq).await;
        by_openssh(&servers, &user, &known_hosts, &seq);
    }
    let (mut workflow_s, mut by_hand_s, mut openssh_s) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..w.rounds {
        workflow_s.push(by_workflow(&app).await);
        by_hand_s.push(by_hand(&app, &seq).await);
        openssh_s.push(by_openssh(&servers, &user, &known_hosts, &seq));
    }
    Report {
        workload: w,
        workflow_s,
        by_hand_s,
        openssh_s,
    }
}

async fn by_workflow(app: &TestApp) -> f64 {
    let mut c = WsClient::stub(app).await;
    let started = Instant::now();
    c.request(
        json!({"type": "workflow_run", "workflow": "seed"}),
        "workflow_started",
    )
    .await;
    let (done, frames) = c.recv_until("workflow_complete").await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(done["status"], "succeeded", "{frames:?}");
    c.close().await;
    secs
}

async fn by_hand(app: &TestApp, seq: &Sequence) -> f64 {
    let mut c = WsClient::stub(app).await;
    let started = Instant::now();
    c.start_session().await;
    let (_, _, done) = c.run("alpha", &seq.unload()).await;
    assert_eq!(done["exit_status"], 0);
    c.send(json!({"type": "scp_transfer", "transfer_name": "copy"}))
        .await;
    let (copied, _) = c.recv_until("scp_complete").await;
    assert_eq!(copied["files"].as_array().unwrap().len(), seq.files);
    let (out, _, done) = c.run("beta", &seq.load()).await;
    assert_eq!(done["exit_status"], 0);
    assert!(out.contains(&seq.files.to_string()), "{out}");
    c.request(json!({"type": "end_session"}), "session_ended").await;
    let secs = started.elapsed().as_secs_f64();
    c.close().await;
    secs
}

fn ssh_opts(user: &TestUser, known_hosts: &Path) -> Vec<String> {
    vec![
        "-q".into(),
        "-i".into(),
        user.key_path.display().to_string(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
    ]
}

fn by_openssh(servers: &[SshdServer; 2], user: &TestUser, known_hosts: &Path, seq: &Sequence) -> f64 {
    let opts = ssh_opts(user, known_hosts);
    let ssh = |port: u16, command: &str| {
        let out = Command::new("ssh")
            .args(&opts)
            .args(["-p", &port.to_string()])
            .arg(format!("{}@127.0.0.1", user.name))
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .expect("ssh");
        assert!(
            out.status.success(),
            "ssh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let started = Instant::now();
    ssh(servers[0].port(), &seq.unload());
    let status = Command::new("scp")
        .arg("-3")
        .args(&opts)
        .arg(format!(
            "scp://{}@127.0.0.1:{}/{}/*.dat",
            user.name,
            servers[0].port(),
            seq.src
        ))
        .arg(format!(
            "scp://{}@127.0.0.1:{}/{}/",
            user.name,
            servers[1].port(),
            seq.dst
        ))
        .stdin(Stdio::null())
        .status()
        .expect("scp");
    assert!(status.success(), "scp -3 failed");
    let out = ssh(servers[1].port(), &seq.load());
    let secs = started.elapsed().as_secs_f64();
    assert!(out.contains(&seq.files.to_string()), "{out}");
    secs
}

/// The markdown of docs/benchmarks.md.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.workload;
        let (wf, hand, openssh) = (
            median(self.workflow_s.clone()),
            median(self.by_hand_s.clone()),
            median(self.openssh_s.clone()),
        );
        writeln!(
            f,
            "\n| {} files, median of {} rounds | wall time | vs OpenSSH script |",
            w.files, w.rounds
        )?;
        writeln!(f, "|---|---|---|")?;
        for (name, secs) in [
            ("(a) one `workflow_run`", wf),
            ("(b) the same steps by hand over the socket", hand),
            ("(c) `ssh` + `scp -3` + `ssh` (OpenSSH)", openssh),
        ] {
            writeln!(f, "| {name} | {:.0} ms | {:.2}x |", secs * 1000.0, secs / openssh)?;
        }
        Ok(())
    }
}
