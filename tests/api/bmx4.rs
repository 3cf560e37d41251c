//! The BMX4 domain end to end: batch runs through the real daemon, over a
//! real WebSocket, against real sshd processes.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::fixtures::{app_with_server, with_servers, TempTree};
use crate::support::poll::eventually;
use crate::support::remote::RemoteProcess;
use crate::support::sshd::{SshdOptions, SshdServer, TestUser};
use crate::support::ws::WsClient;

async fn bmx4(app: &TestApp) -> WsClient {
    WsClient::connect(app, "/ws/v1/bmx4").await
}

/// What one batch produced.
struct Batch {
    started: Value,
    results: Vec<Value>,
    errors: Vec<Value>,
    complete: Value,
}

impl Batch {
    fn run_id(&self) -> &str {
        self.started["run_id"].as_str().unwrap()
    }
}

/// Sends `request` (a `batch_execute`) and reads until `batch_complete`.
async fn run_batch(c: &mut WsClient, mut request: Value) -> Batch {
    request["type"] = json!("batch_execute");
    request["request_id"] = json!("b1");
    c.send(request).await;
    let started = c.request_wait("batch_started").await;
    assert_eq!(started["request_id"], "b1");
    finish_batch(c, started).await
}

async fn finish_batch(c: &mut WsClient, started: Value) -> Batch {
    let mut results = Vec::new();
    let mut errors = Vec::new();
    loop {
        let f = c.recv().await;
        match f["type"].as_str().unwrap() {
            "batch_command_result" => {
                assert_eq!(f["request_id"], started["request_id"], "{f}");
                results.push(f)
            }
            "error" => errors.push(f),
            "batch_complete" => {
                assert_eq!(f["run_id"], started["run_id"]);
                return Batch {
                    started,
                    results,
                    errors,
                    complete: f,
                };
            }
            _ => {}
        }
    }
}

trait RequestWait {
    async fn request_wait(&mut self, kind: &str) -> Value;
}

impl RequestWait for WsClient {
    /// The next frame of type `kind`, skipping broadcasts; panics on errors.
    async fn request_wait(&mut self, kind: &str) -> Value {
        loop {
            let f = self.recv().await;
            if f["type"] == kind {
                return f;
            }
            assert_ne!(f["type"], "error", "{f}");
        }
    }
}

/// A `sleep` nobody else runs, so pgrep finds only ours.
fn unique_sleep() -> String {
    format!("sleep 1000.{}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000)
}

fn statuses(results: &[Value]) -> Vec<&str> {
    results.iter().map(|r| r["status"].as_str().unwrap()).collect()
}

fn counts(complete: &Value) -> (u64, u64, u64) {
    (
        complete["succeeded"].as_u64().unwrap(),
        complete["failed"].as_u64().unwrap(),
        complete["skipped"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn three_commands_run_in_order_with_their_exit_statuses_and_separate_streams() {
    let (app, _sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;
    assert_eq!(c.welcome["message"], "Connected to BMX4 WebSocket");

    let b = run_batch(
        &mut c,
        json!({"server": "s1", "commands": [
            "echo one",
            "echo to-err >&2; echo to-out; exit 3",
            "printf 'a\\nb'",
        ]}),
    )
    .await;

    let indexes: Vec<u64> = b.results.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, vec![0, 1, 2]);
    let exits: Vec<u64> = b
        .results
        .iter()
        .map(|r| r["exit_status"].as_u64().unwrap())
        .collect();
    assert_eq!(exits, vec![0, 3, 0]);
    assert_eq!(b.results[0]["stdout"], "one\n");
    assert_eq!(b.results[0]["stderr"], "");
    assert_eq!(b.results[1]["stdout"], "to-out\n");
    assert_eq!(b.results[1]["stderr"], "to-err\n");
    assert_eq!(b.results[1]["command"], "echo to-err >&2; echo to-out; exit 3");
    assert_eq!(b.results[2]["stdout"], "a\nb");
    for r in &b.results {
        assert_eq!(r["server"], "s1");
        assert_eq!(r["run_id"], b.run_id());
        assert_eq!(r["attempts"], 1);
        assert_eq!(r["truncated"], false);
    }
    assert_eq!(statuses(&b.results), vec!["succeeded", "failed", "succeeded"]);
    assert_eq!(counts(&b.complete), (2, 1, 0));
    assert_eq!(b.complete["cancelled"], false);
    assert!(b.errors.is_empty(), "{:?}", b.errors);
}

#[tokio::test]
async fn one_ssh_connection_serves_every_command_of_a_server_in_a_run() {
    let (app, sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;
    let b = run_batch(
        &mut c,
        json!({"server": "s1", "commands": ["true", "echo 2", "false", "echo 4", "true"]}),
    )
    .await;
    assert_eq!(b.results.len(), 5);
    // every login is one "Accepted password" line in sshd's log
    let logins = sshd.log().matches("Accepted password").count();
    assert_eq!(logins, 1, "{}", sshd.log());
}

#[tokio::test]
async fn stop_on_error_skips_the_commands_after_a_failure_and_without_it_all_run() {
    let (app, _sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;
    let commands = json!(["echo a", "exit 7", "echo c", "echo d"]);

    let b = run_batch(
        &mut c,
        json!({"server": "s1", "commands": commands, "stop_on_error": true}),
    )
    .await;
    assert_eq!(
        statuses(&b.results),
        vec!["succeeded", "failed", "skipped", "skipped"]
    );
    assert_eq!(b.results[1]["exit_status"], 7);
    assert_eq!(b.results[2]["attempts"], 0);
    assert_eq!(b.results[2]["stdout"], "");
    assert_eq!(counts(&b.complete), (1, 1, 2));

    let b = run_batch(
        &mut c,
        json!({"server": "s1", "commands": commands, "stop_on_error": false}),
    )
    .await;
    assert_eq!(
        statuses(&b.results),
        vec!["succeeded", "failed", "succeeded", "succeeded"]
    );
    assert_eq!(b.results[3]["stdout"], "d\n");
    assert_eq!(counts(&b.complete), (3, 1, 0));
}

#[tokio::test]
async fn a_command_that_fails_twice_then_succeeds_reports_three_attempts_after_the_retry_delays() {
    let (app, _sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;
    // a counter on the server: the attempt number, success from the third
    let counter = format!("/tmp/pinkpage-bmx4-retry-{}", uuid::Uuid::new_v4());
    let command = format!(
        "n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; echo try $n; [ $n -ge 3 ]"
    );

    let b = run_batch(
        &mut c,
        json!({"server": "s1", "commands": [command], "retries": 5, "retry_delay_ms": 400}),
    )
    .await;
    let _ = std::fs::remove_file(&counter);

    let r = &b.results[0];
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["attempts"], 3);
    assert_eq!(r["exit_status"], 0);
    assert_eq!(r["stdout"], "try 3\n", "the result is the last attempt's");
    // two pauses of 400 ms lie between the three attempts
    assert!(r["duration_ms"].as_u64().unwrap() >= 800, "{r}");
}

#[tokio::test]
async fn a_command_past_its_timeout_fails_with_22001_and_leaves_no_process_behind() {
    let (app, _sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;
    let sleep = unique_sleep();

    let (sleeper, b) = tokio::join!(
        RemoteProcess::started(&sleep),
        run_batch(
            &mut c,
            json!({"server": "s1", "commands": [sleep, "echo after"], "timeout_s": 1}),
        )
    );

    let r = &b.results[0];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["code"], 22001);
    assert!(r["duration_ms"].as_u64().unwrap() >= 1000, "{r}");
    assert_eq!(
        b.results[1]["stdout"], "after\n",
        "the run goes on without stop_on_error"
    );
    sleeper.ended("it still runs on the server").await;
}

#[tokio::test]
async fn batch_cancel_stops_the_run_and_ends_the_remote_command() {
    let (app, _sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;
    let sleep = unique_sleep();
    c.send(json!({"type": "batch_execute", "server": "s1", "commands": ["echo first", sleep, "echo never"]}))
        .await;
    let started = c.request_wait("batch_started").await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let first = c.request_wait("batch_command_result").await;
    assert_eq!(first["stdout"], "first\n");
    let sleeper = RemoteProcess::started(&sleep).await;

    c.send(json!({"type": "batch_cancel", "run_id": run_id, "request_id": "c1"}))
        .await;
    let cancelled = c.request_wait("batch_cancelled").await;
    assert_eq!(cancelled["request_id"], "c1");
    let complete = c.request_wait("batch_complete").await;
    assert_eq!(complete["cancelled"], true);
    assert_eq!(counts(&complete), (1, 0, 2));
    sleeper.ended("it still runs on the server").await;

    let run: Value = app
        .get(&format!("/api/v1/bmx4/runs/{run_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "cancelled");
    assert_eq!(run["results"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_run_leaves_it_recorded_cancelled_with_its_results_and_no_remote_command(
) {
    let (app, _sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;
    let sleep = unique_sleep();
    c.send(json!({"type": "batch_execute", "server": "s1", "commands": ["echo first", sleep, "echo never"]}))
        .await;
    let started = c.request_wait("batch_started").await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let first = c.request_wait("batch_command_result").await;
    assert_eq!(first["stdout"], "first\n");
    let sleeper = RemoteProcess::started(&sleep).await;

    c.close().await;

    sleeper.ended("it still runs on the server").await;
    // The run's end is stored by the run's recorder, which outlives the
    // client; nothing tells this test when, so poll the REST view, bounded.
    let path = format!("/api/v1/bmx4/runs/{run_id}");
    let run = eventually("the run is no longer running", async || {
        let run: Value = app.get(&path).await.json().await.unwrap();
        (run["status"] != "running").then_some(run)
    })
    .await;
    assert_eq!(run["status"], "cancelled", "{run}");
    assert_eq!(
        (&run["succeeded"], &run["failed"], &run["skipped"]),
        (&json!(1), &json!(0), &json!(2)),
        "the real counts: one reported, the rest cut off"
    );
    assert!(run["finished_at"].is_string(), "{run}");
    assert!(run["duration_ms"].is_u64(), "{run}");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{run}");
    assert_eq!(results[0]["stdout"], "first\n");
    assert_eq!(results[0]["status"], "succeeded");

    // and it was recorded once, with its audit event
    let events = app.audit_events("action=batch.run", 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["status"], "cancelled", "{events:?}");
    assert_eq!(events[0]["detail"]["run_id"], run_id.as_str());
}

#[tokio::test]
async fn fifty_megabytes_of_output_are_truncated_at_the_cap_and_the_daemon_stays_small() {
    let (app, _sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;

    let b = run_batch(
        &mut c,
        json!({"server": "s1", "commands": [
            "yes | head -c 50000000",
            "yes | head -c 50000000 >&2",
        ]}),
    )
    .await;

    let cap = 1 << 20;
    let out = &b.results[0];
    assert_eq!(out["truncated"], true);
    assert_eq!(out["exit_status"], 0);
    assert_eq!(out["stdout"].as_str().unwrap().len(), cap);
    assert_eq!(out["stderr"], "");
    let err = &b.results[1];
    assert_eq!(err["truncated"], true);
    assert_eq!(err["stderr"].as_str().unwrap().len(), cap);
    assert_eq!(err["stdout"], "");

    // VmHWM is the daemon's peak resident set over its whole life, so it
    // covers the moments the 100 MB went through it.
    let peak_kb = app.peak_rss_kib();
    eprintln!("daemon peak RSS (VmHWM) after 2 x 50 MB of output: {peak_kb} kB");
    assert!(peak_kb < 200 * 1024, "daemon peak RSS {peak_kb} kB");
}

#[tokio::test]
async fn two_servers_run_side_by_side_not_one_after_the_other() {
    let (builder, _servers) = with_servers(["a", "b"]);
    let app = builder.spawn().await;
    let mut c = bmx4(&app).await;

    let b = run_batch(&mut c, json!({"servers": ["a", "b"], "commands": ["sleep 2"]})).await;

    assert_eq!(b.results.len(), 2);
    let mut servers: Vec<&str> = b.results.iter().map(|r| r["server"].as_str().unwrap()).collect();
    servers.sort();
    assert_eq!(servers, vec!["a", "b"]);
    // Structural, not a stopwatch: run one after the other, the run would
    // last at least the sum of the commands' durations; side by side it
    // cannot reach that sum (each took >= 2 s; connecting adds ~0.1 s).
    let sum: u64 = b.results.iter().map(|r| r["duration_ms"].as_u64().unwrap()).sum();
    assert!(sum >= 4000, "{:?}", b.results);
    let run = b.complete["duration_ms"].as_u64().unwrap();
    assert!(
        run < sum,
        "run took {run} ms; the commands took {sum} ms in total"
    );
    assert_eq!(counts(&b.complete), (2, 0, 0));
}

#[tokio::test]
async fn bad_batches_are_refused_with_their_codes_and_the_connection_stays_usable() {
    let app = TestApp::builder()
        .server(ServerEntry::unreachable("dead"))
        .spawn()
        .await;
    let mut c = bmx4(&app).await;
    let too_many: Vec<&str> = vec!["true"; 1001];
    for (request, code) in [
        (json!({"server": "nope", "commands": ["true"]}), 23000),
        (json!({"servers": ["dead", "nope"], "commands": ["true"]}), 23000),
        (json!({"server": "dead", "commands": []}), 10001),
        (json!({"server": "dead", "commands": too_many}), 10001),
        (json!({"server": "dead", "commands": ["true", "  "]}), 10001),
        (json!({"commands": ["true"]}), 10001),
        (
            json!({"server": "dead", "commands": ["true"], "timeout_s": 0}),
            10001,
        ),
        (
            json!({"server": "dead", "commands": ["true"], "retries": 1000}),
            10001,
        ),
        (json!({"server": "dead"}), 31000),
    ] {
        let mut request = request;
        request["type"] = json!("batch_execute");
        request["request_id"] = json!("bad");
        c.send(request.clone()).await;
        let err = c.expect_error().await;
        assert_eq!(err["error"]["code"], code, "{request}: {err}");
        assert_eq!(err["request_id"], "bad");
    }
    c.send(json!({"type": "batch_cancel", "run_id": "x"})).await;
    assert_eq!(c.expect_error().await["error"]["code"], 50011);
    c.send(json!({"type": "ping"})).await;
    assert_eq!(c.recv().await["type"], "pong");
}

#[tokio::test]
async fn a_server_that_cannot_be_reached_reports_the_connection_error_in_each_result() {
    let app = TestApp::builder()
        .server(ServerEntry::unreachable("dead"))
        .spawn()
        .await;
    let mut c = bmx4(&app).await;

    let b = run_batch(&mut c, json!({"server": "dead", "commands": ["true", "true"]})).await;

    assert_eq!(statuses(&b.results), vec!["failed", "failed"]);
    for r in &b.results {
        assert_eq!(r["error"]["code"], 20000, "{r}");
    }
    assert_eq!(b.results[0]["attempts"], 1);
    assert_eq!(
        b.results[1]["attempts"], 0,
        "an unreachable server is not tried again"
    );
    assert_eq!(counts(&b.complete), (0, 2, 0));
    // nothing ran anywhere: the run as a whole failed
    assert_eq!(b.errors.len(), 1);
    assert_eq!(b.errors[0]["error"]["code"], 51000);
    assert_eq!(b.errors[0]["request_id"], "b1");
}

#[tokio::test]
async fn a_second_batch_on_the_same_connection_waits_its_turn_with_50010() {
    let (app, _sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;
    let sleep = unique_sleep();
    c.send(json!({"type": "batch_execute", "server": "s1", "commands": [sleep]}))
        .await;
    let started = c.request_wait("batch_started").await;
    let sleeper = RemoteProcess::started(&sleep).await;

    c.send(json!({"type": "batch_execute", "server": "s1", "commands": ["true"]}))
        .await;
    assert_eq!(c.expect_error().await["error"]["code"], 50010);

    // another connection is not held up
    let mut other = bmx4(&app).await;
    let b = run_batch(&mut other, json!({"server": "s1", "commands": ["echo free"]})).await;
    assert_eq!(b.results[0]["stdout"], "free\n");

    c.send(json!({"type": "batch_cancel", "run_id": started["run_id"]}))
        .await;
    let complete = c.request_wait("batch_complete").await;
    assert_eq!(complete["cancelled"], true);
    sleeper.ended("it still runs on the server").await;
}

#[tokio::test]
async fn the_rest_endpoints_return_the_stored_runs_newest_first() {
    let (app, _sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;
    let first = run_batch(&mut c, json!({"server": "s1", "commands": ["echo first"]})).await;
    let second = run_batch(
        &mut c,
        json!({"server": "s1", "commands": ["echo out; echo err >&2", "exit 4"], "retries": 1, "retry_delay_ms": 10, "timeout_s": 30}),
    )
    .await;

    let runs: Value = app.get("/api/v1/bmx4/runs").await.json().await.unwrap();
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second.run_id(), first.run_id()]);
    let page: Value = app
        .get("/api/v1/bmx4/runs?limit=1&offset=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page[0]["run_id"], first.run_id());

    let run: Value = app
        .get(&format!("/api/v1/bmx4/runs/{}", second.run_id()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "completed");
    assert_eq!(run["servers"], json!(["s1"]));
    assert_eq!(run["commands"], json!(["echo out; echo err >&2", "exit 4"]));
    assert_eq!(
        (run["succeeded"].clone(), run["failed"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(run["retries"], 1);
    assert_eq!(run["timeout_s"], 30.0);
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["stdout"], "out\n");
    assert_eq!(results[0]["stderr"], "err\n");
    assert_eq!(results[1]["exit_status"], 4);
    assert_eq!(results[1]["attempts"], 2);
    assert_eq!(results[1]["status"], "failed");

    let missing = app.get("/api/v1/bmx4/runs/no-such-run").await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], 10004);

    // one audit event per run
    let audited = app.audit_events("action=batch.run", 2).await.len();
    assert_eq!(audited, 2);
}

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
