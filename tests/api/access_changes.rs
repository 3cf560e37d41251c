//! Access that changes reaches work already running (WAVE2, "Access that
//! changes"; issue 23 item 1), and reads follow the reader's servers (item
//! 2). Every test attacks one path an outside attacker used: an operator
//! limited to tag `web` keeps working on a `web` server after its tags were
//! narrowed to `db`, or keeps the lock after it was made a viewer.
//!
//! One sshd serves two names: `web-a` (tag `web`) and `db-b` (tag `db`),
//! so every remote process is the test user's, visible to `pgrep`.

use serde_json::{json, Value};

use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::fixtures::{hidden_files, TempTree};
use crate::support::poll::eventually;
use crate::support::remote::RemoteProcess;
use crate::support::sshd::{SshdOptions, SshdServer};
use crate::support::ws::WsClient;

/// `web-a` (tag `web`) and `db-b` (tag `db`) on one sshd, with `toml`
/// (transfers, workflows) in the servers file.
async fn app(toml: &str) -> (TestApp, SshdServer) {
    let sshd = SshdServer::start(SshdOptions::default());
    let mut web = ServerEntry::for_sshd("web-a", &sshd);
    web.extra = "tags = [\"web\"]\n".into();
    let mut db = ServerEntry::for_sshd("db-b", &sshd);
    db.extra = "tags = [\"db\"]\n".into();
    let app = TestApp::builder()
        .server(web)
        .server(db)
        .known_hosts(&sshd.known_hosts_line())
        .transfers_toml(toml)
        .spawn()
        .await;
    (app, sshd)
}

/// Narrows `user` to tag `db` from the command line: another process, seen
/// by the daemon's refresher (within its 1 s tick).
fn narrow_from_the_command_line(app: &TestApp, user: &str) {
    let (code, out, err) = app.cli(&["user", "servers", user, "db"], "");
    assert_eq!(code, Some(0), "{out} {err}");
}

/// Changes `user` over REST as the admin (effective before the reply).
async fn change_over_rest(app: &TestApp, user: &str, change: Value) {
    let res = app
        .http
        .patch(app.url(&format!("/api/v1/users/{user}")))
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// Reads until the 10010 answering `rid`; returns it and what came before.
async fn withdrawn(client: &mut WsClient, rid: &str) -> (Value, Vec<Value>) {
    let mut before = Vec::new();
    loop {
        let frame = client.recv().await;
        if frame["type"] == "error" && frame["error"]["code"] == 10010 && frame["request_id"] == rid {
            return (frame, before);
        }
        before.push(frame);
    }
}

/// The `access.withdrawn` audit row about `what`, once written.
async fn audit_row(app: &TestApp, what: &str) -> Value {
    eventually(&format!("an access.withdrawn row for the {what}"), async || {
        let rows: Value = app
            .get("/api/v1/audit?action=access.withdrawn&limit=100")
            .await
            .json()
            .await
            .unwrap();
        rows.as_array()
            .and_then(|rows| rows.iter().find(|r| r["detail"]["what"] == what).cloned())
    })
    .await
}

#[tokio::test]
async fn narrowing_an_operators_servers_stops_its_shell_with_10010_and_its_input_reaches_nothing() {
    let (app, _sshd) = app("").await;
    let ana = app.identity("ana", "operator", Some(&["web"])).await;
    let mut c = WsClient::connect_with_token(&app, "/ws/v1/stub", &ana.token).await;
    c.start_session().await;
    // an interactive shell: it prints what it reads, until told otherwise
    c.send(
        json!({"type": "ssh_command", "server": "web-a", "request_id": "sh",
                  "command": "while read l; do echo \"got:$l\"; done; sleep 1301.5"}),
    )
    .await;
    c.recv_until("ssh_command_started").await;
    c.send(json!({"type": "ssh_input", "data": "before\n"})).await;
    c.wait_for_output("got:before").await;
    let shell = RemoteProcess::started("while read l").await;

    narrow_from_the_command_line(&app, "ana");
    let (error, _) = withdrawn(&mut c, "sh").await;
    assert!(
        error["error"]["detail"].as_str().unwrap().contains("'web-a'"),
        "{error}"
    );
    let (done, _) = c.recv_until("ssh_command_complete").await;
    assert_eq!(done["request_id"], "sh");
    shell.ended("the shell outlived the narrowing").await;
    // what is typed now reaches no shell
    c.send(json!({"type": "ssh_input", "data": "after\n", "request_id": "in"}))
        .await;
    let refused = c.expect_error().await;
    assert_eq!(refused["request_id"], "in");
    assert!(
        refused["error"]["code"] == 50011 || refused["error"]["code"] == 10010,
        "{refused}"
    );
    // the lock stays: an operator on fewer servers may still hold it
    let session: Value = app.get("/api/v1/session").await.json().await.unwrap();
    assert_eq!(session["owner_user"], "ana", "{session}");
    let row = audit_row(&app, "ssh command").await;
    assert_eq!(
        (row["user"].as_str(), row["server"].as_str()),
        (Some("ana"), Some("web-a"))
    );
}

#[tokio::test]
async fn an_operator_made_a_viewer_loses_the_lock_with_10010_and_another_operator_takes_it() {
    let (app, _sshd) = app("").await;
    let ana = app.identity("ana", "operator", None).await;
    let bob = app.identity("bob", "operator", None).await;
    let mut c = WsClient::connect_with_token(&app, "/ws/v1/stub", &ana.token).await;
    c.start_session().await;
    c.send(json!({"type": "ssh_command", "server": "db-b", "command": "sleep 1302.5", "request_id": "s"}))
        .await;
    c.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started("sleep 1302.5").await;

    change_over_rest(&app, "ana", json!({"role": "viewer"})).await;
    // the command: 10010 and its end; the lock: 10010 and session_ended
    let (_, _) = withdrawn(&mut c, "s").await;
    let mut frames = Vec::new();
    while !frames.iter().any(|f: &Value| f["type"] == "session_ended") {
        frames.push(c.recv().await);
    }
    let lock_error = frames
        .iter()
        .find(|f| f["type"] == "error" && f["request_id"].is_null())
        .unwrap_or_else(|| panic!("no 10010 for the lock: {frames:?}"));
    assert_eq!(lock_error["error"]["code"], 10010, "{lock_error}");
    let kinds: Vec<&str> = frames.iter().filter_map(|f| f["type"].as_str()).collect();
    let complete = kinds.iter().position(|k| *k == "ssh_command_complete");
    let ended = kinds.iter().position(|k| *k == "session_ended");
    assert!(
        complete.is_some() && complete < ended,
        "released under a running command: {kinds:?}"
    );
    sleeper.ended("the command outlived the demotion").await;

    let mut b = WsClient::connect_with_token(&app, "/ws/v1/stub", &bob.token).await;
    b.start_session().await;
    // and ana, a viewer now, may not take it back
    c.send(json!({"type": "start_session", "request_id": "again"}))
        .await;
    assert_eq!(c.expect_error().await["error"]["code"], 10003);
    audit_row(&app, "session lock").await;
}

const PAUSED: &str = r#"
[[workflows]]
name = "paused"
[[workflows.params]]
name = "dir"
type = "string"
[[workflows.steps]]
type = "command"
server = "web-a"
command = "touch {{dir}}/before"
[[workflows.steps]]
type = "pause"
message = "go on?"
[[workflows.steps]]
type = "batch"
servers = ["web-a"]
commands = ["touch {{dir}}/after"]
"#;

#[tokio::test]
async fn a_paused_workflow_of_a_narrowed_operator_ends_with_10010_and_its_later_step_never_runs() {
    let (app, _sshd) = app(PAUSED).await;
    let tree = TempTree::for_test_user("access-wf");
    let ana = app.identity("ana", "operator", Some(&["web"])).await;
    let mut c = WsClient::connect_with_token(&app, "/ws/v1/stub", &ana.token).await;
    let started = c
        .request(
            json!({"type": "workflow_run", "workflow": "paused", "params": {"dir": tree.root()}}),
            "workflow_started",
        )
        .await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    c.recv_until("workflow_paused").await;
    assert!(tree.join("before").exists(), "the first step ran");

    narrow_from_the_command_line(&app, "ana");
    let (complete, _) = c.recv_until("workflow_complete").await;
    assert_eq!(complete["status"], "cancelled", "{complete}");
    assert_eq!(complete["error"]["code"], 10010, "{complete}");
    // a confirmation after that finds nothing to confirm
    c.send(json!({"type": "workflow_confirm", "run_id": run_id, "request_id": "go"}))
        .await;
    let late = c.expect_error().await;
    assert_eq!(late["error"]["code"], 10004, "{late}");
    assert!(
        !tree.join("after").exists(),
        "the batch step ran on a server out of scope"
    );
    // the history says why (read as the admin: ana may no longer read it)
    let run: Value = app
        .get(&format!("/api/v1/workflows/runs/{run_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "cancelled");
    assert_eq!(run["error"]["code"], 10010, "{run}");
    let res = app
        .anon
        .get(app.url(&format!("/api/v1/workflows/runs/{run_id}")))
        .bearer_auth(&ana.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "a run on web-a is off ana's servers now");
}

#[tokio::test]
async fn a_batch_run_a_script_and_a_diff_on_a_server_out_of_a_narrowed_scope_stop_with_10010() {
    let (app, _sshd) = app("").await;
    let ana = app.identity("ana", "operator", Some(&["web"])).await;
    let mut bmx4 = WsClient::connect_with_token(&app, "/ws/v1/bmx4", &ana.token).await;
    bmx4.request(
        json!({"type": "batch_execute", "servers": ["web-a"], "commands": ["sleep 1303.5"], "request_id": "b"}),
        "batch_started",
    )
    .await;
    let batch = RemoteProcess::started("sleep 1303.5").await;
    let mut bmx5 = WsClient::connect_with_token(&app, "/ws/v1/bmx5", &ana.token).await;
    bmx5.request(
        json!({"type": "script_execute", "server": "web-a", "script": "sleep 1304.5", "request_id": "s"}),
        "script_started",
    )
    .await;
    let script = RemoteProcess::started("sleep 1304.5").await;
    let mut diff = WsClient::connect_with_token(&app, "/ws/v1/diff", &ana.token).await;
    diff.send(
        json!({"type": "diff_command", "left_server": "web-a", "right_server": "web-a",
                     "command": "sleep 1305.5", "request_id": "d"}),
    )
    .await;
    let compare = RemoteProcess::started("sleep 1305.5").await;

    narrow_from_the_command_line(&app, "ana");
    withdrawn(&mut bmx4, "b").await;
    let (done, _) = bmx4.recv_until("batch_complete").await;
    assert_eq!(done["request_id"], "b");
    withdrawn(&mut bmx5, "s").await;
    let (done, _) = bmx5.recv_until("script_complete").await;
    assert_eq!(done["reason"], "cancelled", "{done}");
    withdrawn(&mut diff, "d").await;
    batch.ended("the batch command outlived the narrowing").await;
    script.ended("the script outlived the narrowing").await;
    compare.ended("the diff's command outlived the narrowing").await;
    for what in ["batch run", "script", "diff"] {
        audit_row(&app, what).await;
    }
}

#[tokio::test]
async fn a_transfer_whose_destination_left_the_operators_servers_stops_with_10010_and_leaves_no_part_file() {
    let tree = TempTree::for_test_user("access-scp");
    tree.mkdir("src");
    let dst = tree.mkdir("dst");
    // 256 MiB: long enough to be cut in the middle
    tree.write("src/big.dat", vec![7u8; 256 * 1024 * 1024]);
    let toml = format!(
        "[[transfers]]\nname = \"big\"\nsource_server = \"web-a\"\nsource_glob = {:?}\n\
         destination_server = \"web-a\"\ndestination_dir = {dst:?}\n",
        tree.path("src/*.dat"),
    );
    let (app, _sshd) = app(&toml).await;
    let ana = app.identity("ana", "operator", Some(&["web"])).await;
    let mut c = WsClient::connect_with_token(&app, "/ws/v1/stub", &ana.token).await;
    c.start_session().await;
    c.send(json!({"type": "scp_transfer", "transfer_name": "big", "request_id": "t"}))
        .await;
    c.recv_until("scp_progress").await;
    eventually("the transfer's temporary file exists", async || {
        !hidden_files(&dst).is_empty()
    })
    .await;

    change_over_rest(&app, "ana", json!({"servers": ["db"]})).await;
    withdrawn(&mut c, "t").await;
    let (end, _) = c.recv_until("scp_cancelled").await;
    assert_eq!(end["request_id"], "t");
    assert_eq!(
        hidden_files(&dst),
        Vec::<String>::new(),
        "a partial file was left"
    );
    assert!(!tree.join("dst/big.dat").exists(), "the copy completed anyway");
    audit_row(&app, "transfer").await;
}

/// Every history route the access table limits to the reader's servers
/// (its note says so), walked with an operator limited to `web`: a batch
/// run and a workflow run on `db-b` are neither listed nor readable (404);
/// the ones on `web-a` are; the admin reads all of them.
#[tokio::test]
async fn history_is_filtered_by_the_readers_servers_on_every_route_the_table_says_so() {
    const ECHO: &str = r#"
[[workflows]]
name = "on-web-a"
[[workflows.steps]]
type = "batch"
servers = ["web-a"]
commands = ["true"]

[[workflows]]
name = "on-db-b"
[[workflows.steps]]
type = "batch"
servers = ["db-b"]
commands = ["true"]
"#;
    let (app, _sshd) = app(ECHO).await;
    let ana = app.identity("ana", "operator", Some(&["web"])).await;
    let mut bmx4 = WsClient::connect(&app, "/ws/v1/bmx4").await;
    let mut batch = std::collections::BTreeMap::new();
    let mut workflow = std::collections::BTreeMap::new();
    for server in ["web-a", "db-b"] {
        let started = bmx4
            .request(
                json!({"type": "batch_execute", "servers": [server], "commands": ["true"]}),
                "batch_started",
            )
            .await;
        bmx4.recv_until("batch_complete").await;
        batch.insert(server, started["run_id"].as_str().unwrap().to_owned());
        let res = app
            .post_json(&format!("/api/v1/workflows/on-{server}/runs"), &json!({}))
            .await;
        assert_eq!(res.status(), 202);
        let run_id = res.json::<Value>().await.unwrap()["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        eventually("the workflow run ends", async || {
            let run: Value = app
                .get(&format!("/api/v1/workflows/runs/{run_id}"))
                .await
                .json()
                .await
                .ok()?;
            (run["status"] == "succeeded").then_some(())
        })
        .await;
        workflow.insert(server, run_id);
    }

    let security = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md")).unwrap();
    let routes: Vec<&str> = security
        .lines()
        .filter(|l| l.contains("reader's servers' tags"))
        .filter_map(|l| l.split('`').nth(1))
        .collect();
    assert_eq!(routes.len(), 4, "{routes:?}");
    let as_ana = |path: String| {
        let req = app.anon.get(app.url(&path)).bearer_auth(&ana.token);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for route in routes {
        let path = route.trim_start_matches("GET ");
        let runs = if path.contains("/bmx4/") {
            &batch
        } else {
            &workflow
        };
        if path.ends_with("{run_id}") {
            let (status, _) = as_ana(path.replace("{run_id}", &runs["db-b"])).await;
            assert_eq!(status, 404, "{path}: a run on db-b is shown to ana");
            let (status, _) = as_ana(path.replace("{run_id}", &runs["web-a"])).await;
            assert_eq!(status, 200, "{path}: ana's own server");
            let res = app.get(&path.replace("{run_id}", &runs["db-b"])).await;
            assert_eq!(res.status(), 200, "{path}: the admin reads all");
        } else {
            let (status, listed) = as_ana(path.to_owned()).await;
            assert_eq!(status, 200, "{path}");
            let ids: Vec<&str> = listed
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["run_id"].as_str())
                .collect();
            assert_eq!(ids, [runs["web-a"].as_str()], "{path}");
            let all: Value = app.get(path).await.json().await.unwrap();
            assert_eq!(all.as_array().unwrap().len(), 2, "{path}: the admin lists all");
        }
    }
}

/// The frame of type `kind`, after at most the 10010 that says why.
async fn after_10010(t: &mut crate::support::term::Terms, kind: &str) -> Value {
    loop {
        let f = t.until(kind).await;
        if f["type"] == kind {
            return f;
        }
        assert_eq!(f["error"]["code"], 10010, "{f}");
    }
}

#[tokio::test]
async fn terminals_shares_and_watches_are_judged_again_when_access_changes() {
    use crate::support::term::Terms;
    let (app, _sshd) = app("").await;
    let ann = app.identity("ann", "operator", Some(&["web"])).await;
    let bob = app.identity("bob", "operator", Some(&["web"])).await;
    let vic = app.identity("vic", "viewer", Some(&["web"])).await;
    let mut a = Terms::connect(&app, &ann.token).await;
    let (id, pty_id) = a.open("web-a").await;
    for (user, mode) in [("bob", "type"), ("vic", "watch")] {
        a.ask(
            json!({"type": "terminal_share", "terminal_id": id, "user": user, "mode": mode}),
            "terminal_shared",
        )
        .await;
    }
    let mut b = Terms::connect(&app, &bob.token).await;
    b.ask(
        json!({"type": "terminal_attach", "terminal_id": id}),
        "terminal_attached",
    )
    .await;
    let mut v = Terms::connect(&app, &vic.token).await;
    v.ask(
        json!({"type": "terminal_watch", "pty_id": pty_id}),
        "terminal_watching",
    )
    .await;

    // bob becomes a viewer: he may still watch, no longer type
    change_over_rest(&app, "bob", json!({"role": "viewer"})).await;
    let detached = after_10010(&mut b, "terminal_detached").await;
    assert_eq!(detached["error"]["code"], 10010, "{detached}");
    // vic loses the server: his watch ends, and the share is gone
    change_over_rest(&app, "vic", json!({"servers": ["db"]})).await;
    let ended = after_10010(&mut v, "pty_watch_ended").await;
    assert_eq!(ended["reason"], "withdrawn", "{ended}");
    // the share goes in the terminal warden's own step, which may come
    // after vic's connection told him: awaited, bounded
    eventually("vic's share withdrawn", async || {
        let list = a.ask(json!({"type": "terminal_list"}), "terminal_list").await;
        let shared = &list["terminals"][0]["shared_with"];
        if *shared == json!([{"user": "bob", "mode": "type"}]) {
            Ok(())
        } else {
            Err(list.to_string())
        }
    })
    .await;

    // ann loses the server: her terminal closes, the remote shell with it
    a.type_in(&id, "sleep 7304.5\n").await;
    let sleep = RemoteProcess::started("sleep 7304.5").await;
    change_over_rest(&app, "ann", json!({"servers": ["db"]})).await;
    let closed = a.until("terminal_closed").await;
    assert_eq!(closed["reason"], "access_changed", "{closed}");
    assert_eq!(closed["error"]["code"], 10010);
    sleep.ended("the owner lost the terminal's server").await;
    let row = audit_row(&app, "terminal").await;
    assert_eq!(row["user"], "ann", "{row}");
}
