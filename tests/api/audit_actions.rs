//! Every remote action leaves an audit row, over the WebSocket and over
//! REST alike, read back through `GET /api/v1/audit`; and a client string
//! with a newline stays on one log line; work a leaving client cuts off
//! still gets its end row. (SFTP changes and scripts have their rows checked
//! next to their own tests in `bmx5/`.)

use serde_json::{json, Value};

use crate::support::daemon::TestApp;
use crate::support::fixtures::{with_servers, TempTree};
use crate::support::poll::eventually;
use crate::support::remote::RemoteProcess;
use crate::support::ws::WsClient;

/// The row of `action` whose text mentions `marker`, once it is written
/// (rows are written without holding up replies).
async fn row(app: &TestApp, action: &str, marker: &str) -> Value {
    let path = format!("/api/v1/audit?limit=1000&action={action}");
    eventually(&format!("a {action} row with {marker}"), async || {
        let rows: Value = app.get(&path).await.json().await.expect("audit JSON");
        rows.as_array()
            .and_then(|rows| rows.iter().find(|r| r.to_string().contains(marker)))
            .cloned()
    })
    .await
}

#[tokio::test]
async fn every_diff_writes_its_audit_row_over_the_websocket_and_over_rest() {
    let (builder, _servers) = with_servers(["left", "right"]);
    let app = builder.spawn().await;
    let tree = TempTree::for_test_user("audit-diff");
    let (l, r) = (tree.write("l.txt", "a\n"), tree.write("r.txt", "b\n"));
    let (ld, rd) = (tree.mkdir("ld"), tree.mkdir("rd"));
    let files = |path_l: &str| json!({"left": {"server": "left", "path": path_l}, "right": {"server": "right", "path": r}});
    let dirs = json!({"left": {"server": "left", "path": ld}, "right": {"server": "right", "path": rd}});
    let command = |marker: &str| json!({"command": format!("echo {marker}"), "left_server": "left", "right_server": "right"});

    let mut ws = WsClient::connect(&app, "/ws/v1/diff").await;
    let mut frame = files(&l);
    frame["type"] = json!("diff_files");
    ws.request(frame, "diff_result").await;
    let mut frame = dirs.clone();
    frame["type"] = json!("diff_dirs");
    ws.request(frame, "diff_dirs_result").await;
    let mut frame = command("over-ws-5a1f");
    frame["type"] = json!("diff_command");
    ws.request(frame, "diff_command_result").await;
    for (path, body) in [
        ("/api/v1/diff/files", files(&l)),
        ("/api/v1/diff/dirs", dirs),
        ("/api/v1/diff/command", command("over-rest-5a1f")),
    ] {
        let res = app.post_json(path, &body).await;
        assert_eq!(res.status(), 200, "{path}: {}", res.text().await.unwrap());
    }

    for action in ["diff.files", "diff.dirs"] {
        let rows = app.audit_events(&format!("action={action}"), 2).await;
        assert_eq!(rows.len(), 2, "{action}: {rows:?}");
        let actors: Vec<&str> = rows.iter().map(|r| r["actor"].as_str().unwrap()).collect();
        assert!(
            actors.contains(&"rest") && actors.iter().any(|a| *a != "rest"),
            "{actors:?}"
        );
        for r in &rows {
            assert_eq!(r["server"], "left", "{r}");
            assert_eq!(r["detail"]["right"]["server"], "right", "{r}");
            assert!(r["user"].is_string(), "{r}");
        }
    }
    let files_row = row(&app, "diff.files", &l).await;
    assert_eq!(files_row["detail"]["left"]["path"], l.as_str());
    assert_eq!(files_row["detail"]["right"]["path"], r.as_str());
    let dirs_row = row(&app, "diff.dirs", &ld).await;
    assert_eq!(dirs_row["detail"]["right"]["path"], rd.as_str());
    let over_ws = row(&app, "diff.command", "over-ws-5a1f").await;
    assert_eq!(over_ws["command"], "echo over-ws-5a1f", "{over_ws}");
    assert_ne!(over_ws["actor"], "rest");
    let over_rest = row(&app, "diff.command", "over-rest-5a1f").await;
    assert_eq!(over_rest["command"], "echo over-rest-5a1f", "{over_rest}");
    assert_eq!(over_rest["actor"], "rest");
    assert_eq!(over_rest["detail"]["left"]["server"], "left", "{over_rest}");
}

#[tokio::test]
async fn a_path_with_a_newline_stays_on_one_log_line_with_the_newline_escaped() {
    let (builder, _servers) = with_servers(["left", "right"]);
    let app = builder.spawn().await;
    let tree = TempTree::for_test_user("audit-newline");
    let right = tree.write("r.txt", "b\n");
    // what a forger would want on a line of its own
    let forged = "FORGED-9c2e diff done";
    let path = tree.path(&format!("x\n{forged}"));

    let res = app
        .post_json(
            "/api/v1/diff/files",
            &json!({"left": {"server": "left", "path": path}, "right": {"server": "right", "path": right}}),
        )
        .await;
    assert_eq!(res.status(), 404, "the left file does not exist");

    // the diff's row (written before it ran) carries the path as it was
    let audited = row(&app, "diff.files", forged).await;
    assert_eq!(audited["detail"]["left"]["path"], path.as_str());
    let logs = app.logs_settled().await;
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains(forged)).collect();
    assert!(
        !lines.is_empty(),
        "the path was never logged, so this proves nothing"
    );
    for line in &lines {
        assert!(line.contains(&format!("x\\n{forged}")), "not escaped: {line}");
        assert!(!line.starts_with(forged), "{line}");
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(parsed.to_string().contains(forged));
    }
}

#[tokio::test]
async fn work_a_leaving_client_cuts_off_gets_its_end_row_and_is_not_taken_for_a_crash() {
    let (builder, _servers) = with_servers(["alpha"]);
    let mut app = builder.spawn().await;
    let command = format!("sleep 1093.{}", app.port);
    let mut stub = WsClient::stub(&app).await;
    stub.start_session().await;
    stub.send(json!({"type": "ssh_command", "server": "alpha", "command": command}))
        .await;
    stub.recv_until("ssh_command_started").await;
    let mut scripts = WsClient::connect(&app, "/ws/v1/bmx5").await;
    let marker = format!("sleep 1094.{}", app.port);
    scripts
        .send(json!({"type": "script_execute", "server": "alpha", "script": format!("{marker}\n")}))
        .await;
    scripts.recv_until("script_started").await;
    let running = [
        RemoteProcess::started(&command).await,
        RemoteProcess::started(&marker).await,
    ];
    stub.close().await;
    scripts.close().await;
    for process in running {
        process.ended("the work outlived its client").await;
    }

    let end = row(&app, "ssh.command.end", &command).await;
    assert_eq!(end["detail"]["reason"], "disconnected", "{end}");
    // (an inline script's row names it "(inline)", not its text)
    let end = row(&app, "script.end", "disconnected").await;
    assert_eq!(end["server"], "alpha", "{end}");

    // the next daemon finds every start ended: nothing to mark interrupted
    app.kill_and_restart().await;
    for action in ["ssh.command.interrupted", "script.interrupted"] {
        let rows: Value = app
            .get(&format!("/api/v1/audit?action={action}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(rows, json!([]), "{action}");
    }
}
