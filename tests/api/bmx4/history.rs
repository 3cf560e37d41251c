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

#[tokio::test]
async fn a_runs_results_come_in_pages_by_count_and_by_bytes() {
    let (app, _sshd) = app_with_server("s1").await;
    let mut c = bmx4(&app).await;
    // nine results of 2 MiB each (1 MiB of stdout and of stderr, the
    // default caps): 18 MiB, more than one page may carry (16 MiB)
    let mib = "head -c 1048576 /dev/zero | tr '\\0' o; head -c 1048576 /dev/zero | tr '\\0' e >&2";
    let big = run_batch(&mut c, json!({"server": "s1", "commands": vec![mib; 9]})).await;
    let small = run_batch(
        &mut c,
        json!({"server": "s1", "commands": ["echo 0", "echo 1", "echo 2", "echo 3", "echo 4"]}),
    )
    .await;
    let page = async |run: &str, query: &str| -> Value {
        let res = app.get(&format!("/api/v1/bmx4/runs/{run}?{query}")).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    };

    let first = page(small.run_id(), "limit=2").await;
    let indexes = |p: &Value| -> Vec<u64> {
        p["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["index"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(indexes(&first), [0, 1]);
    assert_eq!(
        (&first["results_total"], &first["next_offset"]),
        (&json!(5), &json!(2))
    );
    let last = page(small.run_id(), "limit=2&offset=4").await;
    assert_eq!(indexes(&last), [4]);
    assert_eq!(last["next_offset"], Value::Null, "{last}");
    let all = page(small.run_id(), "").await;
    assert_eq!(
        indexes(&all),
        [0, 1, 2, 3, 4],
        "without a limit a small run is one page"
    );

    let cut = page(big.run_id(), "").await;
    assert_eq!(
        indexes(&cut),
        [0, 1, 2, 3, 4, 5, 6, 7],
        "16 MiB of output, not 18"
    );
    assert_eq!(cut["results"][0]["stdout"].as_str().unwrap().len(), 1 << 20);
    let rest = page(big.run_id(), &format!("offset={}", cut["next_offset"])).await;
    assert_eq!(indexes(&rest), [8]);
    assert_eq!(rest["next_offset"], Value::Null);

    let bad = app
        .get(&format!("/api/v1/bmx4/runs/{}?limit=0", small.run_id()))
        .await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], 10001);
}
