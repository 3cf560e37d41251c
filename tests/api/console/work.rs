//! The work tabs in real headless Chromium: Transfers, Batch, Files, Diff
//! and Audit, each against real sshd servers.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use super::browser::{turn, Browser};
use crate::support::fixtures::{with_servers, TempTree};
use crate::support::poll::eventually;
use crate::support::remote::chown_to_test_user;

#[tokio::test]
async fn a_transfer_runs_from_the_console_to_100_percent_and_the_files_arrive() {
    let _turn = turn().await;
    let tree = TempTree::private("ui-xfer");
    let src = tree.mkdir("src");
    let dst = tree.mkdir("dst");
    chown_to_test_user(std::path::Path::new(&src));
    chown_to_test_user(std::path::Path::new(&dst));
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    tree.write("src/a.dat", &payload);
    tree.write("src/b.dat", b"small");
    // b.dat is at the destination already: the plan says it is replaced
    tree.write("dst/b.dat", b"older");
    let (builder, [_alpha, _beta]) = with_servers(["alpha", "beta"]);
    let app = builder
        .transfers_toml(&format!(
            "[[transfers]]\nname = \"nightly\"\nsource_server = \"alpha\"\nsource_glob = \"{src}/*.dat\"\n\
             destination_server = \"beta\"\ndestination_dir = \"{dst}/\"\nverify_sha256 = true\n"
        ))
        .spawn()
        .await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::signed_in(&app, &olga).await;
    browser.take_lock().await;

    browser.click("#tab-transfers").await;
    browser
        .wait_text("#transfer-history", "No transfer has run yet")
        .await;
    // Run shows the dry run first: what is copied, what is replaced
    browser.click("[data-transfer=nightly] .run-transfer").await;
    let plan = browser
        .wait_text("#transfer-plan-summary", "copies 2 files")
        .await;
    assert!(plan.contains("replacing 1"), "{plan}");
    let rows = browser
        .js(
            "return [...document.querySelectorAll('#transfer-plan-files tr[data-file]')].map(r => [r.dataset.file, r.dataset.replaces]);",
            vec![],
        )
        .await;
    assert_eq!(rows, json!([["a.dat", "false"], ["b.dat", "true"]]));
    browser.screenshot("transfer-plan").await;
    // nothing was copied by looking
    assert_eq!(std::fs::read(format!("{dst}/b.dat")).unwrap(), b"older");
    assert!(!std::path::Path::new(&format!("{dst}/a.dat")).exists());
    browser.click("#transfer-start").await;
    browser
        .wait(
            "the transfer to finish",
            "document.getElementById('panel-transfers').dataset.state === 'done'",
        )
        .await;
    let bar = browser
        .js(
            "const p = document.getElementById('transfer-progress'); return [p.value, p.max];",
            vec![],
        )
        .await;
    assert_eq!(bar[0], bar[1], "the bar is full: {bar}");
    assert_eq!(bar[1], json!(payload.len() + 5), "{bar}");
    let numbers = browser.text("#transfer-numbers").await;
    assert!(numbers.contains("2 files"), "{numbers}");
    let result = browser.text("#transfer-result").await;
    assert!(result.contains("a.dat") && result.contains("b.dat"), "{result}");
    browser.screenshot("transfers").await;

    assert_eq!(std::fs::read(format!("{dst}/a.dat")).unwrap(), payload);
    assert_eq!(std::fs::read(format!("{dst}/b.dat")).unwrap(), b"small");
    // the run is in the history
    let last = browser
        .wait(
            "the run in the history",
            "document.querySelector('#transfer-runs tr.transfer-run')?.textContent",
        )
        .await;
    let last = last.as_str().unwrap();
    assert!(
        last.contains("nightly") && last.contains("complete") && last.contains("olga"),
        "{last}"
    );
    browser.close().await;
}

#[tokio::test]
async fn a_batch_of_three_commands_shows_three_results_then_diff_and_audit_work() {
    let _turn = turn().await;
    let tree = TempTree::private("ui-diff");
    let left = tree.write("left.conf", "listen 8080\nworkers 4\nlog info\n");
    let right = tree.write("right.conf", "listen 8080\nworkers 8\nlog info\n");
    let other = TempTree::private("ui-diff-other");
    other.write("left.conf", "listen 8080\n");
    other.write("only-here.txt", "x");
    let (builder, [alpha, beta]) = with_servers(["alpha", "beta"]);
    let app = builder.spawn().await;
    let ada = app.identity("ada", "admin", None).await;
    let browser = Browser::signed_in(&app, &ada).await;

    // Batch: the healthy servers the sidebar's filter shows are picked
    browser
        .wait(
            "both servers healthy",
            "document.querySelectorAll('[data-health=healthy]').length === 2",
        )
        .await;
    browser.click("#tab-batch").await;
    let picked = "[...document.querySelectorAll('#batch-servers input:checked')].map(i => i.value).join(',')";
    browser
        .wait(
            "the healthy servers picked",
            &format!("{picked} === 'alpha,beta'"),
        )
        .await;
    browser.fill("#server-filter", "alph").await;
    browser
        .wait("the filter narrows the pick", &format!("{picked} === 'alpha'"))
        .await;

    // three commands, three results with their exit statuses
    browser
        .fill("#batch-commands", "echo one\nexit 3\necho three")
        .await;
    browser.click("#batch-run").await;
    browser
        .wait(
            "the batch to complete",
            "document.getElementById('panel-batch').dataset.state === 'done'",
        )
        .await;
    let rows = browser
        .js(
            "return [...document.querySelectorAll('#batch-results tr.result')].map(r => [r.dataset.status, r.querySelector('.exit').textContent]);",
            vec![],
        )
        .await;
    assert_eq!(
        rows,
        json!([["succeeded", "0"], ["failed", "3"], ["succeeded", "0"]]),
        "three results with their exit statuses"
    );
    let summary = browser.text("#batch-summary").await;
    assert!(summary.contains("2 succeeded, 1 failed"), "{summary}");
    // the output shows inline, without a click
    assert_eq!(
        browser
            .js(
                "const p = document.querySelector('#batch-results tr.result .out-head'); return p && p.offsetParent !== null ? p.textContent : null;",
                vec![]
            )
            .await,
        "one"
    );
    browser.fill("#server-filter", "").await;
    browser.screenshot("batch").await;
    // history re-opens the run from REST
    browser
        .wait(
            "the run in the history",
            "document.querySelector('#batch-history .open-run')",
        )
        .await;
    browser.click("#tab-diff").await;
    browser.click("#tab-batch").await;
    browser.click("#batch-history .open-run").await;
    browser.wait_text("#batch-summary", "(completed)").await;
    assert_eq!(
        browser
            .js(
                "return document.querySelectorAll('#batch-results tr.result').length",
                vec![]
            )
            .await,
        3
    );

    // Diff: the right server starts as the other one
    browser.click("#tab-diff").await;
    assert_eq!(
        browser
            .js(
                "return [document.getElementById('diff-left-server').value, document.getElementById('diff-right-server').value]",
                vec![]
            )
            .await,
        json!(["alpha", "beta"])
    );
    // two files side by side, the changed line marked
    browser.select("#diff-left-server", "alpha").await;
    browser.select("#diff-right-server", "beta").await;
    browser.fill("#diff-left-path", &left).await;
    browser.fill("#diff-right-path", &right).await;
    browser.click("#diff-run").await;
    browser
        .wait(
            "the diff",
            "document.getElementById('panel-diff').dataset.state === 'done'",
        )
        .await;
    let changed = browser
        .js(
            "return [...document.querySelectorAll('table.diff td.del, table.diff td.add')].map(td => td.textContent);",
            vec![],
        )
        .await;
    assert_eq!(
        changed,
        json!(["workers 4", "workers 8"]),
        "the changed line on each side"
    );
    // line numbers take a narrow column; the text takes the rest
    let widths = browser
        .js(
            "const t = document.querySelector('table.diff'); return [t.querySelector('td.ln').getBoundingClientRect().width, t.querySelector('td.code').getBoundingClientRect().width, t.getBoundingClientRect().width];",
            vec![],
        )
        .await;
    let (ln, code, table) = (
        widths[0].as_f64().unwrap(),
        widths[1].as_f64().unwrap(),
        widths[2].as_f64().unwrap(),
    );
    assert!(ln < 80.0, "the line-number column is {ln} px");
    assert!(code > 0.4 * table, "the text column is {code} of {table} px");
    browser.screenshot("diff-files").await;

    // Diff of one command's output on both servers: the last field of
    // SSH_CONNECTION is the port each sshd listens on, so the outputs differ
    browser.select("#diff-mode", "command").await;
    browser
        .fill("#diff-command", "echo port ${SSH_CONNECTION##* }; echo same")
        .await;
    browser.click("#diff-run").await;
    browser
        .wait(
            "the command diff",
            "document.getElementById('panel-diff').dataset.state === 'done'",
        )
        .await;
    let changed = browser
        .js(
            "return [...document.querySelectorAll('table.diff td.del, table.diff td.add')].map(td => td.textContent);",
            vec![],
        )
        .await;
    assert_eq!(
        changed,
        json!([format!("port {}", alpha.port()), format!("port {}", beta.port())]),
        "each server's own line"
    );
    assert_eq!(
        browser.text("#diff-exits").await,
        "exit: alpha status 0, beta status 0"
    );
    browser.screenshot("diff-command").await;

    // Diff of directories: a table of what differs
    browser.select("#diff-mode", "dirs").await;
    // each directory option is labelled
    assert_eq!(
        browser
            .js(
                "return document.getElementById('diff-compare').closest('label')?.querySelector('span')?.textContent",
                vec![]
            )
            .await,
        "Compare by"
    );
    browser
        .fill("#diff-left-path", other.root().to_str().unwrap())
        .await;
    browser
        .fill("#diff-right-path", tree.root().to_str().unwrap())
        .await;
    browser.click("#diff-run").await;
    browser
        .wait(
            "the dirs diff",
            "document.getElementById('panel-diff').dataset.state === 'done'",
        )
        .await;
    let table = browser
        .js(
            "return [...document.querySelectorAll('#diff-dirs-table tr')].slice(1).map(r => [...r.cells].map(c => c.textContent));",
            vec![],
        )
        .await;
    assert_eq!(
        table,
        json!([
            ["only-here.txt", "only left", ""],
            ["right.conf", "only right", ""],
            ["left.conf", "differs", "size"]
        ]),
        "{table}"
    );
    browser.screenshot("diff-dirs").await;
    browser
        .fill("#diff-left-path", tree.root().to_str().unwrap())
        .await;
    browser
        .fill("#diff-right-path", "/nonexistent-pinkpage-dir")
        .await;
    browser.click("#diff-run").await;
    browser
        .wait(
            "the dirs diff to fail",
            "document.getElementById('panel-diff').dataset.state === 'failed'",
        )
        .await;
    let err = browser.text("#diff-result").await;
    assert!(err.contains("53000"), "an error shows its code: {err}");

    // Audit (admins): the batch run is there, filtered by action
    browser.click("#tab-audit").await;
    browser.fill("#audit-action", "batch.run").await;
    browser.click("#audit-newest").await;
    browser
        .wait(
            "batch.run rows only",
            "(() => { const rows = [...document.querySelectorAll('#audit-table tr[data-action]')]; return rows.length > 0 && rows.every(r => r.dataset.action === 'batch.run'); })()",
        )
        .await;
    browser.screenshot("audit").await;

    // a narrow window: the sidebar moves above the tabs, nothing overflows
    browser.set_size(800, 900).await;
    let fits = browser
        .js(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await;
    assert_eq!(fits, true, "no horizontal scrolling at 800 px");
    browser.screenshot("narrow").await;

    // dark, following the system
    let light = browser
        .js("return getComputedStyle(document.body).backgroundColor", vec![])
        .await;
    browser.prefer_dark().await;
    let dark = browser
        .js("return getComputedStyle(document.body).backgroundColor", vec![])
        .await;
    assert_ne!(light, dark, "the page follows prefers-color-scheme");
    assert_eq!(dark, "rgb(15, 18, 22)", "the dark background");
    browser.screenshot("dark").await;

    // the toggle picks light against a dark system, and the pick stays
    // after a reload
    let background = "getComputedStyle(document.body).backgroundColor";
    assert_eq!(browser.text("#theme-toggle").await, "Theme: system");
    browser.click("#theme-toggle").await;
    assert_eq!(browser.text("#theme-toggle").await, "Theme: dark");
    browser.click("#theme-toggle").await;
    assert_eq!(browser.text("#theme-toggle").await, "Theme: light");
    browser
        .wait(
            "light against a dark system",
            &format!("{background} === 'rgb(246, 247, 249)'"),
        )
        .await;
    browser.goto("/ui/").await;
    browser
        .wait("the console again", "!document.getElementById('app').hidden")
        .await;
    assert_eq!(browser.text("#theme-toggle").await, "Theme: light");
    assert_eq!(
        browser.js(&format!("return {background}"), vec![]).await,
        "rgb(246, 247, 249)",
        "remembered"
    );
    browser.click("#theme-toggle").await;
    assert_eq!(browser.text("#theme-toggle").await, "Theme: system");
    browser
        .wait(
            "dark again, as the system",
            &format!("{background} === 'rgb(15, 18, 22)'"),
        )
        .await;
    browser.close().await;
}

#[tokio::test]
async fn files_upload_and_download_byte_for_byte_and_a_hostile_name_is_only_text() {
    let _turn = turn().await;
    let tree = TempTree::for_test_user("ui-files");
    let dir = tree.mkdir("work");
    let hostile = "<img src=x onerror=alert(1)>";
    tree.write(&format!("work/{hostile}"), "boo");
    tree.write("work/보고서 1.txt", "korean name");
    chown_to_test_user(&tree.join(&format!("work/{hostile}")));
    let (builder, [mut alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::signed_in(&app, &olga).await;

    browser.click("#tab-files").await;
    // the login directory is listed at once, by its real path
    let home = browser
        .wait(
            "the home directory listed without pressing Open",
            "document.getElementById('panel-files').dataset.path",
        )
        .await;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let expected = passwd
        .lines()
        .find_map(|l| l.strip_prefix("pinkpage-test:"))
        .and_then(|l| l.split(':').nth(4))
        .expect("the test user's home");
    assert_eq!(home, expected, "the absolute path, not '.'");
    assert_eq!(
        browser
            .js("return document.getElementById('files-path').value", vec![])
            .await,
        expected
    );
    browser.select("#files-server", "alpha").await;
    browser.fill("#files-path", &dir).await;
    browser.click("#files-go").await;
    let shown = browser
        .wait(
            "the hostile name listed",
            &format!(
                "[...document.querySelectorAll('#files-table .entry-name')].map(e => e.textContent).find(t => t === {})",
                json!(hostile)
            ),
        )
        .await;
    assert_eq!(shown, hostile, "rendered as text");
    assert_eq!(
        browser
            .js(
                "return !!document.querySelector('#files-table tr[data-name=\"보고서 1.txt\"]')",
                vec![]
            )
            .await,
        true,
        "a Korean file name is listed as it is"
    );
    assert_eq!(
        browser
            .js(
                "return document.querySelectorAll('#panel-files img').length",
                vec![]
            )
            .await,
        0,
        "no element was made from the name"
    );

    // upload through the file input (REST PUT), then download (REST GET)
    let local = tempfile::tempdir().unwrap();
    let upload: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(31) % 256) as u8)
        .collect();
    let local_file = local.path().join("upload.bin");
    std::fs::write(&local_file, &upload).unwrap();
    std::fs::set_permissions(&local_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    browser.keys("#files-upload", local_file.to_str().unwrap()).await;
    browser.wait_text("#files-upload-text", "uploaded").await;
    let bar = browser
        .js(
            "const p = document.getElementById('files-upload-progress'); return p.value === p.max;",
            vec![],
        )
        .await;
    assert_eq!(bar, true, "the upload bar is full");
    let on_server = eventually("the uploaded file on the server", async || {
        std::fs::read(format!("{dir}/upload.bin")).ok()
    })
    .await;
    assert_eq!(on_server, upload, "uploaded byte for byte");
    browser
        .wait(
            "upload.bin listed",
            "document.querySelector('#files-table tr[data-name=\"upload.bin\"]')",
        )
        .await;
    let downloaded = browser
        .js(
            "const a = document.querySelector('#files-table tr[data-name=\"upload.bin\"] a.entry-name');
             return fetch(a.href).then(r => r.arrayBuffer()).then(b => Array.from(new Uint8Array(b)));",
            vec![],
        )
        .await;
    let downloaded: Vec<u8> = serde_json::from_value(downloaded).unwrap();
    assert_eq!(downloaded, upload, "downloaded byte for byte");

    // upload by drag and drop: the same drop event a file dragged from the
    // desktop fires, with the file in its DataTransfer
    browser
        .js(
            "const bytes = new Uint8Array(100000).map((_, i) => (i * 7) % 251);
             const dt = new DataTransfer();
             dt.items.add(new File([bytes], 'dropped.bin'));
             document.getElementById('files-drop').dispatchEvent(
               new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));",
            vec![],
        )
        .await;
    browser
        .wait(
            "dropped.bin listed",
            "document.querySelector('#files-table tr[data-name=\"dropped.bin\"]')",
        )
        .await;
    let dropped: Vec<u8> = (0..100_000u32).map(|i| ((i * 7) % 251) as u8).collect();
    assert_eq!(
        std::fs::read(format!("{dir}/dropped.bin")).unwrap(),
        dropped,
        "the dropped file arrived byte for byte"
    );

    // mkdir, rename, delete with confirmation
    browser.fill("#files-new-dir", "made-here").await;
    browser.click("#files-mkdir").await;
    browser
        .wait(
            "the new folder",
            "document.querySelector('#files-table tr[data-name=\"made-here\"]')",
        )
        .await;
    assert!(tree.join("work/made-here").is_dir());
    browser
        .click("#files-table tr[data-name=\"upload.bin\"] .rename")
        .await;
    browser.fill("#files-table .rename-input", "renamed.bin").await;
    browser.click("#files-table .rename-save").await;
    browser
        .wait(
            "the renamed file",
            "document.querySelector('#files-table tr[data-name=\"renamed.bin\"]')",
        )
        .await;
    assert!(tree.join("work/renamed.bin").is_file());
    browser.screenshot("files").await;
    browser
        .click("#files-table tr[data-name=\"renamed.bin\"] .delete")
        .await;
    browser
        .wait("the confirmation", "document.getElementById('confirm').open")
        .await;
    // the confirmation names the server and the whole path
    let asked = browser.text("#confirm-text").await;
    assert!(
        asked.contains(&format!("alpha:{}", tree.join("work/renamed.bin").display())),
        "{asked}"
    );
    browser.click("#confirm-ok").await;
    browser
        .wait(
            "the file gone from the list",
            "!document.querySelector('#files-table tr[data-name=\"renamed.bin\"]')",
        )
        .await;
    assert!(!tree.join("work/renamed.bin").exists());

    // a pasted script with arguments, its output in a terminal pane
    browser
        .fill("#script-text", "#!/bin/sh\necho \"arg1=$1 arg2=$2\"\nexit 4\n")
        .await;
    browser.fill("#script-args", "a b|c").await;
    browser.click("#script-run").await;
    let status = browser.wait_text("#script-status", "ended").await;
    assert!(status.contains("exit status 4"), "{status}");
    // xterm.js renders only what is on screen: scroll to the pane, as a
    // person would
    browser
        .js(
            "document.querySelector('#panel-files .term').scrollIntoView()",
            vec![],
        )
        .await;
    browser
        .wait_text("#panel-files .xterm-rows", "arg1=a b arg2=c")
        .await;

    // "Check now" answers at once, whatever the monitor's verdict
    alpha.stop();
    browser.click("[data-server=alpha] .check-now").await;
    let failed = browser
        .wait(
            "the failed check",
            "document.querySelector('[data-server=alpha] .check-result[data-state=failed]')?.textContent",
        )
        .await;
    assert!(
        failed.as_str().unwrap().contains("20000"),
        "the error shows its code: {failed}"
    );
    alpha.start_again();
    browser.click("[data-server=alpha] .check-now").await;
    let ok = browser
        .wait(
            "the good check",
            "document.querySelector('[data-server=alpha] .check-result[data-state=ok]')?.textContent",
        )
        .await;
    assert!(ok.as_str().unwrap().contains("reachable"), "{ok}");
    // one check shows: the newer of the monitor's and this one, with one
    // latency and one time (not one of each beside the other)
    let shown = format!(
        "{} {}",
        browser.text("[data-server=alpha] .server-details").await,
        browser.text("[data-server=alpha] .check-result").await
    );
    assert_eq!(shown.matches(" ms").count(), 1, "{shown}");
    assert_eq!(shown.matches("checked").count(), 1, "{shown}");
    assert_eq!(shown.matches(':').count(), 2, "one time of day: {shown}");
    browser.close().await;
}
