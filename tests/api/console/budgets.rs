//! The console's measured budget (WAVE2, "Measures that need numbers"):
//! while 50 MB prints in the terminal, switching to another tab shows it
//! within 100 ms and no main-thread task runs longer than 200 ms
//! (a `PerformanceObserver` for long tasks). xterm.js parses writes in
//! time slices and the console hands it 16 KB at a time, so neither holds
//! the page.
//!
//! Ignored in the parallel run, and run alone right after it by
//! `scripts/test.sh` (so CI runs it): a long task is wall time, and on the
//! 2-core machine with the rest of the suite running beside it the numbers
//! measure the machine (a descheduled renderer shows as a long task with
//! no script in it). By hand:
//! `cargo test --test api console::budgets -- --ignored --nocapture`.
//! Measured 2026-11-29 on an idle machine: 50 MB in 6.4-7.0 s, tab switch
//! 12-32 ms, longest task 102-103 ms; with another build keeping both cores
//! busy (load average 4) the longest task was 124-331 ms.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::browser::{turn, Browser};
use super::terminal::run;
use crate::support::fixtures::with_servers;

/// 50 MB of text, in lines, from the server.
const FIFTY_MB: &str = "yes 'the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ' | head -c 50000000";

#[tokio::test]
#[ignore = "timing: scripts/test.sh runs it alone after the suite"]
async fn printing_50_mb_keeps_the_page_responsive() {
    let _turn = turn().await;
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::signed_in(&app, &olga).await;
    browser.take_lock().await;
    browser
        .js(
            "window.__longTasks = [];
             new PerformanceObserver((list) => {
               for (const e of list.getEntries()) window.__longTasks.push(e.duration);
             }).observe({ type: 'longtask' });",
            vec![],
        )
        .await;

    let started = Instant::now();
    run(&browser, "alpha", FIFTY_MB).await;
    browser
        .wait_text("#stub-pane .xterm-rows", "quick brown fox")
        .await;
    // mid-stream: switch tabs and time until the next frame shows it
    let switch_ms = browser
        .js_async(
            "const done = arguments[arguments.length - 1];
             const t0 = performance.now();
             document.getElementById('tab-batch').click();
             requestAnimationFrame(() => done({
               ms: performance.now() - t0,
               shown: !document.getElementById('panel-batch').hidden,
               running: document.getElementById('stub-pane').dataset.state === 'running',
             }));",
        )
        .await;
    browser.click("#tab-terminal").await;
    let ended = browser
        .wait_within(
            Duration::from_secs(300),
            "50 MB printed",
            "document.getElementById('stub-pane').dataset.state === 'ended' && document.getElementById('term-status').textContent",
        )
        .await;
    let took = started.elapsed();
    let long: Vec<f64> =
        serde_json::from_value(browser.js("return window.__longTasks", vec![]).await).unwrap();
    let worst = long.iter().cloned().fold(0.0, f64::max);
    eprintln!(
        "50 MB in {took:?}; tab switch {switch_ms}; {} long tasks, longest {worst:.0} ms",
        long.len()
    );
    assert!(
        ended.as_str().unwrap_or_default().contains("exit status 0"),
        "{ended}"
    );
    assert_eq!(switch_ms["shown"], Value::Bool(true), "{switch_ms}");
    assert_eq!(
        switch_ms["running"],
        Value::Bool(true),
        "the switch was measured while printing: {switch_ms}"
    );
    assert!(
        switch_ms["ms"].as_f64().unwrap() < 100.0,
        "tab switch took {switch_ms}"
    );
    assert!(worst < 200.0, "a main-thread task ran {worst} ms: {long:?}");
    browser.close().await;
}
