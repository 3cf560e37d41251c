//! `GET /metrics` scraped and parsed as Prometheus would, after work in
//! every domain against two real sshd servers: each family of the
//! catalogue is there and moved the way the run implies. And who may
//! read it: a signed-in account not limited to some servers, or anyone on
//! `PINKPAGE_METRICS_BIND`.

use std::collections::HashMap;

use pinkpage_actors::metrics::{Kind, CATALOGUE};
use prometheus_parse::{Scrape, Value as Sampled};
use serde_json::json;

use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::fixtures::{with_servers, TempTree};
use crate::support::poll::eventually;
use crate::support::term::Terms;
use crate::support::ws::WsClient;

/// One scrape: every sample by `name{sorted labels}`.
struct Metrics {
    samples: HashMap<String, f64>,
    families: Vec<String>,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the text format parses");
        let mut samples = HashMap::new();
        for s in &scrape.samples {
            let mut labels: Vec<_> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let key = format!("{}{{{}}}", s.metric, labels.join(","));
            let value = match &s.value {
                Sampled::Counter(v) | Sampled::Gauge(v) | Sampled::Untyped(v) => *v,
                // a histogram by its total count (its +Inf bucket)
                Sampled::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
                Sampled::Summary(_) => panic!("{}: no summaries are exposed", s.metric),
            };
            samples.insert(key, value);
        }
        let families = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect();
        Metrics { samples, families }
    }

    /// `name{labels}` (labels as `k=v`, sorted), 0 when absent.
    fn get(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }

    fn has(&self, key: &str) -> bool {
        self.samples.contains_key(key)
    }
}

async fn scrape(app: &TestApp) -> Metrics {
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    Metrics::parse(&res.text().await.unwrap())
}

/// Scrapes until `done` holds; the last scrape on failure.
async fn scrape_until(app: &TestApp, what: &str, done: impl Fn(&Metrics) -> bool) -> Metrics {
    eventually(what, async || {
        let m = scrape(app).await;
        if done(&m) {
            Ok(m)
        } else {
            Err(m.samples.len())
        }
    })
    .await
}

fn workflow_toml(src: &str, dst: &str) -> String {
    format!(
        r#"
[[transfers]]
name = "copy"
source_server = "alpha"
source_glob = "{src}/*.dat"
destination_server = "beta"
destination_dir = "{dst}/"

[[workflows]]
name = "move"
description = "make three files on alpha, copy them, count them on beta"
[[workflows.steps]]
type = "command"
name = "make"
server = "alpha"
command = '''cd {src} && for i in 1 2 3; do head -c 4096 /dev/zero > part_$i.dat; done && echo made'''
[[workflows.steps]]
type = "transfer"
name = "copy"
transfer = "copy"
[[workflows.steps]]
type = "command"
name = "count"
server = "beta"
command = '''ls {dst} | wc -l'''
"#
    )
}

#[tokio::test]
async fn every_family_is_scraped_and_moves_the_way_a_run_through_every_domain_implies() {
    let tree = TempTree::for_test_user("metrics");
    let (src, dst) = (tree.mkdir("src"), tree.mkdir("dst"));
    let (builder, mut servers) = with_servers(["alpha", "beta"]);
    let app = builder
        .transfers_toml(&workflow_toml(&src, &dst))
        .env("PINKPAGE_HEALTH_INTERVAL_S", "0.3")
        .env("PINKPAGE_HEALTH_TIMEOUT_S", "1")
        .env("PINKPAGE_HEALTH_FAILURES", "1")
        .env("PINKPAGE_TERMINALS_PER_USER", "1")
        .spawn()
        .await;

    // both servers checked and up before anything runs
    let before = scrape_until(&app, "both servers up", |m| {
        m.get("pinkpage_server_up{server=alpha}") == 1.0 && m.get("pinkpage_server_up{server=beta}") == 1.0
    })
    .await;
    assert!(before.get("pinkpage_uptime_seconds{}") > 0.0);
    assert_eq!(before.get("pinkpage_lock_held{}"), 0.0);
    assert_eq!(before.get("pinkpage_store_up{}"), 1.0);
    assert!(before.get("pinkpage_health_check_duration_seconds{result=up}") >= 2.0);
    assert!(before.has("pinkpage_server_last_good_check_seconds{server=alpha}"));

    // a command under the lock, on the stub endpoint
    let mut stub = WsClient::stub(&app).await;
    stub.start_session().await;
    let during = scrape(&app).await;
    assert_eq!(during.get("pinkpage_lock_held{}"), 1.0);
    assert_eq!(during.get("pinkpage_websocket_connections{endpoint=stub}"), 1.0);
    let (output, _, done) = stub.run("alpha", "echo metrics-$((6*7))").await;
    assert!(output.contains("metrics-42"), "{output}");
    assert_eq!(done["reason"], "exit", "{done}");
    stub.request(json!({"type": "end_session"}), "session_ended")
        .await;

    // a workflow: two command steps around a transfer of three 4 KiB files
    let started = stub
        .request(
            json!({"type": "workflow_run", "workflow": "move"}),
            "workflow_started",
        )
        .await;
    let (complete, frames) = stub.recv_until("workflow_complete").await;
    assert_eq!(complete["status"], "succeeded", "{started} {frames:?}");

    // a batch run with one good and one failing command
    let mut bmx4 = WsClient::connect(&app, "/ws/v1/bmx4").await;
    bmx4.send(json!({"type": "batch_execute", "server": "alpha", "commands": ["echo a", "false"]}))
        .await;
    let (batch_done, _) = bmx4.recv_until("batch_complete").await;
    assert_eq!(batch_done["failed"], 1, "{batch_done}");

    // an operator terminal, and a second one past the per-user cap
    let mut terms = Terms::admin(&app).await;
    let (id, _) = terms.open("alpha").await;
    terms.type_in(&id, "echo term-$((6*7))\n").await;
    terms.output(&id, "term-42").await;
    terms
        .refused(
            json!({"type": "terminal_open", "server": "beta"}),
            "terminal_opened",
            54001,
        )
        .await;

    let after = scrape_until(&app, "the work is counted", |m| {
        m.get("pinkpage_batch_runs_total{status=failed}") >= 1.0
            && m.get("pinkpage_workflow_runs_total{status=succeeded}") >= 1.0
            && m.get("pinkpage_store_write_duration_seconds{stream=batch}") >= 1.0
    })
    .await;
    let moved = |key: &str| after.get(key) - before.get(key);

    // the stub command, the workflow's two commands, the terminal's shell
    assert!(moved("pinkpage_commands_started_total{kind=command}") >= 3.0);
    assert!(moved("pinkpage_commands_finished_total{kind=command,reason=exit}") >= 3.0);
    assert_eq!(moved("pinkpage_commands_started_total{kind=terminal}"), 1.0);
    assert!(moved("pinkpage_output_bytes_total{kind=command}") >= "metrics-42\n".len() as f64);
    assert!(moved("pinkpage_output_bytes_total{kind=terminal}") >= "term-42".len() as f64);
    // three files of 4 KiB
    assert_eq!(moved("pinkpage_transfer_files_total{}"), 3.0);
    assert_eq!(moved("pinkpage_transfer_bytes_total{}"), 3.0 * 4096.0);
    assert_eq!(moved("pinkpage_transfers_total{status=completed}"), 1.0);
    assert_eq!(moved("pinkpage_batch_results_total{status=succeeded}"), 1.0);
    assert_eq!(moved("pinkpage_batch_results_total{status=failed}"), 1.0);
    assert_eq!(moved("pinkpage_batch_runs_total{status=failed}"), 1.0);
    assert_eq!(moved("pinkpage_workflow_runs_total{status=succeeded}"), 1.0);
    assert_eq!(
        after.get("pinkpage_workflow_step_duration_seconds{kind=command}"),
        2.0
    );
    assert_eq!(
        after.get("pinkpage_workflow_step_duration_seconds{kind=transfer}"),
        1.0
    );
    // the stub's session and the workflow's own hold, both released
    assert_eq!(after.get("pinkpage_lock_hold_duration_seconds{}"), 2.0);
    assert_eq!(after.get("pinkpage_lock_held{}"), 0.0);
    assert_eq!(after.get("pinkpage_lock_held_for_seconds{}"), 0.0);
    assert_eq!(after.get("pinkpage_terminals{state=attached}"), 1.0);
    assert_eq!(after.get("pinkpage_terminals{state=detached}"), 0.0);
    assert_eq!(
        after.get("pinkpage_websocket_connections{endpoint=terminal}"),
        1.0
    );
    assert_eq!(after.get("pinkpage_websocket_connections{endpoint=bmx4}"), 1.0);
    assert!(after.get("pinkpage_websocket_connections_opened_total{endpoint=stub}") >= 1.0);
    // the terminal's shell holds a session on alpha
    assert!(after.get("pinkpage_ssh_sessions{server=alpha}") >= 1.0);
    assert_eq!(moved("pinkpage_caps_hit_total{kind=terminals_per_user}"), 1.0);
    assert_eq!(moved("pinkpage_errors_total{code=54001}"), 1.0);
    assert!(after.get("pinkpage_store_write_duration_seconds{stream=audit}") >= 1.0);
    assert_eq!(after.get("pinkpage_journal_dropped_rows_total{}"), 0.0);
    assert!(after.has("pinkpage_journal_queue_rows{}") && after.has("pinkpage_journal_queue_bytes{}"));

    // the terminal detached when its connection went
    drop(terms);
    scrape_until(&app, "the terminal shows detached", |m| {
        m.get("pinkpage_terminals{state=detached}") == 1.0
            && m.get("pinkpage_terminals{state=attached}") == 0.0
    })
    .await;

    // a health flip: beta's sshd stops
    servers[1].stop();
    let last = scrape_until(&app, "beta shows down", |m| {
        m.get("pinkpage_server_up{server=beta}") == 0.0 && m.has("pinkpage_server_up{server=beta}")
    })
    .await;
    assert_eq!(last.get("pinkpage_server_up{server=alpha}"), 1.0);
    assert!(last.get("pinkpage_health_check_duration_seconds{result=down}") >= 1.0);

    // every family of the catalogue is exposed, with its type
    for m in CATALOGUE {
        assert!(
            last.families.contains(&m.name.to_owned()),
            "{} is not exposed",
            m.name
        );
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    for m in CATALOGUE {
        assert!(
            text.contains(&format!("# TYPE {} {}\n", m.name, m.kind.as_str())),
            "{} as a {}",
            m.name,
            m.kind.as_str()
        );
        if m.kind == Kind::Histogram {
            assert!(
                text.contains(&format!("{}_bucket{{", m.name)),
                "{} has buckets",
                m.name
            );
        }
    }
    // no label value is a command, a path or a user
    for word in ["metrics-", "echo", &src, "pp-admin"] {
        assert!(!text.contains(word), "{word} leaked into /metrics");
    }
}

#[tokio::test]
async fn a_scoped_account_gets_10003_a_stranger_401_and_the_metrics_listener_needs_no_credential() {
    let app = TestApp::builder()
        .server(ServerEntry::unreachable("ghost"))
        .env("PINKPAGE_METRICS_BIND", "127.0.0.1:0")
        .spawn()
        .await;
    let viewer = app.identity("vic", "viewer", None).await;
    let scoped = app.identity("sam", "viewer", Some(&["web"])).await;
    // an admin uses every server whatever its tags, so it reads them all
    let boss = app.identity("ada", "admin", Some(&["web"])).await;
    let get = |token: &str| app.anon.get(app.url("/metrics")).bearer_auth(token).send();

    let res = get(&viewer.token).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("# TYPE pinkpage_uptime_seconds gauge"));

    assert_eq!(get(&boss.token).await.unwrap().status(), 200);

    let res = get(&scoped.token).await.unwrap();
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 10003, "{body}");
    assert!(
        body["error"]["detail"].as_str().unwrap().contains("web"),
        "{body}"
    );

    let res = app.anon.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 401);

    // the second listener, from its log line (printed before `listening`,
    // which the harness waited for)
    let logs = app.logs();
    let addr = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "metrics listening")
        .and_then(|v| v["fields"]["addr"].as_str().map(str::to_owned))
        .expect("the metrics listener logs its address");
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let res = app
        .anon
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    Metrics::parse(&text);
    assert!(text.contains("pinkpage_store_up 1"), "{text}");
    // and nothing else
    let res = app
        .anon
        .get(format!("http://{addr}/api/v1/servers"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
