//! `scripts/demo.sh`, the README's one command for a working demo: it runs
//! its servers as its own Unix user, and Ctrl-C stops what it started (by
//! process id) and nothing else, so a test run beside it goes on.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::support::poll::eventually_within;
use crate::support::remote::{pgrep, RemoteProcess};
use crate::support::sshd::free_port;

/// Ends the processes matching `.0` when dropped, so a failed test
/// leaves nothing running.
struct KillOnDrop(&'static str);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-f", self.0]).status();
    }
}

/// Whether process `pid` still exists.
fn alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn the_demo_runs_as_its_own_user_and_ctrl_c_stops_only_what_it_started() {
    let dir = tempfile::tempdir().expect("demo dir");
    let http = free_port();
    let ssh = free_port();
    let root = env!("CARGO_MANIFEST_DIR");
    // a process of the test suite's user, as a test run beside the demo has
    let mut beside = Command::new("runuser")
        .args(["-u", "pinkpage-test", "--", "sleep", "1017.25"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runuser");
    let _cleanup = KillOnDrop("sleep 1017.25");
    let beside_sleep = RemoteProcess::started("sleep 1017.25").await;

    let mut demo = Command::new("bash");
    demo.arg(format!("{root}/scripts/demo.sh"))
        .env("PINKPAGE_DEMO_DIR", dir.path())
        .env("PINKPAGE_DEMO_SSH_PORT", ssh.to_string())
        .env("PINKPAGE_DEMO_BINARY", env!("CARGO_BIN_EXE_pinkpage"))
        .env("PINKPAGE_BIND", format!("127.0.0.1:{http}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // its own process group, as a terminal gives a command: Ctrl-C
        // goes to the whole group
        .process_group(0);
    let mut demo = demo.spawn().expect("run scripts/demo.sh");
    let group = demo.id();
    // what it prints (its API token among it), read as it comes
    let printed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let out = demo.stdout.take().expect("the demo's stdout");
    let sink = printed.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
        }
    });
    let token = eventually_within(
        std::time::Duration::from_secs(90),
        "the demo's API token printed",
        async || {
            let printed = printed.lock().unwrap().clone();
            printed
                .lines()
                .find_map(|l| l.trim().strip_prefix("API token:"))
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        },
    )
    .await;

    // up: both servers healthy, logged in as the demo's own user
    let client = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{http}/api/v1/health/servers");
    eventually_within(
        std::time::Duration::from_secs(90),
        "the demo's two servers healthy",
        async || {
            let Ok(res) = client.get(&health).bearer_auth(&token).send().await else {
                return Err("not listening yet".to_owned());
            };
            let body: serde_json::Value = res.json().await.map_err(|e| e.to_string())?;
            let healthy = body
                .as_array()
                .map(|a| a.iter().filter(|s| s["is_healthy"] == true).count());
            if healthy == Some(2) {
                Ok(())
            } else {
                Err(body.to_string())
            }
        },
    )
    .await;
    let sshd_pids: Vec<String> = ["mdwap1p", "mypap1d"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(dir.path().join(n).join("sshd.pid"))
                .expect("the demo's sshd pid file")
                .trim()
                .to_owned()
        })
        .collect();
    assert!(sshd_pids.iter().all(|p| alive(p)), "{sshd_pids:?}");
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        passwd.lines().any(|l| l.starts_with("pinkpage-demo:")),
        "the demo's own user"
    );

    // Ctrl-C: SIGINT to the demo's process group
    let status = Command::new("kill")
        .args(["-INT", "--", &format!("-{group}")])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || demo.wait())
        .await
        .unwrap()
        .expect("the demo's exit");
    assert!(!exit.success() || exit.code() == Some(0), "{exit:?}");
    // what it started is gone: its daemon and both sshd listeners
    eventually_within(
        std::time::Duration::from_secs(15),
        "the demo's sshd servers stopped",
        async || sshd_pids.iter().all(|p| !alive(p)),
    )
    .await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", http)).is_err(),
        "the daemon stopped"
    );
    // and the test suite's process beside it was left alone
    assert!(pgrep("sleep 1017.25"), "the suite's process survived");
    let _ = Command::new("pkill").args(["-f", "sleep 1017.25"]).status();
    beside_sleep.ended("killed by the test").await;
    let _ = beside.wait();
}
