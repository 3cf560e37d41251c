//! Workflow benchmark (issue: workflows). Run with
//!
//! ```text
//! sudo scripts/test-env.sh && cargo bench --bench workflows
//! ```
//!
//! The seed's sequence with 100 small `.dat` files (unload on `alpha`: write
//! the files; copy them `alpha` -> `beta`; load on `beta`: count them),
//! timed side by side in one run, rounds interleaved so drift hits all
//! alike:
//! - (a) one `workflow_run` over `/ws/v1/stub`, until `workflow_complete`;
//! - (b) the same three steps driven by hand over the socket
//!   (`start_session`, `ssh_command`, `scp_transfer`, `ssh_command`,
//!   `end_session`), each awaited before the next;
//! - (c) a shell script with OpenSSH: `ssh` + `scp -3` + `ssh`.
//!
//! Prints a markdown table for docs/benchmarks.md.

#[path = "../tests/api/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;
use support::daemon::TestApp;
use support::fixtures::{with_servers, TempTree};
use support::sshd::{SshdServer, TestUser};
use support::ws::WsClient;

const FILES: usize = 100;
const ROUNDS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn unload(src: &str) -> String {
    format!("cd {src} && rm -f -- *.dat && for i in $(seq 1 {FILES}); do printf 'id|t\\n%s|row\\n' \"$i\" > t_$i.dat; done")
}

fn load(dst: &str) -> String {
    format!("cd {dst} && ls -- t_*.dat | wc -l && rm -f -- t_*.dat")
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

async fn by_hand(app: &TestApp, src: &str, dst: &str) -> f64 {
    let mut c = WsClient::stub(app).await;
    let started = Instant::now();
    c.start_session().await;
    let (_, _, done) = c.run("alpha", &unload(src)).await;
    assert_eq!(done["exit_status"], 0);
    c.send(json!({"type": "scp_transfer", "transfer_name": "copy"}))
        .await;
    let (copied, _) = c.recv_until("scp_complete").await;
    assert_eq!(copied["files"].as_array().unwrap().len(), FILES);
    let (out, _, done) = c.run("beta", &load(dst)).await;
    assert_eq!(done["exit_status"], 0);
    assert!(out.contains(&FILES.to_string()), "{out}");
    c.request(json!({"type": "end_session"}), "session_ended").await;
    let secs = started.elapsed().as_secs_f64();
    c.close().await;
    secs
}

fn ssh_opts(user: &TestUser, known_hosts: &std::path::Path) -> Vec<String> {
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

fn by_openssh(
    servers: &[SshdServer; 2],
    user: &TestUser,
    known_hosts: &std::path::Path,
    src: &str,
    dst: &str,
) -> f64 {
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
    ssh(servers[0].port(), &unload(src));
    let status = Command::new("scp")
        .arg("-3")
        .args(&opts)
        .arg(format!(
            "scp://{}@127.0.0.1:{}/{src}/*.dat",
            user.name,
            servers[0].port()
        ))
        .arg(format!(
            "scp://{}@127.0.0.1:{}/{dst}/",
            user.name,
            servers[1].port()
        ))
        .stdin(Stdio::null())
        .status()
        .expect("scp");
    assert!(status.success(), "scp -3 failed");
    let out = ssh(servers[1].port(), &load(dst));
    let secs = started.elapsed().as_secs_f64();
    assert!(out.contains(&FILES.to_string()), "{out}");
    secs
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let tree = TempTree::for_test_user("wfbench");
    let src = tree.mkdir("src");
    let dst = tree.mkdir("dst");
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
        unload = unload(&src),
        load = load(&dst),
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

    // warm-up: one of each (host keys, page cache, the daemon's first connects)
    by_workflow(&app).await;
    by_hand(&app, &src, &dst).await;
    by_openssh(&servers, &user, &known_hosts, &src, &dst);

    let (mut wf, mut hand, mut openssh) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        wf.push(by_workflow(&app).await);
        hand.push(by_hand(&app, &src, &dst).await);
        openssh.push(by_openssh(&servers, &user, &known_hosts, &src, &dst));
    }
    let (wf, hand, openssh) = (median(wf), median(hand), median(openssh));
    println!("\n| {FILES} files, median of {ROUNDS} rounds | wall time | vs OpenSSH script |");
    println!("|---|---|---|");
    for (name, secs) in [
        ("(a) one `workflow_run`", wf),
        ("(b) the same steps by hand over the socket", hand),
        ("(c) `ssh` + `scp -3` + `ssh` (OpenSSH)", openssh),
    ] {
        println!("| {name} | {:.0} ms | {:.2}x |", secs * 1000.0, secs / openssh);
    }
}
