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
    browser.open_sign_in().await;

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
    browser.open_sign_in().await;
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

/// The CSS selector of the terminal row that shows `needle`.
async fn terminal_row(browser: &Browser, needle: &str) -> String {
    let index = browser
        .wait(
            &format!("a terminal row showing {needle}"),
            &format!(
                "(() => {{ const rows = [...document.querySelectorAll('#stub-pane .xterm-rows > div')]; const i = rows.findIndex(r => r.textContent.includes({})); return i < 0 ? null : String(i + 1); }})()",
                serde_json::json!(needle)
            ),
        )
        .await;
    format!(
        "#stub-pane .xterm-rows > div:nth-child({})",
        index.as_str().unwrap()
    )
}

#[tokio::test]
async fn underscores_descenders_and_korean_show_whole_in_the_terminal() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::signed_in(&app, &olga).await;
    browser.take_lock().await;
    super::terminal::run(
        &browser,
        "alpha",
        "printf '%s\\n' '________________' 'PREEMPT_DYNAMIC _|gjpqy 한국어'",
    )
    .await;
    super::terminal::wait_ended(&browser).await;
    browser.screenshot("terminal-glyphs").await;

    // a row of underscores only: its ink is the underscores
    let row = terminal_row(&browser, "________________").await;
    let ink = browser.ink_rows(&row).await;
    assert!(ink.iter().sum::<u64>() > 0, "the underscores are drawn: {ink:?}");
    // every glyph fits its row: nothing is drawn on the row's last pixel
    // line, where a clipped underscore or descender would end
    for needle in ["________________", "PREEMPT_DYNAMIC"] {
        let row = terminal_row(&browser, needle).await;
        let ink = browser.ink_rows(&row).await;
        assert!(ink.len() >= 2, "{ink:?}");
        assert_eq!(
            ink.last().copied(),
            Some(0),
            "{needle}: the row's bottom line is inked, so glyphs are cut: {ink:?}"
        );
    }
    browser.close().await;
}

#[tokio::test]
async fn a_login_shell_shows_the_login_banner_once() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::signed_in(&app, &olga).await;
    browser.take_lock().await;
    // an empty command is a login shell; its prompt comes after the banner
    super::terminal::run(&browser, "alpha", "").await;
    browser
        .keys(".xterm-helper-textarea", "echo shell-$((6*7))\n")
        .await;
    browser.wait_text("#stub-pane .xterm-rows", "shell-42").await;
    let banner = std::fs::read_to_string("/etc/motd").unwrap_or_default();
    let first_line = banner
        .lines()
        .find(|l| !l.trim().is_empty())
        .expect("a login banner (/etc/motd) on this machine")
        .trim()
        .to_owned();
    let shown = browser.text("#stub-pane .xterm-rows").await;
    browser.screenshot("login-shell").await;
    assert_eq!(
        shown.matches(first_line.as_str()).count(),
        1,
        "the banner's first line once: {shown}"
    );
    browser.keys(".xterm-helper-textarea", "exit\n").await;
    super::terminal::wait_ended(&browser).await;
    browser.close().await;
}

/// Whether the element matching `css` lies wholly inside the window.
fn in_view(css: &str) -> String {
    format!(
        "(() => {{ const r = document.querySelector({}).getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight + 1; }})()",
        serde_json::json!(css)
    )
}

#[tokio::test]
async fn names_stay_whole_notices_take_no_clicks_and_the_terminal_fits_at_800_px() {
    let _turn = turn().await;
    let (builder, [_a, _b]) = with_servers(["payments-db-primary-01", "web-frontend-02"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::open(&app).await;
    browser.set_size(1400, 900).await;
    browser.sign_in(&olga).await;
    browser
        .wait(
            "both servers listed",
            "document.querySelectorAll('#server-list .server-name').length === 2",
        )
        .await;
    // each name on one line, never broken inside a word
    let lines = browser
        .js(
            "return [...document.querySelectorAll('#server-list .server-name')].map(e => [e.textContent, e.getClientRects().length, Math.round(e.getBoundingClientRect().height)]);",
            vec![],
        )
        .await;
    let one_line = lines[0][2].as_i64().unwrap();
    for l in lines.as_array().unwrap() {
        assert_eq!(l[1], 1, "{lines}");
        assert_eq!(l[2].as_i64().unwrap(), one_line, "one line high: {lines}");
    }

    // a notice does not take a click meant for what is under it
    browser.click("#take-lock").await;
    browser.wait_text("#notices", "Lock taken by olga").await;
    let under = browser
        .js(
            "const n = document.querySelector('#notices .notice span').getBoundingClientRect(); \
             const hit = document.elementFromPoint(n.left + 2, n.top + n.height / 2); \
             return hit ? !hit.closest('.notice') : null;",
            vec![],
        )
        .await;
    assert_eq!(under, true, "the point under the notice's text reaches the page");
    browser.screenshot("wide-1400").await;

    // at 800 px the terminal ends above the fold
    browser.set_size(800, 700).await;
    browser
        .wait(
            "the terminal inside the window at 800 px",
            &in_view("#stub-pane .term"),
        )
        .await;
    browser.screenshot("narrow-800-terminal").await;
    browser.close().await;
}
