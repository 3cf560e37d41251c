//! Workflows end to end: `[[workflows]]` in the servers file, runs over
//! `/ws/v1/stub` and REST against two real sshd servers, the session lock
//! they hold, their history in SQLite and across a daemon crash.
//!
//! The two servers (`alpha` stands for the seed's mdwap1p, `beta` for
//! mypap1d) serve the test user on this machine, so each test has its own
//! `/tmp/pinkpage-wf-<uuid>/{src,dst}` tree and the remote processes are
//! visible to `pgrep`.

use serde_json::{json, Value};

use crate::support::daemon::{TestApp, TEST_ADMIN};
use crate::support::fixtures::{with_servers, TempTree};
use crate::support::poll::eventually;
use crate::support::remote::RemoteProcess;
use crate::support::sshd::SshdServer;
use crate::support::ws::WsClient;

/// A test's directories and the workflows TOML that uses them.
struct Setup {
    tree: TempTree,
    src: String,
    dst: String,
}

impl Setup {
    fn new() -> Setup {
        let tree = TempTree::for_test_user("wf");
        let src = tree.mkdir("src");
        let dst = tree.mkdir("dst");
        Setup { tree, src, dst }
    }

    /// The seed's transfer (`alpha:src/*.dat` -> `beta:dst`) and the seed's
    /// workflow over it, plus `extra` workflows.
    fn toml(&self, extra: &str) -> String {
        let (src, dst) = (&self.src, &self.dst);
        format!(
            r#"
[[transfers]]
name = "copy"
source_server = "alpha"
source_glob = "{src}/*.dat"
destination_server = "beta"
destination_dir = "{dst}/"

[[workflows]]
name = "seed"
description = "unload on alpha, copy, load on beta"
[[workflows.params]]
name = "table"
type = "string"
pattern = "[a-z][a-z0-9_]{{0,31}}"
[[workflows.params]]
name = "parts"
type = "int"
min = 1
max = 100
default = 3
[[workflows.steps]]
type = "command"
name = "unload"
server = "alpha"
command = '''cd {src} && for i in $(seq 1 {{{{parts}}}}); do printf 'id|t\n%s|%s\n' "$i" {{{{table}}}} > {{{{table}}}}_$i.dat; done && echo unloaded'''
[[workflows.steps]]
type = "transfer"
name = "copy"
transfer = "copy"
[[workflows.steps]]
type = "command"
name = "load"
server = "beta"
command = '''cd {dst} && n=$(ls -- {{{{table}}}}_*.dat | wc -l) && echo "loaded $n files"'''
{extra}"#
        )
    }
}

/// Two servers and a daemon with `setup`'s workflows and `extra` ones.
async fn app(setup: &Setup, extra: &str) -> (TestApp, [SshdServer; 2]) {
    let (builder, servers) = with_servers(["alpha", "beta"]);
    let app = builder.transfers_toml(&setup.toml(extra)).spawn().await;
    (app, servers)
}

/// Frames until `workflow_complete`: (that frame, every frame before it).
async fn until_complete(c: &mut WsClient) -> (Value, Vec<Value>) {
    c.recv_until("workflow_complete").await
}

fn of_type<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["type"] == kind).collect()
}

/// The stored run (null until its first row is written: rows are written
/// in order behind the run, never holding it up).
async fn stored_run(app: &TestApp, run_id: &str) -> Value {
    let res = app.get(&format!("/api/v1/workflows/runs/{run_id}")).await;
    if res.status() == 404 {
        return Value::Null;
    }
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn lock_status(app: &TestApp) -> Value {
    app.get("/api/v1/session").await.json().await.unwrap()
}

/// The stored run once its status is `status` (rows are written behind
/// the run, so this waits, bounded).
async fn stored_with_status(app: &TestApp, run_id: &str, status: &str) -> Value {
    eventually(&format!("run {run_id} is stored as {status}"), async || {
        let run = stored_run(app, run_id).await;
        if run["status"] == status {
            Ok(run)
        } else {
            Err(run)
        }
    })
    .await
}

fn step_statuses(run: &Value) -> Vec<String> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_seed_workflow_unloads_copies_and_loads_in_one_run() {
    let setup = Setup::new();
    let (app, _servers) = app(&setup, "").await;
    let mut c = WsClient::stub(&app).await;
    let started = c
        .request(
            json!({"type": "workflow_run", "workflow": "seed", "params": {"table": "orders", "parts": 4}, "request_id": "w1"}),
            "workflow_started",
        )
        .await;
    assert_eq!(started["request_id"], "w1");
    assert_eq!(started["params"], json!({"table": "orders", "parts": "4"}));
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let (done, frames) = until_complete(&mut c).await;
    assert_eq!(done["status"], "succeeded", "{frames:?}");
    assert_eq!(done["run_id"], run_id.as_str());

    // every step in order, each succeeded, each frame tagged with the run
    let started: Vec<_> = of_type(&frames, "workflow_step_started")
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert_eq!(started, [json!("unload"), json!("copy"), json!("load")]);
    let finished = of_type(&frames, "workflow_step_finished");
    assert!(
        finished.iter().all(|f| f["status"] == "succeeded"),
        "{finished:?}"
    );
    let output: String = of_type(&frames, "ssh_output")
        .iter()
        .inspect(|f| assert_eq!(f["run_id"], run_id.as_str()))
        .filter(|f| f["step"] == 2)
        .map(|f| f["data"].as_str().unwrap().to_owned())
        .collect();
    assert!(output.contains("loaded 4 files"), "{output}");
    let copied = of_type(&frames, "scp_complete");
    assert_eq!(copied.len(), 1);
    assert_eq!(copied[0]["files"].as_array().unwrap().len(), 4);
    assert!(setup.tree.join("dst/orders_4.dat").exists());

    // the end means the lock is free; the history has every step
    assert_eq!(lock_status(&app).await["active"], false);
    let run = stored_with_status(&app, &run_id, "succeeded").await;
    assert_eq!(step_statuses(&run), ["succeeded"; 3]);
    assert_eq!(run["user"], TEST_ADMIN);
    assert_eq!(run["steps"][2]["exit_status"], 0);
    assert!(run["steps"][2]["output_tail"]
        .as_str()
        .unwrap()
        .contains("loaded 4 files"));
    assert!(run["steps"][0]["plan"]["command"]
        .as_str()
        .unwrap()
        .contains("'orders'"));
    let listed: Value = app
        .get("/api/v1/workflows/runs?workflow=seed")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["run_id"], run_id.as_str());
    // audited: start, each step (with its command), end
    app.audit_events("action=workflow.start", 1).await;
    let steps = app.audit_events("action=workflow.step", 3).await;
    assert!(steps.iter().any(|e| e["command"]
        .as_str()
        .is_some_and(|c| c.contains("loaded $n files"))));
    let end = app.audit_events("action=workflow.end", 1).await;
    assert_eq!(end[0]["detail"]["status"], "succeeded");
}

#[tokio::test]
async fn a_failing_step_stops_the_run_unless_it_may_fail() {
    let setup = Setup::new();
    let extra = r#"
[[workflows]]
name = "stops"
[[workflows.steps]]
type = "command"
server = "alpha"
command = "exit 3"
[[workflows.steps]]
type = "transfer"
transfer = "copy"

[[workflows]]
name = "goes_on"
[[workflows.steps]]
type = "command"
server = "alpha"
command = "exit 3"
continue_on_error = true
[[workflows.steps]]
type = "command"
server = "alpha"
command = "exit 3"
expect_exit = [3]
[[workflows.steps]]
type = "batch"
servers = ["alpha", "beta"]
commands = ["echo batch-one", "echo batch-two"]
[[workflows.steps]]
type = "command"
server = "beta"
command = "echo went-on"
"#;
    setup.tree.write("src/a.dat", "a");
    let (app, _servers) = app(&setup, extra).await;
    let mut c = WsClient::stub(&app).await;
    let started = c
        .request(
            json!({"type": "workflow_run", "workflow": "stops"}),
            "workflow_started",
        )
        .await;
    let (done, frames) = until_complete(&mut c).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["stopped_at"], 0);
    assert_eq!(done["error"]["code"], 22000);
    let finished = of_type(&frames, "workflow_step_finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["exit_status"], 3);
    assert!(
        of_type(&frames, "scp_transfer_started").is_empty(),
        "the transfer must not start"
    );
    assert!(setup.tree.entries().contains(&"dst".to_owned()));
    assert!(std::fs::read_dir(setup.tree.join("dst"))
        .unwrap()
        .next()
        .is_none());
    let run_id = started["run_id"].as_str().unwrap();
    let run = stored_with_status(&app, run_id, "failed").await;
    assert_eq!(step_statuses(&run), ["failed", "skipped"]);

    c.request(
        json!({"type": "workflow_run", "workflow": "goes_on"}),
        "workflow_started",
    )
    .await;
    let (done, frames) = until_complete(&mut c).await;
    assert_eq!(done["status"], "succeeded", "{frames:?}");
    let statuses: Vec<_> = of_type(&frames, "workflow_step_finished")
        .iter()
        .map(|f| f["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [
            json!("failed"),
            json!("succeeded"),
            json!("succeeded"),
            json!("succeeded")
        ]
    );
    // the batch step's results, one per command and server, tagged
    let results = of_type(&frames, "batch_command_result");
    assert_eq!(results.len(), 4, "{results:?}");
    assert!(results
        .iter()
        .all(|r| r["step"] == 2 && r["status"] == "succeeded"));
    assert!(results
        .iter()
        .any(|r| r["server"] == "beta" && r["stdout"] == "batch-two\n"));
    assert!(of_type(&frames, "ssh_output")
        .iter()
        .any(|f| f["data"].as_str().unwrap().contains("went-on")));
}

const SLEEPER: &str = r#"
[[workflows]]
name = "sleeper"
[[workflows.params]]
name = "secs"
type = "int"
min = 1
[[workflows.steps]]
type = "command"
name = "nap"
server = "alpha"
command = "sleep {{secs}}"
[[workflows.steps]]
type = "command"
server = "alpha"
command = "echo never"
"#;

#[tokio::test]
async fn cancel_during_a_sleep_step_kills_the_sleep_and_frees_the_lock() {
    let setup = Setup::new();
    let (app, _servers) = app(&setup, SLEEPER).await;
    let mut c = WsClient::stub(&app).await;
    let started = c
        .request(
            json!({"type": "workflow_run", "workflow": "sleeper", "params": {"secs": 7331}}),
            "workflow_started",
        )
        .await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let sleep = RemoteProcess::started("sleep 7331").await;
    // the run holds the lock meanwhile, and is named by it
    let status = lock_status(&app).await;
    assert_eq!(status["active"], true);
    assert_eq!(status["workflow_run"]["run_id"], run_id.as_str());
    // a command step is not a pause
    let err = c
        .ask(
            json!({"type": "workflow_confirm", "run_id": run_id}),
            "workflow_confirmed",
        )
        .await;
    assert_eq!(err["error"]["code"], 50015, "{err}");

    c.send(json!({"type": "cancel", "run_id": run_id})).await;
    let (done, frames) = until_complete(&mut c).await;
    assert_eq!(done["status"], "cancelled");
    assert_eq!(
        lock_status(&app).await["active"],
        false,
        "free once the end is told"
    );
    sleep.ended("the run was cancelled").await;
    assert!(!of_type(&frames, "ssh_output")
        .iter()
        .any(|f| f["data"].as_str().unwrap().contains("never")));
    let run = stored_with_status(&app, &run_id, "cancelled").await;
    assert_eq!(step_statuses(&run), ["cancelled", "skipped"]);
    app.audit_events("action=workflow.cancel", 1).await;
}

#[tokio::test]
async fn while_a_run_holds_the_lock_others_can_neither_command_nor_start_nor_drive_it() {
    let setup = Setup::new();
    let (app, _servers) = app(&setup, SLEEPER).await;
    let bob = app.identity("bob", "operator", None).await;
    let mut a = WsClient::stub(&app).await;
    let started = a
        .request(
            json!({"type": "workflow_run", "workflow": "sleeper", "params": {"secs": 7332}}),
            "workflow_started",
        )
        .await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let sleep = RemoteProcess::started("sleep 7332").await;

    let mut b = WsClient::connect_with_token(&app, "/ws/v1/stub", &bob.token).await;
    // bob's welcome already names the run holding the lock
    let welcome_status = &b.welcome["session_status"];
    assert_eq!(welcome_status["active"], true);
    assert_eq!(welcome_status["owner_user"], TEST_ADMIN);
    assert_eq!(welcome_status["workflow_run"]["run_id"], run_id.as_str());
    assert_eq!(welcome_status["workflow_run"]["workflow"], "sleeper");
    for (frame, code) in [
        (json!({"type": "start_session"}), 50004),
        (
            json!({"type": "ssh_command", "server": "alpha", "command": "echo hi"}),
            50008,
        ),
        (
            json!({"type": "workflow_run", "workflow": "sleeper", "params": {"secs": 1}}),
            50004,
        ),
        (json!({"type": "workflow_confirm", "run_id": run_id}), 10003),
        (json!({"type": "cancel", "run_id": run_id}), 10003),
    ] {
        b.send(frame.clone()).await;
        let err = b.expect_error().await;
        assert_eq!(err["error"]["code"], code, "{frame} -> {err}");
    }
    // over REST the same
    let res = app
        .post_json("/api/v1/workflows/sleeper/runs", &json!({"params": {"secs": 1}}))
        .await;
    assert_eq!(res.status(), 409);

    // an administrator may cancel anyone's run
    let res = app
        .post_json(&format!("/api/v1/workflows/runs/{run_id}/cancel"), &json!({}))
        .await;
    assert_eq!(res.status(), 202);
    let (done, _) = until_complete(&mut a).await;
    assert_eq!(done["status"], "cancelled");
    sleep.ended("an administrator cancelled the run").await;
}

const PAUSER: &str = r#"
[[workflows]]
name = "pauser"
[[workflows.params]]
name = "table"
type = "string"
default = "orders"
[[workflows.steps]]
type = "pause"
message = "check the row count of {{table}}"
[[workflows.steps]]
type = "command"
server = "beta"
command = "echo after-the-pause"
"#;

#[tokio::test]
async fn a_pause_waits_for_a_confirmation_from_any_connection_of_the_user() {
    let setup = Setup::new();
    let (app, _servers) = app(&setup, PAUSER).await;
    let mut a = WsClient::stub(&app).await;
    let started = a
        .request(
            json!({"type": "workflow_run", "workflow": "pauser"}),
            "workflow_started",
        )
        .await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let (paused, before) = a.recv_until("workflow_paused").await;
    assert_eq!(paused["message"], "check the row count of orders");
    assert_eq!(paused["step"], 0);
    assert!(of_type(&before, "ssh_command_started").is_empty());
    let run = stored_with_status(&app, &run_id, "paused").await;
    assert_eq!(run["current_step"], 0);
    assert_eq!(lock_status(&app).await["workflow_run"]["run_id"], run_id.as_str());

    // the client that started it goes away: the run does not depend on it
    a.close().await;
    let mut other = WsClient::stub(&app).await;
    let confirmed = other
        .request(
            json!({"type": "workflow_confirm", "run_id": run_id, "request_id": "ok"}),
            "workflow_confirmed",
        )
        .await;
    assert_eq!(confirmed["step"], 0);
    assert_eq!(confirmed["request_id"], "ok");
    // the confirming connection watches the rest
    let (done, frames) = until_complete(&mut other).await;
    assert_eq!(done["status"], "succeeded");
    assert!(of_type(&frames, "ssh_output")
        .iter()
        .any(|f| f["data"].as_str().unwrap().contains("after-the-pause")));
    let run = stored_with_status(&app, &run_id, "succeeded").await;
    assert_eq!(run["steps"][0]["confirmed_by"], TEST_ADMIN);
    app.audit_events("action=workflow.confirm", 1).await;
    // a run no longer in flight cannot be confirmed
    let err = other
        .ask(
            json!({"type": "workflow_confirm", "run_id": run_id}),
            "workflow_confirmed",
        )
        .await;
    assert_eq!(err["error"]["code"], 10004);
}

#[tokio::test]
async fn a_reconnecting_browser_watches_a_run_it_did_not_start_and_others_may_not() {
    let setup = Setup::new();
    let (app, _servers) = app(&setup, PAUSER).await;
    // started over REST: no connection watches it
    let res = app
        .post_json(
            "/api/v1/workflows/pauser/runs",
            &json!({"params": {"table": "items"}}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let run_id = res.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    stored_with_status(&app, &run_id, "paused").await;

    // another user may not watch it, a viewer may not watch at all
    let olga = app.identity("olga", "operator", None).await;
    let mut other = WsClient::connect_with_token(&app, "/ws/v1/stub", &olga.token).await;
    let refused = other
        .ask(
            json!({"type": "workflow_watch", "run_id": run_id}),
            "workflow_state",
        )
        .await;
    assert_eq!(refused["error"]["code"], 10003, "{refused}");
    let vera = app.identity("vera", "viewer", None).await;
    let mut viewer = WsClient::connect_with_token(&app, "/ws/v1/stub", &vera.token).await;
    let refused = viewer
        .ask(
            json!({"type": "workflow_watch", "run_id": run_id}),
            "workflow_state",
        )
        .await;
    assert_eq!(refused["error"]["code"], 10003, "{refused}");

    // its user, on a new connection, is told where it stands, then follows it
    let mut mine = WsClient::stub(&app).await;
    let state = mine
        .request(
            json!({"type": "workflow_watch", "run_id": run_id, "request_id": "w"}),
            "workflow_state",
        )
        .await;
    assert_eq!(state["request_id"], "w");
    assert_eq!(state["status"], "paused", "{state}");
    assert_eq!(state["current_step"], 0, "{state}");
    let steps: Vec<&str> = state["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["paused", "pending"], "{state}");
    let res = app
        .post_json(&format!("/api/v1/workflows/runs/{run_id}/confirm"), &json!({}))
        .await;
    assert_eq!(res.status(), 200);
    let (done, frames) = until_complete(&mut mine).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["request_id"], "w", "the watch's frames answer its request");
    assert!(of_type(&frames, "workflow_confirmed").len() == 1, "{frames:?}");
    assert!(of_type(&frames, "ssh_output")
        .iter()
        .any(|f| f["data"].as_str().unwrap().contains("after-the-pause")));
    // once it ended it is history, not in flight
    let gone = mine
        .ask(
            json!({"type": "workflow_watch", "run_id": run_id}),
            "workflow_state",
        )
        .await;
    assert_eq!(gone["error"]["code"], 10004, "{gone}");
}

#[tokio::test]
async fn disconnecting_during_a_pause_under_ones_own_lock_cancels_the_run_and_frees_the_lock() {
    let setup = Setup::new();
    let (app, _servers) = app(&setup, PAUSER).await;
    let mut a = WsClient::stub(&app).await;
    a.start_session().await;
    let started = a
        .request(
            json!({"type": "workflow_run", "workflow": "pauser"}),
            "workflow_started",
        )
        .await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let (_, before) = a.recv_until("workflow_paused").await;
    // the caller keeps its lock; the lock names the run working under it
    // (a broadcast, not ordered with the run's frames)
    let named = |f: &Value| f["type"] == "session_status" && f["workflow_run"].is_object();
    let status = match before.into_iter().find(|f| named(f)) {
        Some(status) => status,
        None => loop {
            let (status, _) = a.recv_until("session_status").await;
            if named(&status) {
                break status;
            }
        },
    };
    assert_eq!(status["owner"], a.id.as_str());
    assert_eq!(status["workflow_run"]["run_id"], run_id.as_str());
    // its own task: a command is refused meanwhile
    a.send(json!({"type": "ssh_command", "server": "alpha", "command": "true"}))
        .await;
    assert_eq!(a.expect_error().await["error"]["code"], 50010);

    a.close().await;
    let run = eventually("the run is cancelled and the lock free", async || {
        let run = stored_run(&app, &run_id).await;
        let free = lock_status(&app).await["active"] == false;
        if run["status"] == "cancelled" && free {
            Ok(run)
        } else {
            Err(run)
        }
    })
    .await;
    assert_eq!(step_statuses(&run), ["cancelled", "skipped"]);
}

#[tokio::test]
async fn a_run_started_over_rest_pauses_until_confirmed_over_rest() {
    let setup = Setup::new();
    let (app, _servers) = app(&setup, PAUSER).await;
    let res = app
        .post_json(
            "/api/v1/workflows/pauser/runs",
            &json!({"params": {"table": "items"}}),
        )
        .await;
    assert_eq!(res.status(), 202);
    let run_id = res.json::<Value>().await.unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_owned();
    stored_with_status(&app, &run_id, "paused").await;
    let res = app
        .post_json(&format!("/api/v1/workflows/runs/{run_id}/confirm"), &json!({}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["step"], 0);
    let run = stored_with_status(&app, &run_id, "succeeded").await;
    assert_eq!(run["params"]["table"], "items");
    assert!(run["steps"][1]["output_tail"]
        .as_str()
        .unwrap()
        .contains("after-the-pause"));
    assert_eq!(lock_status(&app).await["active"], false);
}

#[tokio::test]
async fn an_unanswered_pause_expires_and_cancels_the_run() {
    let setup = Setup::new();
    let extra = r#"
[[workflows]]
name = "brief"
[[workflows.steps]]
type = "pause"
message = "quick"
timeout_s = 0.3
[[workflows.steps]]
type = "command"
server = "alpha"
command = "echo never"
"#;
    let (app, _servers) = app(&setup, extra).await;
    let mut c = WsClient::stub(&app).await;
    c.request(
        json!({"type": "workflow_run", "workflow": "brief"}),
        "workflow_started",
    )
    .await;
    let (done, frames) = until_complete(&mut c).await;
    assert_eq!(done["status"], "cancelled");
    assert_eq!(done["error"]["code"], 50016);
    assert!(of_type(&frames, "ssh_command_started").is_empty());
    assert_eq!(lock_status(&app).await["active"], false);
}

#[tokio::test]
async fn parameters_reach_commands_as_one_word_and_bad_values_start_nothing() {
    let setup = Setup::new();
    let marker = setup.tree.path("pwned");
    let extra = r#"
[[workflows]]
name = "echo"
[[workflows.params]]
name = "text"
type = "string"
[[workflows.params]]
name = "mode"
type = "enum"
values = ["a", "b"]
default = "a"
[[workflows.steps]]
type = "command"
server = "alpha"
command = '''printf '[%s]\n' {{text}} {{mode}}'''
"#;
    let (app, _servers) = app(&setup, extra).await;
    let mut c = WsClient::stub(&app).await;
    let hostile = format!("x; touch {marker}; $(touch {marker}) `touch {marker}` ' \" \\");
    // the plan shows exactly what will run, quoted
    let plan = c
        .request(
            json!({"type": "workflow_plan", "workflow": "echo", "params": {"text": hostile}}),
            "workflow_plan",
        )
        .await;
    let command = plan["steps"][0]["command"].as_str().unwrap();
    assert!(command.starts_with("printf '[%s]\\n' 'x; touch"), "{command}");
    c.request(
        json!({"type": "workflow_run", "workflow": "echo", "params": {"text": hostile}}),
        "workflow_started",
    )
    .await;
    let (done, frames) = until_complete(&mut c).await;
    assert_eq!(done["status"], "succeeded");
    let output: String = of_type(&frames, "ssh_output")
        .iter()
        .map(|f| f["data"].as_str().unwrap())
        .collect();
    assert!(output.contains(&format!("[{hostile}]")), "{output:?}");
    assert!(output.contains("[a]"), "{output:?}");
    assert!(
        !std::path::Path::new(&marker).exists(),
        "a parameter ran as shell text"
    );

    // values that fail their type, unknown names and workflows: refused,
    // nothing started, nothing stored
    let runs_before = app
        .get("/api/v1/workflows/runs")
        .await
        .json::<Value>()
        .await
        .unwrap();
    for (frame, code) in [
        (
            json!({"type": "workflow_run", "workflow": "seed", "params": {"table": "Orders; rm"}}),
            10001,
        ),
        (
            json!({"type": "workflow_run", "workflow": "seed", "params": {"table": "t", "parts": 101}}),
            10001,
        ),
        (
            json!({"type": "workflow_run", "workflow": "seed", "params": {"table": "t", "parts": 1.5}}),
            10001,
        ),
        (json!({"type": "workflow_run", "workflow": "seed"}), 10001),
        (
            json!({"type": "workflow_run", "workflow": "echo", "params": {"text": "t", "mode": "c"}}),
            10001,
        ),
        (
            json!({"type": "workflow_run", "workflow": "echo", "params": {"text": "t", "other": 1}}),
            10001,
        ),
        (json!({"type": "workflow_run", "workflow": "nope"}), 23002),
        (json!({"type": "workflow_plan", "workflow": "nope"}), 23002),
    ] {
        c.send(frame.clone()).await;
        let err = c.expect_error().await;
        assert_eq!(err["error"]["code"], code, "{frame} -> {err}");
    }
    let res = app
        .post_json(
            "/api/v1/workflows/seed/runs",
            &json!({"params": {"table": "x y"}}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let runs_after = app
        .get("/api/v1/workflows/runs")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(runs_before, runs_after);
    assert_eq!(lock_status(&app).await["active"], false);
}

#[tokio::test]
async fn a_run_cut_by_a_daemon_crash_is_kept_in_the_history_as_interrupted() {
    let setup = Setup::new();
    let (mut app, _servers) = app(&setup, PAUSER).await;
    let definitions: Value = app.get("/api/v1/workflows").await.json().await.unwrap();
    assert!(definitions
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["name"] == "pauser"));
    let mut c = WsClient::stub(&app).await;
    let finished = c
        .request(
            json!({"type": "workflow_run", "workflow": "seed", "params": {"table": "t", "parts": 1}}),
            "workflow_started",
        )
        .await;
    until_complete(&mut c).await;
    let started = c
        .request(
            json!({"type": "workflow_run", "workflow": "pauser"}),
            "workflow_started",
        )
        .await;
    c.recv_until("workflow_paused").await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    stored_with_status(&app, &run_id, "paused").await;
    drop(c);

    app.kill_and_restart().await;
    let run = stored_run(&app, &run_id).await;
    assert_eq!(run["status"], "interrupted");
    assert!(run["finished_at"].is_string());
    assert_eq!(step_statuses(&run), ["interrupted", "skipped"]);
    let done = stored_run(&app, finished["run_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "a finished run stays as it was");
    assert_eq!(lock_status(&app).await["active"], false);
}

#[tokio::test]
async fn a_run_ends_when_its_users_account_is_disabled() {
    let setup = Setup::new();
    let (app, _servers) = app(&setup, SLEEPER).await;
    let otto = app.identity("otto", "operator", None).await;
    let mut c = WsClient::connect_with_token(&app, "/ws/v1/stub", &otto.token).await;
    let started = c
        .request(
            json!({"type": "workflow_run", "workflow": "sleeper", "params": {"secs": 7334}}),
            "workflow_started",
        )
        .await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let sleep = RemoteProcess::started("sleep 7334").await;
    // otto's own connection closes at once; the run, not tied to it, is
    // cancelled because the account is gone
    let res = app
        .http
        .patch(app.url("/api/v1/users/otto"))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    sleep.ended("the starter's account was disabled").await;
    let run = eventually("the run is cancelled and the lock free", async || {
        let run = stored_run(&app, &run_id).await;
        let free = lock_status(&app).await["active"] == false;
        if run["status"] == "cancelled" && free {
            Ok(run)
        } else {
            Err(run)
        }
    })
    .await;
    assert_eq!(step_statuses(&run), ["cancelled", "skipped"]);
    let audit = app.audit_events("action=workflow.cancel", 1).await;
    assert_eq!(audit[0]["actor"], "system");
    assert!(audit[0]["detail"]["reason"]
        .as_str()
        .unwrap()
        .contains("disabled"));
}

#[tokio::test]
async fn a_watcher_that_stops_reading_does_not_stall_the_run() {
    let setup = Setup::new();
    let extra = r#"
[[workflows]]
name = "chatty"
[[workflows.steps]]
type = "pause"
message = "go?"
[[workflows.steps]]
type = "command"
server = "alpha"
command = "head -c 32000000 /dev/zero | tr '\\0' 'x' | fold -w 100; echo chatty-done"
"#;
    let (app, _servers) = app(&setup, extra).await;
    let mut starter = WsClient::stub(&app).await;
    let started = starter
        .request(
            json!({"type": "workflow_run", "workflow": "chatty"}),
            "workflow_started",
        )
        .await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    starter.recv_until("workflow_paused").await;
    // a second connection confirms (so it watches the rest) and then never
    // reads again
    let mut stalled = WsClient::stub(&app).await;
    stalled
        .send(json!({"type": "workflow_confirm", "run_id": run_id}))
        .await;
    // the starter reads everything: 32 MB of output, then the end
    let (done, frames) = until_complete(&mut starter).await;
    assert_eq!(done["status"], "succeeded");
    let output: usize = of_type(&frames, "ssh_output")
        .iter()
        .map(|f| f["data"].as_str().unwrap().len())
        .sum();
    assert!(output >= 32_000_000, "{output}");
    // the stalled watcher was dropped once it fell behind, not buffered
    // for: reading it now yields what was already on its way, never the
    // rest of the run nor its end. On its way: its feed's 4 MiB and what
    // the sockets took before they filled (loopback buffers grow to about
    // 4 MB sending and 6 MB receiving; measured 9-13 MB), well under the
    // 32 MB the run printed
    let mut late = 0;
    while let Some(frame) = stalled.try_recv(std::time::Duration::from_secs(2)).await {
        assert_ne!(
            frame["type"], "workflow_complete",
            "a dropped watcher got the end"
        );
        late += frame["data"].as_str().map_or(0, str::len);
    }
    assert!(late < 16_000_000, "the stalled watcher was sent {late} bytes");
}
