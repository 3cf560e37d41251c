//! BMX4 run history over REST.

use super::*;

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
