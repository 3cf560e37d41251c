//! Serving the console: `/` and `/ui` lead to it, its files come from the
//! binary with their media types, a strict Content-Security-Policy,
//! `nosniff`, an ETag, gzip, and no sign-in; the first load stays within
//! its budget.

use crate::support::daemon::TestApp;

/// Every file the first visit loads (the page, its styles, its modules).
const FIRST_LOAD: &[&str] = &[
    "/ui/",
    "/ui/console.css",
    "/ui/vendor/xterm/xterm.css",
    "/ui/app/main.js",
    "/ui/app/dom.js",
    "/ui/app/api.js",
    "/ui/app/ws.js",
    "/ui/app/store.js",
    "/ui/app/topbar.js",
    "/ui/app/servers.js",
    "/ui/app/tabs.js",
    "/ui/app/forms.js",
    "/ui/app/terminal.js",
    "/ui/app/shells.js",
    "/ui/app/streams.js",
    "/ui/app/sessions.js",
    "/ui/app/lock.js",
    "/ui/app/work.js",
    "/ui/app/theme.js",
    "/ui/app/workflows.js",
    "/ui/app/transfers.js",
    "/ui/app/batch.js",
    "/ui/app/files.js",
    "/ui/app/diff.js",
    "/ui/app/audit.js",
    "/ui/app/recordings.js",
    "/ui/vendor/xterm/xterm.mjs",
    "/ui/vendor/addon-fit/addon-fit.mjs",
    "/ui/vendor/addon-search/addon-search.mjs",
    "/ui/vendor/addon-web-links/addon-web-links.mjs",
];

#[tokio::test]
async fn the_root_and_ui_redirect_to_the_console_page() {
    let app = TestApp::spawn_without_ssh().await;
    for path in ["/", "/ui"] {
        let res = app.anon.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 302, "{path}");
        assert_eq!(res.headers()["location"], "/ui/", "{path}");
    }
}

#[tokio::test]
async fn the_console_is_served_to_anyone_with_a_strict_policy_and_its_media_types() {
    let app = TestApp::spawn_without_ssh().await;
    let page = app.anon.get(app.url("/ui/")).send().await.unwrap();
    assert_eq!(page.status(), 200, "the page needs no sign-in");
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let csp = headers["content-security-policy"].to_str().unwrap().to_owned();
    for directive in [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval';",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    // WebAssembly may compile (the recordings player), JavaScript may not
    assert!(!csp.contains("'unsafe-eval'"), "{csp}");
    let body = page.text().await.unwrap();
    assert!(
        body.contains(r#"<script type="module" src="app/main.js">"#),
        "{body}"
    );
    assert!(!body.contains("<script>"), "no inline script: {body}");

    for (path, media) in [
        ("/ui/app/main.js", "text/javascript; charset=utf-8"),
        ("/ui/vendor/xterm/xterm.mjs", "text/javascript; charset=utf-8"),
        ("/ui/console.css", "text/css; charset=utf-8"),
        ("/ui/vendor/xterm/LICENSE", "text/plain; charset=utf-8"),
        // loaded when a recording is first played (a classic script and
        // the player's worker, which Chromium runs only as JavaScript)
        (
            "/ui/vendor/asciinema-player/asciinema-player-ui.min.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/ui/vendor/asciinema-player/asciinema-player-worker.min.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/ui/vendor/asciinema-player/asciinema-player.css",
            "text/css; charset=utf-8",
        ),
        ("/ui/app/recording-search.js", "text/javascript; charset=utf-8"),
    ] {
        let res = app.anon.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], media, "{path}");
        assert!(res.headers().contains_key("content-security-policy"), "{path}");
    }

    let missing = app.anon.get(app.url("/ui/app/nothing.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], 10004);
}

#[tokio::test]
async fn a_file_the_browser_has_is_revalidated_with_its_etag() {
    let app = TestApp::spawn_without_ssh().await;
    let first = app.anon.get(app.url("/ui/app/main.js")).send().await.unwrap();
    assert_eq!(first.headers()["cache-control"], "no-cache");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag.len(), 66, "a quoted SHA-256: {etag}");
    let again = app
        .anon
        .get(app.url("/ui/app/main.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
    let stale = app
        .anon
        .get(app.url("/ui/app/main.js"))
        .header("if-none-match", "\"0000\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
}

#[tokio::test]
async fn the_first_load_fits_its_600_kb_compressed_budget() {
    let app = TestApp::spawn_without_ssh().await;
    let mut compressed = 0usize;
    let mut plain = 0usize;
    for path in FIRST_LOAD {
        // reqwest here does not decode gzip: the length is what travels
        let res = app
            .anon
            .get(app.url(path))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let gzipped = res.headers().get("content-encoding").is_some_and(|v| v == "gzip");
        let len = res.bytes().await.unwrap().len();
        compressed += len;
        let raw = app.anon.get(app.url(path)).send().await.unwrap();
        assert!(
            raw.headers().get("content-encoding").is_none(),
            "{path} uncompressed when not asked"
        );
        plain += raw.bytes().await.unwrap().len();
        if *path == "/ui/vendor/xterm/xterm.mjs" {
            assert!(gzipped, "the big module is compressed");
        }
    }
    assert!(
        compressed <= 600 * 1024,
        "first load is {compressed} bytes compressed ({plain} plain), over 600 KB"
    );
}
