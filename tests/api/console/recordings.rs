//! The Recordings tab in real headless Chromium against the real daemon
//! and a real sshd: a command run from the console is listed, played by
//! the asciinema-player (under the console's CSP), searched (escape
//! sequences stripped, each match with its time) and sought; a faster
//! speed plays faster; another operator neither lists nor opens it, an
//! admin deletes it after confirming; a workflow run's step and a
//! command's audit row link to their recordings; a recording a full disk
//! stopped is said in a notice and in its row.

use std::time::Duration;

use serde_json::{json, Value};

use super::browser::{turn, Browser};
use super::terminal::{run, wait_ended};
use crate::support::daemon::TestApp;
use crate::support::fixtures::with_servers;
use crate::support::poll::eventually_within;
use crate::support::tmpfs::Tmpfs;
use crate::support::ws::WsClient;

/// Prints a first line, a word a second later (built by the shell, so the
/// command's own text does not contain it), a line with a colour in the
/// middle of a word, and a last line two seconds after the word.
const COMMAND: &str = "echo first-line; sleep 1; echo needle-$((6*7)); \
     printf 'tinted-\\033[31mred\\033[0m-text\\n'; sleep 2; echo last-line";

/// The recordings the test admin sees for `query`, once every one of them
/// has ended (the index is written when the PTY ends, a moment after the
/// command's completion reached its client).
async fn ended_recordings(app: &TestApp, query: &str, count: usize) -> Vec<Value> {
    eventually_within(
        Duration::from_secs(20),
        &format!("{count} ended recordings for {query}"),
        async || {
            let res = app.get(&format!("/api/v1/recordings{query}")).await;
            let status = res.status();
            let body = res.text().await.unwrap_or_default();
            if status != 200 {
                return Err(format!("{status}: {body}"));
            }
            let all: Vec<Value> = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            if all.len() == count && all.iter().all(|r| r["state"] == "ended") {
                Ok(all)
            } else {
                Err(body)
            }
        },
    )
    .await
}

/// The text the player's terminal shows now.
const PLAYER_TEXT: &str = "document.querySelector('#rec-player .ap-term')?.textContent ?? ''";

/// The rows of the recordings list as [user, server, kind, command, state].
const LIST_ROWS: &str = "return [...document.querySelectorAll('#rec-table tr.rec-row')].map(r => [...r.cells].slice(1, 5).map(c => c.textContent).concat([r.cells[7].textContent]))";

/// Waits for the Recordings tab's list to have loaded (again).
async fn list_loaded(browser: &Browser) {
    browser
        .wait(
            "the recordings list",
            "document.getElementById('panel-recordings')?.dataset.list === 'loaded'",
        )
        .await;
}

/// Runs `command` on alpha as `token`'s user over its own STUB connection,
/// under the lock, and gives the lock back before returning.
async fn run_as(app: &TestApp, token: &str, command: &str) {
    let mut stub = WsClient::connect_with_token(app, "/ws/v1/stub", token).await;
    stub.start_session().await;
    let (_, _, done) = stub.run("alpha", command).await;
    assert_eq!(done["exit_status"], 0, "{done}");
    stub.request(json!({"type": "end_session"}), "session_ended")
        .await;
    stub.close().await;
}

#[tokio::test]
async fn a_command_is_listed_played_searched_sought_and_played_faster_in_the_recordings_tab() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::signed_in(&app, &olga).await;
    browser.take_lock().await;
    run(&browser, "alpha", COMMAND).await;
    let status = wait_ended(&browser).await;
    assert!(status.contains("exit status 0"), "{status}");
    let recs = ended_recordings(&app, "?user=olga", 1).await;
    let id = recs[0]["id"].as_str().unwrap().to_owned();

    // listed: who, where, what, how it ended; no Delete for an operator
    browser.click("#tab-recordings").await;
    list_loaded(&browser).await;
    assert_eq!(
        browser.js(LIST_ROWS, vec![]).await,
        json!([["olga", "alpha", "command", COMMAND, "exit status 0"]])
    );

    // played at 1x to its end: the output is in the player's terminal
    browser.click("#rec-table tr.rec-row .rec-play").await;
    browser.wait_text("#rec-title", "olga@alpha").await;
    assert_eq!(
        browser.js("return location.hash", vec![]).await,
        format!("#recordings/{id}"),
        "the recording has an address"
    );
    browser
        .wait_within(
            Duration::from_secs(30),
            "the recording played to its end",
            &format!("document.getElementById('rec-view').dataset.state === 'ended' && ({PLAYER_TEXT}).includes('last-line')"),
        )
        .await;
    let shown = browser.js(&format!("return {PLAYER_TEXT}"), vec![]).await;
    for line in ["first-line", "needle-42", "tinted-red-text", "last-line"] {
        assert!(shown.as_str().unwrap().contains(line), "{line} in {shown}");
    }
    // the colour in the middle of the word is drawn as a colour: neither
    // the text's own nor black (a player made before its style sheet was
    // in drew every colour black)
    let colours = browser
        .js(
            "const term = document.querySelector('#rec-player .ap-term');
             const red = [...term.querySelectorAll('span')].find(e => !e.children.length && e.textContent.includes('red') && !e.textContent.includes('tinted'));
             return [red && getComputedStyle(red).color, getComputedStyle(term).color];",
            vec![],
        )
        .await;
    assert!(
        colours[0].is_string() && colours[0] != colours[1] && colours[0] != "rgb(0, 0, 0)",
        "red, plain: {colours}"
    );
    assert!(
        browser
            .js("return document.getElementById('rec-delete').hidden", vec![])
            .await
            == true,
        "an operator has no Delete"
    );
    let duration: f64 = browser
        .wait(
            "the recording's length",
            "Number(document.getElementById('rec-view').dataset.duration)",
        )
        .await
        .as_f64()
        .unwrap();
    assert!(
        (2.9..10.0).contains(&duration),
        "three seconds of sleeps: {duration}"
    );
    browser.screenshot("recordings-played").await;

    // search, case-insensitive: one match, at the second the word was printed
    browser.fill("#rec-search", "NEEDLE-42").await;
    browser.click("#rec-find").await;
    let found = browser
        .wait(
            "the search's answer",
            "(() => { const t = document.getElementById('rec-found').textContent; return t && !t.includes('so far') ? t : null; })()",
        )
        .await;
    assert_eq!(found, "1 match");
    let at: f64 = browser
        .js(
            "return [...document.querySelectorAll('#rec-matches .rec-match')].map(b => Number(b.dataset.time))",
            vec![],
        )
        .await[0]
        .as_f64()
        .unwrap();
    assert!(
        (0.9..duration - 1.9).contains(&at),
        "printed after a second's sleep and two before the end: {at} of {duration}"
    );
    assert!(browser
        .text("#rec-matches .rec-match")
        .await
        .contains("needle-42"));

    // a click seeks there: the word is on screen and the last line not yet
    browser.click("#rec-matches .rec-match").await;
    browser
        .wait(
            "the player sought back to the match",
            &format!("document.getElementById('rec-view').dataset.seeked && !({PLAYER_TEXT}).includes('last-line')"),
        )
        .await;
    let shown = browser.js(&format!("return {PLAYER_TEXT}"), vec![]).await;
    assert!(shown.as_str().unwrap().contains("needle-42"), "{shown}");
    assert_eq!(
        browser
            .js("return document.getElementById('rec-view').dataset.state", vec![])
            .await,
        "paused"
    );
    browser.screenshot("recordings-search").await;

    // escape sequences are not text: a colour inside a word is found whole
    browser.fill("#rec-search", "tinted-red-text").await;
    browser.click("#rec-find").await;
    browser.wait_text("#rec-found", "1 match").await;

    // 4x: from the match to the end takes a quarter of its recorded time
    browser.click("#rec-speeds [data-speed='4']").await;
    browser
        .wait(
            "a player at 4x, where the other one stood",
            "document.querySelector(\"#rec-speeds [data-speed='4']\").getAttribute('aria-pressed') === 'true' && document.getElementById('rec-view').dataset.speed === '4' && document.getElementById('rec-view').dataset.state === 'paused'",
        )
        .await;
    browser
        .js(
            "window.__states = [];
             new MutationObserver(() => window.__states.push([document.getElementById('rec-view').dataset.state, performance.now()]))
               .observe(document.getElementById('rec-view'), { attributes: true, attributeFilter: ['data-state'] });",
            vec![],
        )
        .await;
    browser.click("#rec-player .ap-playback-button").await;
    browser
        .wait(
            "the end at 4x",
            "document.getElementById('rec-view').dataset.state === 'ended'",
        )
        .await;
    let states = browser.js("return window.__states", vec![]).await;
    let time_of = |state: &str| {
        states
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s[0] == state)
            .and_then(|s| s[1].as_f64())
            .unwrap_or_else(|| panic!("no {state} in {states}"))
    };
    let wall = (time_of("ended") - time_of("playing")) / 1000.0;
    let recorded = duration - at;
    assert!(
        wall < recorded / 2.0,
        "{recorded:.2} s of recording took {wall:.2} s at 4x"
    );
    assert!(
        wall > recorded / 4.0 * 0.7,
        "{recorded:.2} s of recording took only {wall:.2} s at 4x"
    );
    browser.close().await;
}

#[tokio::test]
async fn an_operator_neither_lists_nor_opens_another_users_recording_and_an_admin_deletes_it_after_confirming(
) {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let bob = app.identity("bob", "operator", None).await;
    let ada = app.identity("ada", "admin", None).await;
    run_as(&app, &olga.token, "echo olga-private-$((1+1))").await;
    run_as(&app, &bob.token, "echo bob-own-$((2+2))").await;
    let olgas = ended_recordings(&app, "?user=olga", 1).await;
    ended_recordings(&app, "?user=bob", 1).await;
    let olgas_id = olgas[0]["id"].as_str().unwrap().to_owned();

    // bob's list is his own recording, and only his
    let browser = Browser::signed_in(&app, &bob).await;
    browser.click("#tab-recordings").await;
    list_loaded(&browser).await;
    assert_eq!(
        browser.js(LIST_ROWS, vec![]).await,
        json!([[
            "bob",
            "alpha",
            "command",
            "echo bob-own-$((2+2))",
            "exit status 0"
        ]])
    );
    assert!(!browser.text("#panel-recordings").await.contains("olga-private"));
    assert!(
        browser
            .js("return !document.getElementById('rec-user')", vec![])
            .await
            == true,
        "no user filter for an operator"
    );
    // nor does her recording's address open it for him
    browser
        .js(
            "location.hash = '#recordings/' + encodeURIComponent(arguments[0])",
            vec![json!(olgas_id)],
        )
        .await;
    let refused = browser.wait_text("#rec-error", "10003").await;
    assert!(!refused.contains("olga-private"), "{refused}");
    assert_eq!(
        browser
            .js(
                "return [document.getElementById('rec-view').dataset.state, document.getElementById('rec-player').childElementCount]",
                vec![]
            )
            .await,
        json!(["failed", 0])
    );
    assert!(!browser.text("#rec-view").await.contains("olga-private"));
    browser.screenshot("recordings-refused").await;
    browser.close().await;

    // ada sees both, opens olga's, and deletes it: Cancel first, then Confirm
    let browser = Browser::signed_in(&app, &ada).await;
    browser.click("#tab-recordings").await;
    list_loaded(&browser).await;
    let users = browser
        .js(
            "return [...document.querySelectorAll('#rec-table tr.rec-row')].map(r => r.cells[1].textContent)",
            vec![],
        )
        .await;
    assert_eq!(users, json!(["bob", "olga"]), "newest first");
    browser.fill("#rec-user", "olga").await;
    browser.click("#rec-show").await;
    browser
        .wait(
            "only olga's row",
            "document.querySelectorAll('#rec-table tr.rec-row').length === 1 && document.querySelector('#rec-table tr.rec-row').cells[1].textContent === 'olga'",
        )
        .await;
    browser.click("#rec-table tr.rec-row .rec-play").await;
    browser
        .wait(
            "her recording played",
            &format!("({PLAYER_TEXT}).includes('olga-private-2')"),
        )
        .await;
    browser.click("#rec-delete").await;
    let asked = browser.wait_text("#confirm-text", "olga").await;
    assert!(asked.contains("echo olga-private-$((1+1))"), "{asked}");
    browser.click("#confirm-cancel").await;
    assert_eq!(
        app.get(&format!("/api/v1/recordings/{olgas_id}")).await.status(),
        200,
        "Cancel deletes nothing"
    );
    browser.click("#rec-delete").await;
    browser.wait_text("#confirm-text", "olga").await;
    browser.click("#confirm-ok").await;
    browser
        .wait(
            "the list without it",
            "document.getElementById('rec-view').hidden && document.getElementById('panel-recordings').dataset.list === 'loaded' && document.querySelectorAll('#rec-table tr.rec-row').length === 0",
        )
        .await;
    let gone = app.get(&format!("/api/v1/recordings/{olgas_id}")).await;
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["error"]["code"], 56000, "{body}");
    browser.close().await;
}

/// One command step: a workflow run whose step has a recording.
const WORKFLOW: &str = r#"
[[workflows]]
name = "greet"
description = "say hello on alpha"

[[workflows.steps]]
type = "command"
name = "hello"
server = "alpha"
command = "echo wf-$((20+3))"
timeout_s = 30
"#;

#[tokio::test]
async fn a_workflow_step_in_the_history_and_a_command_in_the_audit_trail_link_to_their_recordings() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.transfers_toml(WORKFLOW).spawn().await;
    let ada = app.identity("ada", "admin", None).await;
    let browser = Browser::signed_in(&app, &ada).await;

    browser.click("#tab-workflows").await;
    browser.wait_text("#wf-list", "say hello on alpha").await;
    browser.click("#wf-run").await;
    browser.wait_text("#wf-final", ": succeeded").await;
    let recs = ended_recordings(&app, "?user=ada", 1).await;
    let step_id = recs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(recs[0]["kind"], "workflow_step", "{recs:?}");
    assert_eq!(recs[0]["step"], 0, "{recs:?}");

    // the history's step 0 links to it, and the link plays it
    browser.click("#wf-history .open-run").await;
    browser
        .wait(
            "the step's recording link",
            "document.querySelector('#wf-history-run [data-step=\"0\"] .rec-link')",
        )
        .await;
    assert_eq!(
        browser
            .js(
                "return document.querySelector('#wf-history-run [data-step=\"0\"] .rec-link').dataset.recording",
                vec![]
            )
            .await,
        step_id
    );
    browser.click("#wf-history-run [data-step=\"0\"] .rec-link").await;
    browser
        .wait(
            "the Recordings tab playing the step",
            &format!("!document.getElementById('panel-recordings').hidden && document.getElementById('rec-view').dataset.id === {} && ({PLAYER_TEXT}).includes('wf-23')", json!(step_id)),
        )
        .await;
    browser.screenshot("recordings-from-workflow").await;
    browser.click("#rec-close").await;
    browser
        .wait(
            "the player closed",
            "document.getElementById('rec-view').hidden && location.hash === ''",
        )
        .await;

    // a command's audit row names its PTY, and its link plays that recording
    run_as(&app, &ada.token, "echo audited-$((5*5))").await;
    let recs = ended_recordings(&app, "?user=ada", 2).await;
    let command_id = recs[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(recs[0]["kind"], "command", "newest first: {recs:?}");
    browser.click("#tab-audit").await;
    browser.fill("#audit-action", "ssh.command.start").await;
    browser.click("#audit-newest").await;
    browser
        .wait(
            "the command's audit row with its recording",
            "document.querySelector('#audit-table tr[data-action=\"ssh.command.start\"] .rec-link')",
        )
        .await;
    let linked = browser
        .js(
            "return [...new Set([...document.querySelectorAll('#audit-table .rec-link')].map(a => a.dataset.recording))]",
            vec![],
        )
        .await;
    assert_eq!(linked, json!([command_id]), "one command, one recording");
    browser.click("#audit-table .rec-link").await;
    browser
        .wait(
            "the recording opened from the audit row",
            &format!("!document.getElementById('panel-recordings').hidden && document.getElementById('rec-view').dataset.id === {} && ({PLAYER_TEXT}).includes('audited-25')", json!(command_id)),
        )
        .await;
    assert_eq!(
        browser.js("return location.hash", vec![]).await,
        format!("#recordings/{command_id}")
    );
    browser.close().await;
}

#[tokio::test]
async fn a_recording_stopped_by_a_full_disk_is_said_once_in_a_notice_and_its_row_says_why() {
    let Some(disk) = Tmpfs::mount_or_skip("256k", "a_recording_stopped_by_a_full_disk") else {
        return;
    };
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder
        .env("PINKPAGE_DATA_DIR", disk.path().to_str().unwrap())
        .spawn()
        .await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::signed_in(&app, &olga).await;
    browser.take_lock().await;
    // more output than the disk holds; the command goes on unrecorded
    run(
        &browser,
        "alpha",
        "head -c 600000 /dev/zero | tr '\\0' 'x'; echo; echo filled-$((3*3))",
    )
    .await;
    let status = wait_ended(&browser).await;
    assert!(status.contains("exit status 0"), "{status}");
    browser.wait_text("#stub-pane .xterm-rows", "filled-9").await;
    let notice = browser.wait_text("#notices", "Recording stopped").await;
    assert!(notice.contains("56002"), "{notice}");
    assert_eq!(
        browser
            .js(
                "return [...document.querySelectorAll('#notices .notice')].filter(n => n.textContent.includes('Recording stopped')).length",
                vec![]
            )
            .await,
        1
    );
    browser.screenshot("recordings-disk-full-notice").await;

    browser.click("#tab-recordings").await;
    list_loaded(&browser).await;
    let state = browser.text("#rec-table tr.rec-row .rec-state").await;
    assert!(
        state.starts_with("failed: ") && state.contains("space"),
        "{state}"
    );
    browser.close().await;
}
