//! The sign-in page, the servers sidebar, the lock bar and the Terminal
//! tab, in real headless Chromium.

use std::time::{Duration, Instant};

use serde_json::json;

use super::browser::{turn, Browser};
use crate::support::fixtures::with_servers;
use crate::support::remote::RemoteProcess;
use crate::support::sshd::{SshdOptions, SshdServer};

/// The health interval of these tests, in seconds.
const INTERVAL_S: f64 = 1.0;

/// The state of server `name` in the sidebar (`healthy`, ...).
fn health_of(name: &str) -> String {
    format!(
        "document.querySelector('[data-server={}]')?.dataset.health",
        json!(name)
    )
}

#[tokio::test]
async fn signing_in_shows_both_servers_healthy_and_a_stopped_sshd_goes_red_then_green() {
    let _turn = turn().await;
    let (builder, [mut alpha, _beta]) = with_servers(["alpha", "beta"]);
    let app = builder
        .env("PINKPAGE_HEALTH_INTERVAL_S", &INTERVAL_S.to_string())
        .env("PINKPAGE_HEALTH_TIMEOUT_S", "0.5")
        .env("PINKPAGE_HEALTH_FAILURES", "1")
        .env("PINKPAGE_HEALTH_SUCCESSES", "1")
        .spawn()
        .await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::open(&app).await;

    browser.goto("/").await;
    browser
        .wait(
            "the sign-in form after / redirects to /ui/",
            "!document.getElementById('signin').hidden",
        )
        .await;
    browser.fill("#signin-name", "olga").await;
    browser.fill("#signin-password", "not-her-password").await;
    browser.click("#signin-submit").await;
    let refused = browser
        .wait_text("#signin-error", "Wrong user name or password")
        .await;
    assert!(!refused.contains("10002"), "words, not a code: {refused}");
    browser.screenshot("signin").await;

    browser.sign_in(&olga).await;
    assert_eq!(browser.text("#user-name").await, "olga");
    browser
        .wait("alpha healthy", &format!("{} === 'healthy'", health_of("alpha")))
        .await;
    browser
        .wait("beta healthy", &format!("{} === 'healthy'", health_of("beta")))
        .await;
    // the word is there, not only the colour
    assert_eq!(browser.text("[data-server=alpha] .health-word").await, "healthy");
    assert_eq!(browser.text("#env-badge").await, "dev");
    // "/" jumps to the server filter from anywhere outside a text field
    browser.keys("body", "/").await;
    assert_eq!(
        browser.js("return document.activeElement.id", vec![]).await,
        "server-filter"
    );
    browser.screenshot("servers-healthy").await;

    let stopped = Instant::now();
    alpha.stop();
    browser
        .wait(
            "alpha unhealthy",
            &format!("{} === 'unhealthy'", health_of("alpha")),
        )
        .await;
    let took = stopped.elapsed();
    assert!(
        took <= Duration::from_secs_f64(2.0 * INTERVAL_S + 0.5),
        "red after {took:?}, more than two health intervals"
    );
    assert_eq!(
        browser.text("[data-server=alpha] .health-word").await,
        "unhealthy"
    );
    assert!(
        !browser.text("[data-server=alpha] .server-error").await.is_empty(),
        "the last error is shown"
    );
    assert_eq!(
        browser.js("return location.pathname", vec![]).await,
        "/ui/",
        "no reload"
    );
    browser.screenshot("servers-one-down").await;

    alpha.start_again();
    browser
        .wait(
            "alpha healthy again",
            &format!("{} === 'healthy'", health_of("alpha")),
        )
        .await;
    browser.close().await;
}

#[tokio::test]
async fn the_terminal_runs_commands_answers_prompts_stops_with_ctrl_c_and_shows_korean() {
    let _turn = turn().await;
    let legacy = SshdServer::start(SshdOptions::default());
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder
        .sshd_with("legacy", &legacy, "encoding = \"euc-kr\"\n")
        .spawn()
        .await;
    let olga = app.identity("olga", "operator", None).await;
    let bob = app.identity("bob", "viewer", None).await;
    let browser = Browser::signed_in(&app, &olga).await;

    browser.take_lock().await;

    // a command and its output
    run(&browser, "alpha", "echo hello-from-the-console").await;
    let ended = wait_ended(&browser).await;
    assert!(ended.contains("exit status 0"), "{ended}");
    assert_eq!(
        browser
            .js("return document.getElementById('stub-pane').dataset.exit", vec![])
            .await,
        "0"
    );
    // xterm.js renders what it was given on its next frame, which may come
    // after the end shows in the status line
    wait_terminal(&browser, "hello-from-the-console").await;

    // a prompt answered by typing into the terminal
    run(
        &browser,
        "alpha",
        "read -p 'your name? ' answer; echo \"got:$answer\"",
    )
    .await;
    wait_terminal(&browser, "your name?").await;
    browser.keys(".xterm-helper-textarea", "pinkpage\n").await;
    wait_terminal(&browser, "got:pinkpage").await;
    wait_ended(&browser).await;

    // Ctrl-C reaches the program
    run(&browser, "alpha", "sleep 107").await;
    let sleeping = RemoteProcess::started("sleep 107").await;
    browser
        .keys(
            ".xterm-helper-textarea",
            &format!(
                "{}c{}",
                char::from(fantoccini::key::Key::Control),
                char::from(fantoccini::key::Key::Null)
            ),
        )
        .await;
    let ended = wait_ended(&browser).await;
    assert!(
        !ended.contains("exit status 0"),
        "interrupted, not a clean exit: {ended}"
    );
    sleeping.ended("Ctrl-C typed in the browser").await;

    // Korean from an EUC-KR server
    run(
        &browser,
        "legacy",
        "printf '\\276\\310\\263\\347\\307\\317\\274\\274\\277\\344\\n'",
    )
    .await;
    wait_ended(&browser).await;
    wait_terminal(&browser, "안녕하세요").await;
    browser.screenshot("terminal").await;

    // another user in another browser sees who holds the lock
    let second = Browser::signed_in(&app, &bob).await;
    second.wait_text("#lock-text", "held by olga").await;
    assert!(
        second
            .js("return document.getElementById('take-lock') === null", vec![])
            .await
            == true,
        "a viewer is not offered the lock"
    );
    assert_eq!(
        second
            .js("return document.getElementById('term-run').disabled", vec![])
            .await,
        true,
        "nor a Run button"
    );
    second.screenshot("lock-held-by-another").await;
    second.close().await;

    // the Cancel button stops a command server-side
    run(&browser, "alpha", "sleep 108").await;
    let sleeping = RemoteProcess::started("sleep 108").await;
    browser.click("#term-cancel").await;
    let ended = wait_ended(&browser).await;
    assert!(ended.contains("cancelled"), "{ended}");
    sleeping.ended("Cancel clicked").await;
    browser.close().await;
}

/// Runs `command` on `server` from the Terminal tab.
pub(super) async fn run(browser: &Browser, server: &str, command: &str) {
    browser.select("#term-server", server).await;
    browser.fill("#term-command", command).await;
    let before = browser
        .js(
            "return Number(document.getElementById('stub-pane').dataset.runs || 0)",
            vec![],
        )
        .await;
    browser.click("#term-run").await;
    browser
        .wait(
            "the command to start",
            &format!("Number(document.getElementById('stub-pane').dataset.runs) > {before}"),
        )
        .await;
}

/// Waits until the last command started has ended; returns the status line.
pub(super) async fn wait_ended(browser: &Browser) -> String {
    browser
        .wait(
            "the command to end",
            "(() => { const p = document.getElementById('stub-pane'); return p.dataset.state === 'ended' && p.dataset.ended === p.dataset.runs && document.getElementById('term-status').textContent; })()",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits until the terminal shows `needle`.
async fn wait_terminal(browser: &Browser, needle: &str) {
    browser.wait_text("#stub-pane .xterm-rows", needle).await;
}

#[tokio::test]
async fn a_disabled_account_is_sent_back_to_the_sign_in_page_and_its_lock_is_freed() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::signed_in(&app, &olga).await;
    browser.take_lock().await;

    let res = app
        .http
        .patch(app.url("/api/v1/users/olga"))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());

    // the daemon closes the WebSocket (1008); the page finds the sign-in
    // gone and shows the sign-in form instead of reconnecting forever
    browser
        .wait(
            "the sign-in page",
            "!document.getElementById('signin').hidden && document.getElementById('app').hidden",
        )
        .await;
    // released once the connection's end was handled (no event reaches
    // the test for that, hence the bounded poll)
    crate::support::poll::eventually("the lock freed", async || {
        let session: serde_json::Value = app.get("/api/v1/session").await.json().await.unwrap();
        (session["active"] == false).then_some(())
    })
    .await;
    browser.close().await;
}

#[tokio::test]
async fn an_admin_force_releases_a_lock_after_confirming_and_signs_out() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let ada = app.identity("ada", "admin", None).await;
    let holder = Browser::signed_in(&app, &olga).await;
    holder.take_lock().await;

    let admin = Browser::signed_in(&app, &ada).await;
    admin.wait_text("#lock-text", "held by olga").await;
    // cancelling the confirmation changes nothing
    admin.click("#force-release").await;
    admin
        .wait("the confirmation", "document.getElementById('confirm').open")
        .await;
    admin.screenshot("force-release-confirm").await;
    admin.click("#confirm-cancel").await;
    admin
        .wait("the dialog closed", "!document.getElementById('confirm').open")
        .await;
    holder.wait_text("#lock-text", "held by you").await;

    admin.click("#force-release").await;
    admin
        .wait("the confirmation", "document.getElementById('confirm').open")
        .await;
    admin.click("#confirm-ok").await;
    admin.wait_text("#lock-text", "Lock: free").await;
    holder.wait_text("#lock-text", "Lock: free").await;

    // sign out from the user menu: back to the sign-in page, and the
    // cookie no longer opens anything
    admin.click("#user-menu summary").await;
    admin.click("#sign-out").await;
    admin
        .wait("the sign-in page", "!document.getElementById('signin').hidden")
        .await;
    let me = admin
        .js_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/v1/auth/me').then(r => done(r.status));",
        )
        .await;
    assert_eq!(me, 401, "signed out");
    admin.close().await;
    holder.close().await;
}

#[tokio::test]
async fn a_dropped_connection_shows_reconnecting_then_comes_back_with_the_lock_state() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    // the browser reaches the daemon through a relay the test can cut
    let relay = super::cut::CuttableRelay::start(app.port).await;
    let browser = Browser::open(&app).await.via_port(relay.port);
    browser.sign_in(&olga).await;
    browser.take_lock().await;
    run(&browser, "alpha", "sleep 109").await;
    let sleeping = RemoteProcess::started("sleep 109").await;
    browser
        .js(
            "window.__states = [];
             new MutationObserver(() => window.__states.push(document.getElementById('conn-state').dataset.state))
               .observe(document.getElementById('conn-state'), { attributes: true });",
            vec![],
        )
        .await;

    relay.cut();
    // the page says so, reports the command stopped, and comes back by
    // itself: the daemon stopped the dropped client's command and
    // released its lock, and the new connection's welcome says so
    let ended = wait_ended(&browser).await;
    assert!(ended.contains("connection dropped"), "{ended}");
    sleeping.ended("its client was dropped").await;
    browser.wait_text("#conn-state", "connected").await;
    browser.wait_text("#lock-text", "Lock: free").await;
    let states = browser.js("return window.__states", vec![]).await;
    assert!(
        states.as_array().unwrap().iter().any(|s| s == "reconnecting"),
        "the drop was shown: {states}"
    );
    assert_eq!(
        browser
            .js("return document.getElementById('app').hidden", vec![])
            .await,
        false,
        "still signed in"
    );
    browser.close().await;
}

#[tokio::test]
async fn a_daemon_that_stops_says_it_is_restarting_not_that_the_network_failed() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let mut app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::signed_in(&app, &olga).await;
    browser.wait_text("#conn-state", "connected").await;

    let status = app
        .signal_and_wait("TERM", Duration::from_secs(20))
        .await
        .expect("the daemon exits");
    assert_eq!(status.code(), Some(0));
    // the shutdown frame (30004) came before the close: the page tells a
    // restart from a network fault, and keeps trying
    let shown = browser
        .wait(
            "the restart shown",
            "document.getElementById('conn-state').dataset.state === 'restarting' && document.getElementById('conn-state').textContent",
        )
        .await;
    assert!(shown.as_str().unwrap().contains("30004"), "{shown}");
    browser.close().await;
}
