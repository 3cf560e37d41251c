//! The Workflows tab in real headless Chromium against a real sshd: a
//! refused value starts nothing, the plan shows the quoted command, a run
//! stops at its pause until Confirm, the lock bar names the run, and the
//! history re-opens it.

use serde_json::{json, Value};

use super::browser::{turn, Browser};
use crate::support::fixtures::with_servers;

/// A command, a pause, a command: the smallest workflow with every part
/// the operator drives.
const WORKFLOW: &str = r#"
[[workflows]]
name = "greet"
description = "say hello on alpha, wait for a look, say done"

[[workflows.params]]
name = "name"
type = "string"
pattern = "[a-z]{1,16}"
default = "world"
description = "who to greet"

[[workflows.steps]]
type = "command"
name = "hello"
server = "alpha"
command = "echo wf-{{name}}"
timeout_s = 30

[[workflows.steps]]
type = "pause"
name = "look"
message = "did {{name}} get the greeting?"
timeout_s = 600

[[workflows.steps]]
type = "command"
name = "done"
server = "alpha"
command = "echo done-{{name}}"
timeout_s = 30
"#;

/// The stored runs, newest first.
async fn stored_runs(app: &crate::support::daemon::TestApp) -> Vec<Value> {
    let res = app.get("/api/v1/workflows/runs").await;
    assert_eq!(res.status(), 200);
    res.json::<Vec<Value>>().await.expect("runs")
}

#[tokio::test]
async fn a_workflow_is_planned_run_confirmed_at_its_pause_and_listed_in_the_history() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.transfers_toml(WORKFLOW).spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::signed_in(&app, &olga).await;

    browser.click("#tab-workflows").await;
    browser.wait_text("#wf-list", "say hello on alpha").await;
    let input = browser
        .wait(
            "the parameter's input",
            "(() => { const i = document.getElementById('wf-param-name'); return i && [i.value, i.getAttribute('pattern'), i.required]; })()",
        )
        .await;
    assert_eq!(
        input,
        json!(["world", "[a-z]{1,16}", false]),
        "default filled, pattern as attribute"
    );

    // a value failing its pattern: the daemon's 10001, and no run
    browser.fill("#wf-param-name", "x; reboot").await;
    browser.click("#wf-run").await;
    let refused = browser.wait_text("#wf-error", "10001").await;
    assert!(refused.contains("name"), "the parameter is named: {refused}");
    assert_eq!(
        browser
            .js(
                "return document.getElementById('panel-workflows').dataset.state",
                vec![]
            )
            .await,
        "refused"
    );
    assert!(stored_runs(&app).await.is_empty(), "nothing started");
    assert_eq!(browser.text("#lock-text").await, "Lock: free");

    // the plan: the command exactly as the daemon resolved it
    browser.fill("#wf-param-name", "ops").await;
    browser.click("#wf-plan").await;
    browser.wait_text("#wf-plan-out", "echo wf-'ops'").await;
    let commands = browser
        .js(
            "return [...document.querySelectorAll('#wf-plan-out .wf-command')].map(c => c.textContent)",
            vec![],
        )
        .await;
    assert_eq!(commands, json!(["echo wf-'ops'", "echo done-'ops'"]));
    assert!(browser
        .text("#wf-plan-out")
        .await
        .contains("did ops get the greeting?"));

    // run: the first step's output, then the pause, with the lock named
    browser.click("#wf-run").await;
    browser
        .wait_text("#wf-pause-message", "did ops get the greeting?")
        .await;
    browser
        .wait_text("#lock-text", "held by olga (workflow greet, since ")
        .await;
    let first = browser
        .js(
            "const s = document.querySelector('#wf-timeline [data-step=\"0\"]'); return [s.dataset.status, s.querySelector('pre.out').textContent];",
            vec![],
        )
        .await;
    assert_eq!(first[0], "succeeded", "{first}");
    assert!(first[1].as_str().unwrap().contains("wf-ops"), "{first}");
    assert_eq!(
        browser
            .js(
                "return document.querySelector('#wf-timeline [data-step=\"1\"]').dataset.status",
                vec![]
            )
            .await,
        "paused"
    );
    browser.screenshot("workflows-paused").await;

    browser.click("#wf-confirm").await;
    browser
        .wait(
            "the run to succeed",
            "document.getElementById('panel-workflows').dataset.state === 'succeeded'",
        )
        .await;
    let steps = browser
        .js(
            "return [...document.querySelectorAll('#wf-timeline .wf-step')].map(s => s.dataset.status)",
            vec![],
        )
        .await;
    assert_eq!(steps, json!(["succeeded", "succeeded", "succeeded"]));
    assert!(browser.text("#wf-final").await.contains(": succeeded"));
    let last = browser.text("#wf-timeline [data-step=\"2\"] pre.out").await;
    assert!(last.contains("done-ops"), "{last}");
    assert!(
        browser
            .js("return document.getElementById('wf-pause').hidden", vec![])
            .await
            == true
    );
    browser.wait_text("#lock-text", "Lock: free").await;
    // the workflow's output stayed out of the Terminal tab's pane
    browser.click("#tab-terminal").await;
    assert!(!browser.text("#panel-terminal").await.contains("wf-ops"));
    browser.click("#tab-workflows").await;

    // the history lists the run and re-opens it from REST
    browser
        .wait(
            "the run in the history",
            "document.querySelector('#wf-history tr.wf-run[data-status=succeeded] .open-run')",
        )
        .await;
    assert_eq!(
        browser
            .js(
                "return document.querySelectorAll('#wf-history tr.wf-run').length",
                vec![]
            )
            .await,
        1
    );
    // a short window, so the opened run lands below the fold unless the
    // page brings it into view
    browser.set_size(1400, 600).await;
    browser.click("#wf-history .open-run").await;
    browser.wait_text("#wf-opened-title", "(succeeded)").await;
    browser
        .wait(
            "the opened run in view",
            "(() => { const r = document.getElementById('wf-opened-title').getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; })()",
        )
        .await;
    let stored = browser
        .js(
            "return [...document.querySelectorAll('#wf-history-run .wf-step')].map(s => s.dataset.status)",
            vec![],
        )
        .await;
    assert_eq!(stored, json!(["succeeded", "succeeded", "succeeded"]));
    let tail = browser.text("#wf-history-run [data-step=\"0\"] pre.out").await;
    assert!(tail.contains("wf-ops"), "the stored output tail: {tail}");
    assert!(browser
        .text("#wf-history-run")
        .await
        .contains("confirmed by olga"));
    browser.screenshot("workflows").await;

    let runs = stored_runs(&app).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "succeeded");
    browser.close().await;
}

/// A command, a pause, a failing command, and a step never reached.
const FAILING: &str = r#"
[[workflows]]
name = "fails"
description = "one step fails after a pause"

[[workflows.steps]]
type = "command"
name = "first"
server = "alpha"
command = "echo wf-first"
timeout_s = 30

[[workflows.steps]]
type = "pause"
name = "look"
message = "go on to the failing step?"
timeout_s = 600

[[workflows.steps]]
type = "command"
name = "breaks"
server = "alpha"
command = "exit 3"
timeout_s = 30

[[workflows.steps]]
type = "command"
name = "never"
server = "alpha"
command = "echo never-reached"
timeout_s = 30
"#;

/// The statuses of the live timeline's steps, in order.
const LIVE_STATUSES: &str =
    "return [...document.querySelectorAll('#wf-timeline .wf-step')].map(s => s.dataset.status)";

#[tokio::test]
async fn a_reloaded_page_comes_back_to_its_paused_run_and_the_live_view_ends_as_the_history_says() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.transfers_toml(FAILING).spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::signed_in(&app, &olga).await;
    browser.click("#tab-workflows").await;
    browser.wait_text("#wf-list", "one step fails").await;
    browser.click("#wf-run").await;
    browser
        .wait("the pause", "!document.getElementById('wf-pause').hidden")
        .await;

    // a reload: the run goes on without the page, and the page comes
    // back to it, at its pause, with Confirm
    browser.goto("/ui/").await;
    browser
        .wait(
            "the console again",
            "!document.getElementById('app').hidden && document.getElementById('conn-state').dataset.state === 'open'",
        )
        .await;
    browser.click("#tab-workflows").await;
    browser
        .wait(
            "the run in flight",
            "document.querySelector('#wf-inflight .wf-inflight-run[data-status=paused]')",
        )
        .await;
    browser
        .wait("the pause again", "!document.getElementById('wf-pause').hidden")
        .await;
    assert!(browser
        .text("#wf-pause-message")
        .await
        .contains("go on to the failing step?"));
    assert_eq!(
        browser.js(LIVE_STATUSES, vec![]).await,
        json!(["succeeded", "paused", "pending", "pending"])
    );
    browser.screenshot("workflow-back-after-reload").await;
    browser.click("#wf-confirm").await;
    let last = browser.wait_text("#wf-final", "failed").await;
    assert!(last.contains("at step 2"), "{last}");

    // the live view and the history say the same of every step
    let live = browser.js(LIVE_STATUSES, vec![]).await;
    let runs = stored_runs(&app).await;
    let id = runs[0]["run_id"].as_str().unwrap();
    let stored: Value = app
        .get(&format!("/api/v1/workflows/runs/{id}"))
        .await
        .json()
        .await
        .unwrap();
    let history: Vec<Value> = stored["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].clone())
        .collect();
    assert_eq!(live, json!(history), "live {live} against stored {history:?}");
    assert_eq!(live, json!(["succeeded", "succeeded", "failed", "skipped"]));
    // nothing is in flight any more
    browser
        .wait_text("#wf-inflight", "No run of yours is in flight")
        .await;
    browser.close().await;
}
