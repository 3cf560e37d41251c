//! BMX4 runs: order, streams, one connection per server, stop-on-error,
//! retries, the output cap, servers side by side, refused batches.

use super::*;

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
