//! Stopping a BMX4 run: a timeout, `batch_cancel` and a client that
//! leaves each end the remote command; the run is still recorded.

use super::*;

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

/// `a & b; wait`: a compound command whose shell is not the only process.
/// The patterns match the sleeps themselves (`^`), not the shells whose
/// command lines contain them.
fn compound() -> (String, String, String) {
    let (a, b) = (unique_sleep(), unique_sleep());
    let command = format!("{a} & {b}; wait");
    (format!("^{a}"), format!("^{b}"), command)
}

#[tokio::test]
async fn a_compound_command_past_its_timeout_leaves_none_of_its_processes_behind() {
    let (app, _sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;
    let (a, b, command) = compound();

    let ((first, second), batch) = tokio::join!(
        async { (RemoteProcess::started(&a).await, RemoteProcess::started(&b).await) },
        run_batch(
            &mut c,
            json!({"server": "s1", "commands": [command], "timeout_s": 2})
        )
    );

    assert_eq!(batch.results[0]["error"]["code"], 22001, "{:?}", batch.results);
    first.ended("the background child outlived the timeout").await;
    second.ended("the foreground child outlived the timeout").await;
}

#[tokio::test]
async fn a_cancelled_compound_command_leaves_none_of_its_processes_behind() {
    let (app, _sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;
    let (a, b, command) = compound();
    c.send(json!({"type": "batch_execute", "server": "s1", "commands": [command]}))
        .await;
    let started = c.request_wait("batch_started").await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let first = RemoteProcess::started(&a).await;
    let second = RemoteProcess::started(&b).await;

    c.send(json!({"type": "batch_cancel", "run_id": run_id})).await;
    let complete = c.request_wait("batch_complete").await;

    assert_eq!(complete["cancelled"], true, "{complete}");
    first.ended("the background child outlived the cancel").await;
    second.ended("the foreground child outlived the cancel").await;
}

#[tokio::test]
async fn a_daemon_that_dies_mid_run_leaves_none_of_the_commands_processes_behind() {
    let (mut app, _sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;
    let (a, b, command) = compound();
    c.send(json!({"type": "batch_execute", "server": "s1", "commands": [command]}))
        .await;
    let started = c.request_wait("batch_started").await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let first = RemoteProcess::started(&a).await;
    let second = RemoteProcess::started(&b).await;

    // SIGKILL: no cleanup of any kind runs; only the closed connection
    // tells the server (sshd sends no SIGHUP to commands without a PTY)
    app.kill_and_restart().await;

    first.ended("the background child outlived the daemon").await;
    second.ended("the foreground child outlived the daemon").await;
    // the run the dead daemon left `running` is on record as interrupted
    let run: serde_json::Value = app
        .get(&format!("/api/v1/bmx4/runs/{run_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "interrupted", "{run}");
    assert!(run["finished_at"].is_string(), "{run}");
}
