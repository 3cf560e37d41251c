//! Command policy end to end (issue 27): `[[command_rules]]` that deny,
//! allow or hold a command for a second person's approval, on every path
//! that runs a command from a string, and at an interactive prompt; real
//! daemon, real sshd.
//!
//! The commands that a rule matches are harmless on purpose: `echo rm -rf
//! /` holds the words `rm -rf /` (a `words` rule matches them anywhere in
//! one command), and `touch <marker>` before it shows whether the command
//! ran. Each test first proves the same command runs where no rule stops
//! it (its marker appears), then that it left no marker where one did.

use serde_json::{json, Value};

use crate::support::daemon::{Identity, TestApp, TestAppBuilder};
use crate::support::fixtures::TempTree;
use crate::support::sshd::{SshdOptions, SshdServer};
use crate::support::term::Terms;
use crate::support::ws::WsClient;

/// A deny rule for `rm -rf /` on `prod` servers, and a review rule for
/// `systemctl restart` anywhere.
pub(crate) const RULES: &str = r#"
[[command_rules]]
name = "no-root-wipe"
words = ["rm -rf /", "mkfs"]
tags = ["prod"]
action = "deny"
message = "never on production"

[[command_rules]]
name = "restarts"
regex = "systemctl\\s+restart"
action = "review"
message = "a second person checks restarts"
"#;

/// One sshd seen as two servers: `prod1` (tagged `prod`) and `dev1`.
pub(crate) fn two_names(sshd: &SshdServer, extra: &str) -> TestAppBuilder {
    TestApp::builder()
        .sshd_with("prod1", sshd, "tags = [\"prod\"]")
        .sshd("dev1", sshd)
        .transfers_toml(extra)
}

/// `touch <marker> && echo rm -rf /`: matched by `no-root-wipe`, harmless.
pub(crate) fn wipe(tree: &TempTree, marker: &str) -> String {
    format!("touch {} && echo rm -rf /", tree.path(marker))
}

fn exists(tree: &TempTree, marker: &str) -> bool {
    tree.join(marker).exists()
}

/// A STUB connection of `who` holding the lock.
async fn stub_as(app: &TestApp, who: &Identity) -> WsClient {
    let mut c = WsClient::connect_with_token(app, "/ws/v1/stub", &who.token).await;
    c.start_session().await;
    c
}

/// The next frame of type `kind`, skipping everything else but errors
/// (which fail the test).
async fn next_of(c: &mut WsClient, kind: &str) -> Value {
    loop {
        let f = c.recv().await;
        if f["type"] == kind {
            return f;
        }
        assert_ne!(f["type"], "error", "waiting for {kind}: {f}");
    }
}

#[tokio::test]
async fn a_deny_rule_refuses_on_tagged_servers_in_stub_bmx4_diff_and_workflows_and_nothing_runs() {
    let tree = TempTree::for_test_user("policy-deny");
    let sshd = SshdServer::start(SshdOptions::default());
    let workflow = format!(
        r#"
[[workflows]]
name = "wipe_prod"
[[workflows.steps]]
type = "command"
name = "wipe"
server = "prod1"
command = '''{}'''
"#,
        wipe(&tree, "wf-prod")
    );
    let app = two_names(&sshd, &format!("{RULES}{workflow}")).spawn().await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;

    // STUB: runs on dev1, refused on prod1 with the rule's name and message
    let (out, _, done) = c.run("dev1", &wipe(&tree, "stub-dev")).await;
    assert_eq!(done["exit_status"], 0, "{done}");
    assert!(out.contains("rm -rf /"), "{out:?}");
    assert!(exists(&tree, "stub-dev"));
    let refused = c
        .ask(
            json!({"type": "ssh_command", "server": "prod1", "command": wipe(&tree, "stub-prod"), "request_id": "s1"}),
            "ssh_command_started",
        )
        .await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["error"]["code"], 55000, "{refused}");
    assert_eq!(refused["request_id"], "s1");
    let detail = refused["error"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("no-root-wipe") && detail.contains("never on production"),
        "{detail}"
    );

    // BMX4: the prod1 command fails unrun, dev1's runs
    let mut b = WsClient::connect(&app, "/ws/v1/bmx4").await;
    b.send(json!({"type": "batch_execute", "servers": ["prod1", "dev1"],
        "commands": [wipe(&tree, "batch-$$")], "request_id": "b1"}))
        .await;
    let mut results = Vec::new();
    loop {
        let f = b.recv().await;
        match f["type"].as_str() {
            Some("batch_command_result") => results.push(f),
            Some("batch_complete") => break,
            _ => {}
        }
    }
    let prod = results.iter().find(|r| r["server"] == "prod1").unwrap();
    let dev = results.iter().find(|r| r["server"] == "dev1").unwrap();
    assert_eq!(prod["status"], "failed", "{prod}");
    assert_eq!(prod["error"]["code"], 55000, "{prod}");
    assert_eq!(prod["attempts"], 0, "{prod}");
    assert_eq!(dev["status"], "succeeded", "{dev}");
    // one marker (named by the shell's pid): dev1's
    let batch_markers: Vec<String> = tree
        .entries()
        .into_iter()
        .filter(|e| e.starts_with("batch-"))
        .collect();
    assert_eq!(batch_markers.len(), 1, "{batch_markers:?}");

    // DIFF over WebSocket and REST: refused before anything runs
    let mut d = WsClient::connect(&app, "/ws/v1/diff").await;
    let frame = json!({"type": "diff_command", "command": wipe(&tree, "diff-ws"),
        "left_server": "dev1", "right_server": "prod1", "request_id": "d1"});
    let reply = d.ask(frame, "diff_command_result").await;
    assert_eq!(reply["error"]["code"], 55000, "{reply}");
    let res = app
        .post_json(
            "/api/v1/diff/command",
            &json!({"command": wipe(&tree, "diff-rest"), "left_server": "prod1", "right_server": "dev1"}),
        )
        .await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 55000, "{body}");

    // workflows: the plan and the run are refused, over WebSocket and REST
    let plan = c
        .ask(
            json!({"type": "workflow_plan", "workflow": "wipe_prod"}),
            "workflow_plan",
        )
        .await;
    assert_eq!(plan["error"]["code"], 55000, "{plan}");
    let run = c
        .ask(
            json!({"type": "workflow_run", "workflow": "wipe_prod"}),
            "workflow_started",
        )
        .await;
    assert_eq!(run["error"]["code"], 55000, "{run}");
    let res = app
        .post_json("/api/v1/workflows/wipe_prod/runs", &json!({"params": {}}))
        .await;
    assert_eq!(res.status(), 403);

    for marker in ["stub-prod", "diff-ws", "diff-rest", "wf-prod"] {
        assert!(!exists(&tree, marker), "{marker} ran");
    }
    // every refusal is an audit row naming its rule
    let rows = app.audit_events("action=command.denied", 6).await;
    assert!(
        rows.iter()
            .all(|r| r["target"] == "no-root-wipe" && r["outcome"] == "refused"),
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r["code"] == 55000), "{rows:?}");
}

#[tokio::test]
async fn a_review_rule_holds_a_command_until_a_second_user_approves_and_rejections_run_nothing() {
    let tree = TempTree::for_test_user("policy-review");
    let sshd = SshdServer::start(SshdOptions::default());
    let app = two_names(&sshd, RULES).spawn().await;
    let ana = app.identity("ana", "operator", None).await;
    let bo = app.identity("bo", "operator", None).await;
    // the test admin approves; connected before the hold, it is told
    let mut admin = WsClient::stub(&app).await;
    let mut c = stub_as(&app, &ana).await;
    let restart = |marker: &str| format!("touch {} && echo systemctl restart x", tree.path(marker));

    c.send(
        json!({"type": "ssh_command", "server": "dev1", "command": restart("approved"), "request_id": "r1"}),
    )
    .await;
    let held = next_of(&mut c, "command_held").await;
    assert_eq!(held["request_id"], "r1");
    assert_eq!(held["rule"], "restarts");
    assert_eq!(held["command"], restart("approved"));
    let held_id = held["held_id"].as_str().unwrap().to_owned();
    let asked = next_of(&mut admin, "command_review_requested").await;
    assert_eq!(asked["held_id"], held_id.as_str());
    assert_eq!(asked["user"], "ana");
    assert_eq!(asked["server"], "dev1");

    // the queue as the admin sees it over REST; a second operator is no
    // approver, and nothing has run
    let queue: Value = app.get("/api/v1/command-reviews").await.json().await.unwrap();
    assert_eq!(queue[0]["held_id"], held_id.as_str(), "{queue}");
    // nor does the queue show it to him
    let his: Value = reqwest::Client::new()
        .get(app.url("/api/v1/command-reviews"))
        .bearer_auth(&bo.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(his, json!([]), "another operator sees nobody's holds");
    let mut other = WsClient::connect_with_token(&app, "/ws/v1/stub", &bo.token).await;
    let refused = other
        .ask(
            json!({"type": "command_review", "held_id": held_id, "decision": "approve"}),
            "command_reviewed",
        )
        .await;
    assert_eq!(refused["error"]["code"], 55005, "{refused}");
    assert!(!exists(&tree, "approved"));

    let answered = admin
        .request(
            json!({"type": "command_review", "held_id": held_id, "decision": "approve", "comment": "ok, change 42"}),
            "command_reviewed",
        )
        .await;
    assert_eq!(answered["decision"], "approve");
    next_of(&mut c, "command_released").await;
    let (out, _, done) = c.collect_until_complete().await;
    assert_eq!(done["exit_status"], 0, "{done} {out}");
    assert!(exists(&tree, "approved"));

    // a rejection over REST, with a comment: refused unrun
    c.send(
        json!({"type": "ssh_command", "server": "dev1", "command": restart("rejected"), "request_id": "r2"}),
    )
    .await;
    let held = next_of(&mut c, "command_held").await;
    let held_id2 = held["held_id"].as_str().unwrap().to_owned();
    let res = app
        .post_json(
            &format!("/api/v1/command-reviews/{held_id2}"),
            &json!({"decision": "reject", "comment": "not now"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let (_, _, ended) = c.collect_until_complete().await;
    assert_eq!(ended["error"]["error"]["code"], 55001, "{ended}");
    assert!(
        ended["error"]["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("not now"),
        "{ended}"
    );
    assert!(!exists(&tree, "rejected"));
    // answered once only
    let again = app
        .post_json(
            &format!("/api/v1/command-reviews/{held_id2}"),
            &json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(again.status(), 404);

    // an admin's own command: an admin may approve others, never their own
    c.request(json!({"type": "end_session"}), "session_ended").await;
    let mut mine = WsClient::stub(&app).await;
    mine.start_session().await;
    mine.send(json!({"type": "ssh_command", "server": "dev1", "command": restart("own")}))
        .await;
    let held = next_of(&mut mine, "command_held").await;
    let own_id = held["held_id"].as_str().unwrap().to_owned();
    let res = app
        .post_json(
            &format!("/api/v1/command-reviews/{own_id}"),
            &json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 55003, "{body}");
    // cancelled while held: the hold is withdrawn, nothing ran
    mine.send(json!({"type": "cancel"})).await;
    mine.recv_until("ssh_command_complete").await;
    assert!(!exists(&tree, "own"));
    let rows = app.audit_events("action=command.review.withdrawn", 1).await;
    assert_eq!(rows[0]["target"], own_id.as_str());

    // the audit trail names the requester and the approver
    let approved = app.audit_events("action=command.approved", 1).await;
    assert_eq!(approved[0]["user"], crate::support::daemon::TEST_ADMIN);
    assert_eq!(approved[0]["detail"]["requester"], "ana");
    assert_eq!(
        approved[0]["detail"]["approver"],
        crate::support::daemon::TEST_ADMIN
    );
    assert_eq!(approved[0]["detail"]["comment"], "ok, change 42");
    let rejected = app.audit_events("action=command.rejected", 1).await;
    assert_eq!(rejected[0]["detail"]["requester"], "ana");
    assert_eq!(rejected[0]["code"], 55001);
    let holds = app.audit_events("action=command.held", 3).await;
    assert!(holds.iter().any(|r| r["user"] == "ana"), "{holds:?}");
}

#[tokio::test]
async fn an_unanswered_review_times_out_and_the_command_never_runs() {
    let tree = TempTree::for_test_user("policy-timeout");
    let sshd = SshdServer::start(SshdOptions::default());
    let app = two_names(&sshd, RULES)
        .env("PINKPAGE_REVIEW_TIMEOUT_S", "1")
        .spawn()
        .await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    let command = format!("touch {} && echo systemctl restart x", tree.path("late"));
    c.send(json!({"type": "ssh_command", "server": "dev1", "command": command}))
        .await;
    let held = next_of(&mut c, "command_held").await;
    let (_, _, ended) = c.collect_until_complete().await;
    assert_eq!(ended["error"]["error"]["code"], 55002, "{ended}");
    assert!(!exists(&tree, "late"));
    let rows = app.audit_events("action=command.review.timeout", 1).await;
    assert_eq!(rows[0]["target"], held["held_id"]);
    let queue: Value = app.get("/api/v1/command-reviews").await.json().await.unwrap();
    assert_eq!(queue, json!([]), "a timed-out hold leaves the queue");
}

#[tokio::test]
async fn a_denied_line_typed_at_a_prompt_does_not_run_and_the_next_prompt_appears() {
    let tree = TempTree::for_test_user("policy-typed");
    let sshd = SshdServer::start(SshdOptions::default());
    let app = two_names(&sshd, RULES).spawn().await;
    let ana = app.identity("ana", "operator", None).await;
    let mut t = Terms::connect(&app, &ana.token).await;
    let (id, _) = t.open("prod1").await;
    // a prompt of our own, to see each new one
    t.type_in(&id, "PS1='P''OL> '\r").await;
    let seen = t.output(&id, "POL> ").await.len();

    // an allowed line runs, echoed as typed
    t.type_in(&id, &format!("touch {}\r", tree.path("allowed"))).await;
    let seen = t.output_after(&id, seen, "POL> ").await.len();
    crate::support::poll::eventually("the allowed line ran", async || exists(&tree, "allowed")).await;

    // the refused line, typed a key at a time: each key is echoed; the
    // Enter is refused with the rule's reason, and the prompt comes back
    let line = wipe(&tree, "typed");
    for key in line.chars() {
        t.type_in(&id, &key.to_string()).await;
    }
    t.output_after(&id, seen, "echo rm -rf /").await;
    let refused = t
        .ask(
            json!({"type": "terminal_input", "terminal_id": id, "data": "\r", "request_id": "enter"}),
            "never",
        )
        .await;
    assert_eq!(refused["error"]["code"], 55000, "{refused}");
    assert_eq!(refused["request_id"], "enter");
    assert!(
        refused["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("no-root-wipe"),
        "{refused}"
    );
    let after = t.output_after(&id, seen, "POL> ").await;

    // the shell is still there and takes the next line
    t.type_in(&id, "echo still-$((40+2))\r").await;
    t.output_after(&id, after.len(), "still-42").await;
    assert!(!exists(&tree, "typed"), "the refused line ran");
    let rows = app.audit_events("action=command.denied", 1).await;
    assert_eq!(rows[0]["detail"]["typed"], true);
    assert_eq!(rows[0]["user"], "ana");
}

#[test]
fn a_rule_with_an_invalid_regular_expression_stops_start_up_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("servers.toml");
    std::fs::write(
        &file,
        r#"
[[servers]]
name = "one"
host = "127.0.0.1"
username = "u"
password_env = "ONE_PW"

[[command_rules]]
name = "broken-rule"
regex = "rm -rf ("
action = "deny"
"#,
    )
    .unwrap();
    let (code, out) = crate::support::daemon::run_to_exit(
        &[],
        &[
            ("PINKPAGE_SERVERS_FILE", file.to_str().unwrap()),
            ("ONE_PW", "pw"),
            ("PINKPAGE_BIND", "127.0.0.1:0"),
        ],
    );
    assert_ne!(code, Some(0));
    assert!(
        out.contains("broken-rule") && out.contains("regular expression"),
        "{out}"
    );
    assert!(out.contains("PINKPAGE_SERVERS_FILE"), "{out}");
}

#[tokio::test]
async fn a_denied_line_in_a_stub_login_shell_does_not_run_and_echo_goes_on() {
    let tree = TempTree::for_test_user("policy-stub-shell");
    let sshd = SshdServer::start(SshdOptions::default());
    let app = two_names(&sshd, RULES).spawn().await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.request(
        json!({"type": "ssh_command", "server": "prod1", "command": ""}),
        "ssh_command_started",
    )
    .await;
    c.send(json!({"type": "ssh_input", "data": "PS1='ST''UB> '\r"}))
        .await;
    c.wait_for_output("STUB> ").await;
    let line = wipe(&tree, "stub-typed");
    c.send(json!({"type": "ssh_input", "data": format!("{line}\r"), "request_id": "i1"}))
        .await;
    // The refused Enter reaches the shell as Ctrl-C, and bash drops keys
    // that arrive while it handles the interrupt: wait for both the refusal
    // and the shell's next prompt (either may come first) before typing.
    let mut refused = None;
    let mut after_line = String::new();
    while refused.is_none() || !after_line.contains("STUB> ") {
        let f = c.recv().await;
        match f["type"].as_str() {
            Some("ssh_output") => after_line.push_str(f["data"].as_str().unwrap()),
            Some("error") => refused = Some(f),
            Some("ssh_command_complete") => panic!("the shell ended: {after_line}"),
            _ => {}
        }
    }
    let refused = refused.unwrap();
    assert_eq!(refused["error"]["code"], 55000, "{refused}");
    assert_eq!(refused["request_id"], "i1");
    // the shell is back at its prompt and runs the next line
    c.send(json!({"type": "ssh_input", "data": "echo after-$((6*7))\r"}))
        .await;
    c.wait_for_output("after-42").await;
    assert!(!exists(&tree, "stub-typed"), "the refused line ran");
    c.send(json!({"type": "cancel"})).await;
    c.recv_until("ssh_command_complete").await;
}

#[tokio::test]
async fn a_rest_diff_approved_after_its_requester_lost_the_role_is_withdrawn_unrun() {
    let tree = TempTree::for_test_user("policy-rest-held");
    let sshd = SshdServer::start(SshdOptions::default());
    let app = two_names(&sshd, RULES).spawn().await;
    let ana = app.identity("ana", "operator", None).await;
    let mut admin = WsClient::stub(&app).await;
    let command = format!("touch {} && echo systemctl restart x", tree.path("late-diff"));
    let request = reqwest::Client::new()
        .post(app.url("/api/v1/diff/command"))
        .bearer_auth(&ana.token)
        .json(&json!({"command": command, "left_server": "dev1", "right_server": "dev1"}))
        .send();
    let waiting = tokio::spawn(request);
    let asked = next_of(&mut admin, "command_review_requested").await;
    assert_eq!(asked["user"], "ana");

    // ana becomes a viewer while her diff waits; then an admin approves
    let res = app
        .http
        .patch(app.url("/api/v1/users/ana"))
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answered = app
        .post_json(
            &format!("/api/v1/command-reviews/{}", asked["held_id"].as_str().unwrap()),
            &json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(answered.status(), 200);

    let res = waiting.await.unwrap().unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 10010, "{body}");
    assert!(!exists(&tree, "late-diff"), "the diff ran for a viewer");
}

#[tokio::test]
async fn a_script_is_judged_as_text_held_until_approved_and_a_cancel_withdraws_its_hold() {
    let tree = TempTree::for_test_user("policy-script");
    let sshd = SshdServer::start(SshdOptions::default());
    let app = two_names(&sshd, RULES).spawn().await;
    let ana = app.identity("ana", "operator", None).await;
    let mut c = WsClient::connect_with_token(&app, "/ws/v1/bmx5", &ana.token).await;
    let script = |marker: &str| {
        format!(
            "#!/bin/sh\ntouch {}\necho systemctl restart x\n",
            tree.path(marker)
        )
    };

    // refused as text: a denied line anywhere in it
    let denied = c
        .ask(
            json!({"type": "script_execute", "server": "prod1", "script": format!("echo fine\n{}", wipe(&tree, "script-wipe")), "request_id": "x0"}),
            "script_started",
        )
        .await;
    assert_eq!(denied["error"]["code"], 55000, "{denied}");

    // held, then approved: it runs
    c.send(json!({"type": "script_execute", "server": "dev1", "script": script("script-ok"), "request_id": "x1"}))
        .await;
    let held = next_of(&mut c, "command_held").await;
    assert_eq!(held["request_id"], "x1");
    let res = app
        .post_json(
            &format!("/api/v1/command-reviews/{}", held["held_id"].as_str().unwrap()),
            &json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let done = next_of(&mut c, "script_complete").await;
    assert_eq!(done["exit_status"], 0, "{done}");
    assert!(exists(&tree, "script-ok"));

    // held, then cancelled: the hold leaves the queue, nothing runs
    c.send(json!({"type": "script_execute", "server": "dev1", "script": script("script-cancelled"), "request_id": "x2"}))
        .await;
    let held = next_of(&mut c, "command_held").await;
    c.send(json!({"type": "script_cancel"})).await;
    let done = next_of(&mut c, "script_complete").await;
    assert_eq!(done["reason"], "cancelled", "{done}");
    let rows = app.audit_events("action=command.review.withdrawn", 1).await;
    assert_eq!(rows[0]["target"], held["held_id"]);
    let queue: Value = app.get("/api/v1/command-reviews").await.json().await.unwrap();
    assert_eq!(queue, json!([]));
    assert!(!exists(&tree, "script-cancelled"));
    assert!(!exists(&tree, "script-wipe"));
}

#[tokio::test]
async fn a_co_typist_is_judged_as_themselves_in_the_owners_terminal() {
    let tree = TempTree::for_test_user("policy-cotype");
    let sshd = SshdServer::start(SshdOptions::default());
    // operators may not touch files on dev1; admins may
    let rules = r#"
[[command_rules]]
name = "operators-read-only"
words = ["touch"]
roles = ["operator"]
action = "deny"
message = "operators read, admins write"
"#;
    let app = two_names(&sshd, rules).spawn().await;
    let root = app.identity("root2", "admin", None).await;
    let bob = app.identity("bob", "operator", None).await;
    let mut owner = Terms::connect(&app, &root.token).await;
    let (id, _) = owner.open("dev1").await;
    owner
        .ask(
            json!({"type": "terminal_share", "terminal_id": id, "user": "bob", "mode": "type"}),
            "terminal_shared",
        )
        .await;
    let mut typist = Terms::connect(&app, &bob.token).await;
    typist
        .ask(
            json!({"type": "terminal_attach", "terminal_id": id}),
            "terminal_attached",
        )
        .await;

    // a prompt of our own, to see each new one
    owner.type_in(&id, "PS1='CO''TY> '\r").await;
    let seen = owner.output(&id, "COTY> ").await.len();
    // the owner's line runs
    owner
        .type_in(&id, &format!("touch {}\r", tree.path("by-owner")))
        .await;
    let seen = owner.output_after(&id, seen, "COTY> ").await.len();
    crate::support::poll::eventually("the owner's line ran", async || exists(&tree, "by-owner")).await;
    // bob's, in the same shell, is refused by his own role's rule
    let refused = typist
        .ask(
            json!({"type": "terminal_input", "terminal_id": id, "data": format!("touch {}\r", tree.path("by-bob")), "request_id": "b1"}),
            "never",
        )
        .await;
    assert_eq!(refused["error"]["code"], 55000, "{refused}");
    assert!(refused["error"]["detail"]
        .as_str()
        .unwrap()
        .contains("operators-read-only"));
    // the shell goes on: the refused Enter became Ctrl-C, and once the
    // shell has dealt with it (its next prompt: keys that arrive while
    // bash handles the interrupt are discarded with the line) the owner's
    // next line runs
    owner.output_after(&id, seen, "COTY> ").await;
    owner
        .type_in(&id, &format!("touch {}\r", tree.path("after")))
        .await;
    crate::support::poll::eventually("the owner's next line ran", async || exists(&tree, "after")).await;
    assert!(!exists(&tree, "by-bob"), "bob's refused line ran");
    let rows = app.audit_events("action=command.denied", 1).await;
    assert_eq!(rows[0]["user"], "bob", "the refusal is bob's, not the owner's");
}
