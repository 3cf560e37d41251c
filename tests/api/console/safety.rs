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
    let browser = Browser::signed_in(&app, &olga).await;
    browser.take_lock().await;

    run(&browser, "alpha", "echo needle-in-the-output").await;
    browser
        .wait_text("#stub-pane .xterm-rows", "needle-in-the-output")
        .await;
    super::terminal::wait_ended(&browser).await;
    app.audit_events("action=ssh.command.start", 1).await;

    // Enter, then Shift+Enter, in the search box: the match is selected
    browser.fill(".term-search", "needle").await;
    browser.keys(".term-search", "\u{E007}").await;
    browser
        .wait(
            "the search to select its match",
            "document.querySelector('#stub-pane .xterm-selection div') !== null",
        )
        .await;
    browser.keys(".term-search", "\u{E008}\u{E007}").await;
    browser.screenshot("search-output").await;

    // the selection shows the search ran; nothing ran again and the output
    // being searched is still there
    assert_eq!(
        browser
            .js("return document.getElementById('stub-pane').dataset.runs", vec![])
            .await,
        "1"
    );
    assert!(browser
        .text("#stub-pane .xterm-rows")
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
    let browser = Browser::signed_in(&app, &olga).await;
    browser.take_lock().await;
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
                "return document.getElementById('stub-pane').dataset.state",
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

/// `disabled` and `title` of the element matching `css`.
async fn disabled_and_title(browser: &Browser, css: &str) -> (bool, String) {
    let v = browser
        .js(
            "const b = document.querySelector(arguments[0]); return [b.disabled, b.title];",
            vec![css.into()],
        )
        .await;
    (
        v[0].as_bool().unwrap(),
        v[1].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn controls_wait_for_the_lock_and_a_second_tab_of_the_holder_takes_it_over_after_asking() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder
        .transfers_toml(
            "[[transfers]]\nname = \"nightly\"\nsource_server = \"alpha\"\nsource_glob = \"/nonexistent-pp/*\"\ndestination_server = \"alpha\"\ndestination_dir = \"/tmp\"\n",
        )
        .spawn()
        .await;
    let olga = app.identity("olga", "operator", None).await;
    let bob = app.identity("bob", "operator", None).await;
    let first = Browser::signed_in(&app, &olga).await;

    // without the lock, Run waits for it and says why, in words
    first
        .wait("the lock state", "document.getElementById('take-lock')")
        .await;
    let (disabled, title) = disabled_and_title(&first, "#term-run").await;
    assert!(disabled, "Run without the lock");
    assert!(title.contains("Take the lock first"), "{title}");
    first.click("#tab-transfers").await;
    first
        .wait(
            "the transfers",
            "document.querySelector('[data-transfer=nightly] .run-transfer')",
        )
        .await;
    let (disabled, title) = disabled_and_title(&first, "[data-transfer=nightly] .run-transfer").await;
    assert!(disabled && title.contains("Take the lock first"), "{title}");
    first.click("#tab-terminal").await;
    assert_eq!(
        first
            .js("return document.getElementById('term-stop').placeholder", vec![])
            .await,
        "finish when output contains"
    );
    first.click("#take-lock").await;
    first.wait_text("#lock-text", "held by you (since ").await;
    first
        .wait("Run enabled", "!document.getElementById('term-run').disabled")
        .await;
    run(&first, "alpha", "sleep 118").await;
    let sleeping = RemoteProcess::started("sleep 118").await;

    // another user sees a person and a time, not a connection id, and is
    // offered no take-over
    let other = Browser::signed_in(&app, &bob).await;
    let shown = other.wait_text("#lock-text", "held by olga (since ").await;
    assert!(!shown.contains('-'), "no id: {shown}");
    assert_eq!(
        other
            .js("return document.getElementById('take-over') === null", vec![])
            .await,
        true
    );
    other.close().await;

    // the same user's second tab: "you, in another tab", and a take-over
    // that asks first
    let second = Browser::signed_in(&app, &olga).await;
    second
        .wait_text("#lock-text", "held by you, in another tab")
        .await;
    second.click("#take-over").await;
    second
        .wait("the confirmation", "document.getElementById('confirm').open")
        .await;
    second.screenshot("take-over-asks").await;
    second.click("#confirm-cancel").await;
    second
        .wait("the dialog closed", "!document.getElementById('confirm').open")
        .await;
    assert!(pgrep("sleep 118"), "Cancel stopped nothing");
    second.click("#take-over").await;
    second
        .wait("the confirmation", "document.getElementById('confirm').open")
        .await;
    second.click("#confirm-ok").await;
    second.wait_text("#lock-text", "held by you (since ").await;
    sleeping.ended("taken over").await;
    // the first tab learns its session ended and now sees the other tab
    first.wait_text("#lock-text", "held by you, in another tab").await;
    super::terminal::wait_ended(&first).await;
    // no protocol words anywhere on either page
    for page in [&first, &second] {
        let text = page.js("return document.body.innerText", vec![]).await;
        let text = text.as_str().unwrap();
        for word in ["start_session", "end_session", "stop_phrase", "request_id"] {
            assert!(!text.contains(word), "{word} shown: {text}");
        }
    }
    app.audit_events("action=session.take_over", 1).await;
    first.close().await;
    second.close().await;
}
