//! The BMX4 benchmark (ignored in the suite; run it by name): 100 short
//! commands through the daemon vs OpenSSH.

use super::*;

/// The BMX4 benchmark (docs/benchmarks.md): 100 `true` on one server
/// through the daemon, with OpenSSH one connection per command, and with
/// OpenSSH ControlMaster multiplexing, against the same harness sshd, key
/// auth for both. Prints the table; asserts only that every way ran.
///
/// `cargo test --release --test api bmx4::benchmark -- --ignored --nocapture`
#[tokio::test]
#[ignore = "benchmark; run by hand (see docs/benchmarks.md)"]
async fn benchmark_one_hundred_short_commands_daemon_vs_openssh() {
    const N: usize = 100;
    const ROUNDS: usize = 3;
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
        let mut cmd = std::process::Command::new("ssh");
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
        let t = std::time::Instant::now();
        for _ in 0..N {
            let st = ssh(extra).arg("true").status().unwrap();
            assert!(st.success());
        }
        t.elapsed()
    };

    let mut daemon = Vec::new();
    let mut per_conn = Vec::new();
    let mut multiplexed = Vec::new();
    for _ in 0..ROUNDS {
        // A fresh client each round: the blocking OpenSSH loops below keep
        // this test from answering pings, and the daemon rightly drops a
        // client silent past PINKPAGE_WS_TIMEOUT_S.
        let mut c = bmx4(&app).await;
        let t = std::time::Instant::now();
        let b = run_batch(&mut c, json!({"server": "s1", "commands": vec!["true"; N]})).await;
        daemon.push(t.elapsed());
        assert_eq!(counts(&b.complete), (N as u64, 0, 0));
        c.close().await;

        per_conn.push(run_n(&[]));

        // the master's own connect is not counted: it is paid once
        let st = ssh(&["-M", "-N", "-f", "-o", &cp, "-o", "ControlPersist=yes"])
            .status()
            .unwrap();
        assert!(st.success());
        multiplexed.push(run_n(&["-o", &cp, "-o", "ControlMaster=no"]));
        let _ = ssh(&["-o", &cp, "-O", "exit"]).output();
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1000.0
    };
    let (d, p, m) = (
        median(&mut daemon),
        median(&mut per_conn),
        median(&mut multiplexed),
    );
    eprintln!("BMX4 benchmark: {N} x `true` on one server, median of {ROUNDS} rounds");
    eprintln!("| way | total ms | per command ms |");
    eprintln!("|---|---|---|");
    eprintln!(
        "| daemon batch_execute (one connection, connect included) | {d:.0} | {:.2} |",
        d / N as f64
    );
    eprintln!(
        "| OpenSSH, one connection per command | {p:.0} | {:.2} |",
        p / N as f64
    );
    eprintln!(
        "| OpenSSH ControlMaster (master connect excluded) | {m:.0} | {:.2} |",
        m / N as f64
    );
}
