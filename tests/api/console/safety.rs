//! The console never runs or stops work the operator did not mean to:
//! Enter in the output search only searches, and an action that would stop
//! running work (releasing the lock, signing out, leaving the page) names
//! that work and asks first.

use serde_json::Value;

use super::browser::{turn, Browser};
use super::terminal::run;
use crate::support::fixtures::with_servers;
use crate::support::remote::{pgrep, RemoteProcess};

/// The number of `ssh.command.start` rows the audit trail holds.
async fn commands_started(app: &crate::support::daemon::TestApp) -> usize {
    let res = app.get("/api/v1/audit?action=ssh.command.start&limit=100").await;
    assert_eq!(res.status(), 200);
    let rows: Value = res.json().await.unwrap();
    rows.as_array().expect("a list").len()
}

/// Whether a `beforeunload` now would make the browser ask "leave page?".
const LEAVING_ASKS: &str = "const e = new Event('beforeunload', { cancelable: true }); \
     window.dispatchEvent(e); return e.defaultPrevented;";

#[tokio::test]
async fn enter_in_the_output_search_finds_text_and_never_runs_the_command_again() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::open(&app).await;
    browser.sign_in(&olga).await;
    browser.click("#take-lock").await;
    browser.wait_text("#lock-text", "held by you").await;

    run(&browser, "alpha", "echo needle-in-the-output").await;
    browser
        .wait_text("#panel-terminal .xterm-rows", "needle-in-the-output")
        .await;
    browser
        .wait(
            "the command to end",
            "document.getElementById('panel-terminal').dataset.state === 'ended'",
        )
        .await;
    app.audit_events("action=ssh.command.start", 1).await;

    // Enter, then Shift+Enter, in the search box: the match is selected
    browser.fill(".term-search", "needle").await;
    browser.keys(".term-search", "\u{E007}").await;
    browser
        .wait(
            "the search to select its match",
            "document.querySelector('#panel-terminal .xterm-selection div') !== null",
        )
        .await;
    browser.keys(".term-search", "\u{E008}\u{E007}").await;
    browser.screenshot("search-output").await;

    // the selection shows the search ran; nothing ran again and the output
    // being searched is still there
    assert_eq!(
        browser
            .js(
                "return document.getElementById('panel-terminal').dataset.runs",
                vec![]
            )
            .await,
        "1"
    );
    assert!(browser
        .text("#panel-terminal .xterm-rows")
        .await
        .contains("needle-in-the-output"));
    // the search box is in no form, so no Enter of it can submit one
    assert_eq!(
        browser
            .js(
                "return document.querySelector('.term-search').closest('form') === null",
                vec![]
            )
            .await,
        true
    );
    assert_eq!(commands_started(&app).await, 1, "the command ran once");
    browser.close().await;
}

#[tokio::test]
async fn releasing_signing_out_or_leaving_names_the_running_command_and_asks_first() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::open(&app).await;
    browser.sign_in(&olga).await;
    browser.click("#take-lock").await;
    browser.wait_text("#lock-text", "held by you").await;
    // nothing runs: leaving does not ask
    assert_eq!(browser.js(LEAVING_ASKS, vec![]).await, false);

    run(&browser, "alpha", "sleep 117").await;
    let sleeping = RemoteProcess::started("sleep 117").await;
    browser
        .wait("one piece of work", "document.body.dataset.work === '1'")
        .await;
    assert_eq!(
        browser.js(LEAVING_ASKS, vec![]).await,
        true,
        "a reload or a closed tab asks first"
    );

    // Release asks, naming the command and its server; Cancel keeps both
    browser.click("#release-lock").await;
    browser
        .wait("the confirmation", "document.getElementById('confirm').open")
        .await;
    let asked = browser.text("#confirm-text").await;
    assert!(asked.contains("sleep 117") && asked.contains("alpha"), "{asked}");
    browser.screenshot("release-asks-first").await;
    browser.click("#confirm-cancel").await;
    browser
        .wait("the dialog closed", "!document.getElementById('confirm').open")
        .await;
    assert!(browser.text("#lock-text").await.contains("held by you"));
    assert_eq!(
        browser
            .js(
                "return document.getElementById('panel-terminal').dataset.state",
                vec![]
            )
            .await,
        "running"
    );
    assert!(pgrep("sleep 117"), "the command still runs");

    // Sign out asks too, naming the command and the lock; Cancel stays
    browser.click("#user-menu summary").await;
    browser.click("#sign-out").await;
    browser
        .wait("the confirmation", "document.getElementById('confirm').open")
        .await;
    let asked = browser.text("#confirm-text").await;
    assert!(asked.contains("sleep 117") && asked.contains("lock"), "{asked}");
    browser.click("#confirm-cancel").await;
    browser
        .wait("the dialog closed", "!document.getElementById('confirm').open")
        .await;
    assert_eq!(
        browser
            .js("return document.getElementById('app').hidden", vec![])
            .await,
        false,
        "still signed in"
    );
    assert!(pgrep("sleep 117"), "the command still runs");

    // Release, confirmed: the command stops and nothing is left to guard
    browser.click("#release-lock").await;
    browser
        .wait("the confirmation", "document.getElementById('confirm').open")
        .await;
    browser.click("#confirm-ok").await;
    browser.wait_text("#lock-text", "Lock: free").await;
    sleeping.ended("the released command").await;
    browser
        .wait("no work", "document.body.dataset.work === '0'")
        .await;
    assert_eq!(browser.js(LEAVING_ASKS, vec![]).await, false);
    browser.close().await;
}
