//! Everyday friction a new operator met on the first day: the sign-in
//! page's words, the icon, the dark-mode toggle, default choices.

use super::browser::{turn, Browser};
use crate::support::fixtures::with_servers;

/// Submits the sign-in form and waits for its answer; returns the text.
async fn refused_sign_in(browser: &Browser, name: &str, password: &str) -> String {
    browser.fill("#signin-name", name).await;
    browser.fill("#signin-password", password).await;
    browser
        .js(
            "const e = document.getElementById('signin-error'); e.hidden = true; e.textContent = '';",
            vec![],
        )
        .await;
    browser.click("#signin-submit").await;
    browser
        .wait(
            "the sign-in's answer",
            "(() => { const e = document.getElementById('signin-error'); return !e.hidden && !document.getElementById('signin-submit').disabled && e.textContent; })()",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_refused_sign_in_says_so_in_words_without_saying_which_was_wrong_and_how_long_to_wait() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::open(&app).await;
    browser.goto("/ui/").await;
    browser
        .wait("the sign-in form", "!document.getElementById('signin').hidden")
        .await;

    // a wrong password and an unknown name read the same
    let wrong_password = refused_sign_in(&browser, &olga.name, "not-her-password").await;
    let unknown_name = refused_sign_in(&browser, "nobody-here", "whatever-it-is").await;
    assert_eq!(wrong_password, "Wrong user name or password.");
    assert_eq!(unknown_name, wrong_password);

    // attempts go on until the daemon slows them: the wait is said in seconds
    let mut said = String::new();
    for _ in 0..10 {
        said = refused_sign_in(&browser, &olga.name, "still-not-her-password").await;
        if said.starts_with("Too many failed sign-ins") {
            break;
        }
    }
    assert!(said.starts_with("Too many failed sign-ins"), "{said}");
    assert!(
        said.contains("Try again in ") && said.ends_with(" s."),
        "the wait is named: {said}"
    );
    assert!(!said.contains("1000"), "no code: {said}");
    browser.screenshot("signin-throttled").await;
    browser.close().await;
}

/// The status of `path` fetched by the page (its cookie goes along).
const STATUS_OF: &str = "const done = arguments[arguments.length - 1]; \
     fetch(arguments[0]).then(r => done([r.status, r.headers.get('content-type')]));";

#[tokio::test]
async fn the_icon_loads_signed_out_and_signed_in() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::open(&app).await;
    browser.goto("/ui/").await;
    browser
        .wait("the sign-in form", "!document.getElementById('signin').hidden")
        .await;
    for stage in ["signed out", "signed in"] {
        if stage == "signed in" {
            browser.sign_in(&olga).await;
        }
        for path in ["/favicon.ico", "/ui/favicon.svg"] {
            let got = browser.js_async_with(STATUS_OF, vec![path.into()]).await;
            assert_eq!(got[0], 200, "{stage} {path}: {got}");
            assert_eq!(got[1], "image/svg+xml", "{stage} {path}: {got}");
        }
        // the page names its icon, so the browser asks for no other
        let icon = browser
            .js(
                "return document.querySelector('link[rel=icon]')?.getAttribute('href')",
                vec![],
            )
            .await;
        assert_eq!(icon, "favicon.svg");
    }
    browser.close().await;
}
