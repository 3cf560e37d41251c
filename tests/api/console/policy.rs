//! The command policy in the console (issue 27), in real headless Chromium
//! against the real daemon and real sshd: a line a rule refuses says so
//! in the terminal it was typed in, a refused batch command says so in
//! its row, a held command waits in its requester's terminal while an
//! admin's console shows it in the queue, and the admin's answer (an
//! approval, a rejection with a comment) reaches the requester's
//! terminal and batch results.
//!
//! The commands a rule matches are harmless on purpose (`echo rm -rf /`,
//! `echo systemctl restart x`), and each starts with `touch <marker>`: a
//! marker shows whether it ran.

use serde_json::json;

use super::browser::{turn, Browser};
use super::terminal::{run, wait_ended};
use crate::command_policy::{two_names, wipe, RULES};
use crate::support::fixtures::TempTree;
use crate::support::sshd::{SshdOptions, SshdServer};

/// `touch <marker> && echo systemctl restart x && echo ran-$((6*7))`:
/// held by `restarts`; it prints `ran-42` once it runs.
fn restart(tree: &TempTree, marker: &str) -> String {
    format!(
        "touch {} && echo systemctl restart x && echo ran-$((6*7))",
        tree.path(marker)
    )
}

/// ana (an operator) has run [`restart`] with marker `marker` in the STUB
/// terminal and it is held for review; ada (an admin) looks on in a
/// browser of her own.
struct Held {
    tree: TempTree,
    _sshd: SshdServer,
    app: crate::support::daemon::TestApp,
    /// ada's console.
    admin: Browser,
    /// ana's console.
    browser: Browser,
    held_id: String,
    /// ana's terminal once it said the command waits.
    shown: String,
}

async fn held(tree: &str, marker: &str) -> Held {
    let tree = TempTree::for_test_user(tree);
    let sshd = SshdServer::start(SshdOptions::default());
    let app = two_names(&sshd, RULES).spawn().await;
    let ana = app.identity("ana", "operator", None).await;
    let ada = app.identity("ada", "admin", None).await;
    let admin = Browser::signed_in(&app, &ada).await;
    let browser = Browser::signed_in(&app, &ana).await;
    browser.take_lock().await;
    run(&browser, "dev1", &restart(&tree, marker)).await;
    let held_id = held_in_stub(&browser).await;
    let shown = wait_in_terminal(&browser, "#stub-pane", "Waiting for approval").await;
    Held {
        tree,
        _sshd: sshd,
        app,
        admin,
        browser,
        held_id,
        shown,
    }
}

/// Waits until the xterm inside `css` shows `needle` (its rows' text,
/// non-breaking spaces read as spaces); returns that text.
async fn wait_in_terminal(browser: &Browser, css: &str, needle: &str) -> String {
    browser
        .wait(
            &format!("`{needle}` in the terminal of {css}"),
            &format!(
                "(() => {{ const t = document.querySelector({rows}).textContent.replace(/\\u00a0/g, ' '); return t.includes({needle}) ? t : null; }})()",
                rows = json!(format!("{css} .xterm-rows")),
                needle = json!(needle)
            ),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Waits for the STUB terminal's command to be held; returns its hold id.
async fn held_in_stub(browser: &Browser) -> String {
    let id = browser
        .wait(
            "the command held",
            "document.getElementById('stub-pane').dataset.held",
        )
        .await;
    id.as_str().unwrap().to_owned()
}

/// The queue's card of hold `id`.
fn card(id: &str) -> String {
    format!(".review-item[data-held={}]", json!(id))
}

#[tokio::test]
async fn a_refused_command_says_its_rule_in_the_terminal_it_was_typed_in_and_in_its_batch_row() {
    let _turn = turn().await;
    let tree = TempTree::for_test_user("ui-policy-deny");
    let sshd = SshdServer::start(SshdOptions::default());
    let app = two_names(&sshd, RULES).spawn().await;
    let olga = app.identity("olga", "operator", None).await;
    let browser = Browser::signed_in(&app, &olga).await;

    // a line typed at the prompt of her own shell on prod1: refused at its
    // Enter, the rule's name and message inline; the shell goes on
    browser.click("[data-server=prod1] .open-terminal").await;
    let shell = ".shell-pane[data-server=prod1]";
    browser
        .wait(
            "her shell on prod1 attached",
            &format!(
                "document.querySelector({})?.dataset.state === 'attached'",
                json!(shell)
            ),
        )
        .await;
    let typing = format!("{shell} .xterm-helper-textarea");
    browser.keys(&typing, "echo \"ready-$((20+1))\"\n").await;
    wait_in_terminal(&browser, shell, "ready-21").await;
    browser
        .keys(&typing, &format!("{}\n", wipe(&tree, "typed")))
        .await;
    let shown = wait_in_terminal(&browser, shell, "never on production").await;
    assert!(
        shown.contains("Refused by a command rule") && shown.contains("no-root-wipe"),
        "{shown}"
    );
    browser.keys(&typing, "echo \"still-$((40+2))\"\n").await;
    wait_in_terminal(&browser, shell, "still-42").await;
    assert!(!tree.join("typed").exists(), "the refused line ran");
    browser.screenshot("policy-refused-typed-line").await;

    // under the lock: a command refused before it starts, said in the
    // terminal and in the status line
    browser.take_lock().await;
    browser.click("#ttab-stub").await;
    run(&browser, "prod1", &wipe(&tree, "stub")).await;
    let status = wait_ended(&browser).await;
    assert!(status.contains("refused"), "{status}");
    let shown = wait_in_terminal(&browser, "#stub-pane", "never on production").await;
    assert!(shown.contains("no-root-wipe"), "{shown}");
    // and a line typed into a login shell under the lock
    run(&browser, "prod1", "").await;
    let typing = "#stub-pane .xterm-helper-textarea";
    browser.keys(typing, "echo \"login-$((30+3))\"\n").await;
    wait_in_terminal(&browser, "#stub-pane", "login-33").await;
    browser
        .keys(typing, &format!("{}\n", wipe(&tree, "stub-typed")))
        .await;
    wait_in_terminal(&browser, "#stub-pane", "never on production").await;
    browser.keys(typing, "exit\n").await;
    wait_ended(&browser).await;
    assert!(!tree.join("stub").exists() && !tree.join("stub-typed").exists());

    // a batch on both: dev1 runs it, prod1's row says it was refused and
    // never ran, with the rule's message
    browser
        .wait(
            "both servers healthy",
            "document.querySelectorAll('[data-health=healthy]').length === 2",
        )
        .await;
    browser.click("#tab-batch").await;
    browser
        .wait(
            "both servers picked",
            "document.querySelectorAll('#batch-servers input:checked').length === 2",
        )
        .await;
    browser.fill("#batch-commands", &wipe(&tree, "batch-$$")).await;
    browser.click("#batch-run").await;
    browser
        .wait(
            "the batch to complete",
            "document.getElementById('panel-batch').dataset.state === 'done'",
        )
        .await;
    let prod = browser
        .text("#batch-results table[data-server=prod1] tr.result")
        .await;
    assert!(
        prod.contains("refused by a rule (never ran)")
            && prod.contains("no-root-wipe")
            && prod.contains("never on production"),
        "{prod}"
    );
    let dev = browser
        .js(
            "return document.querySelector('#batch-results table[data-server=dev1] tr.result').dataset.status",
            vec![],
        )
        .await;
    assert_eq!(dev, "succeeded");
    let markers: Vec<String> = tree
        .entries()
        .into_iter()
        .filter(|e| e.starts_with("batch-"))
        .collect();
    assert_eq!(markers.len(), 1, "dev1's alone: {markers:?}");
    browser.screenshot("policy-refused-batch").await;

    // the rules, read-only, where a refusal can be traced
    browser.click("#tab-reviews").await;
    let rules = browser.wait_text("#rules-table", "no-root-wipe").await;
    assert!(
        rules.contains("never on production") && rules.contains("a second person checks restarts"),
        "{rules}"
    );
    assert_eq!(
        browser
            .js("return document.getElementById('review-empty').hidden", vec![])
            .await,
        false,
        "nothing waits"
    );
    browser.screenshot("policy-rules").await;
    browser.close().await;
}

#[tokio::test]
async fn a_held_command_waits_in_its_terminal_until_an_admin_approves_it_from_the_queue() {
    let _turn = turn().await;
    // ana's command waits, said in her terminal with the rule and its message
    let Held {
        tree,
        _sshd,
        app,
        admin,
        browser,
        held_id,
        shown,
    } = held("ui-policy-approve", "approved").await;
    assert!(
        shown.contains("restarts") && shown.contains("a second person checks restarts"),
        "{shown}"
    );
    browser.wait_text("#term-status", "waiting for approval").await;
    browser.screenshot("policy-held-requester").await;
    assert!(!tree.join("approved").exists(), "ran before its approval");

    // the admin's top bar counts it; the queue names who, where, what, the rule
    admin.wait_text("#reviews-badge", "1 to review").await;
    admin.click("#reviews-badge").await;
    let item = admin
        .wait_text(&card(&held_id), "a second person checks restarts")
        .await;
    assert!(
        item.contains("ana") && item.contains("dev1") && item.contains("restarts"),
        "{item}"
    );
    assert!(item.contains(&restart(&tree, "approved")), "{item}");
    assert!(item.contains("expires at"), "{item}");
    admin.screenshot("policy-queue").await;
    admin
        .fill(&format!("{} .review-comment", card(&held_id)), "ok, change 42")
        .await;
    admin.click(&format!("{} .review-approve", card(&held_id))).await;

    // her terminal says it was approved, then shows what it printed
    wait_in_terminal(&browser, "#stub-pane", "Approved: running.").await;
    wait_in_terminal(&browser, "#stub-pane", "ran-42").await;
    let status = wait_ended(&browser).await;
    assert!(status.contains("exit status 0"), "{status}");
    assert!(tree.join("approved").exists());
    browser.screenshot("policy-approved-requester").await;

    // the item and the badge leave the admin's queue
    admin
        .wait(
            "the answered item gone",
            &format!("document.querySelector({}) === null", json!(card(&held_id))),
        )
        .await;
    admin
        .wait(
            "the badge gone",
            "document.getElementById('reviews-badge').hidden",
        )
        .await;
    let approved = app.audit_events("action=command.approved", 1).await;
    assert_eq!(approved[0]["user"], "ada");
    assert_eq!(approved[0]["detail"]["comment"], "ok, change 42");
    admin.close().await;
    browser.close().await;
}

#[tokio::test]
async fn a_rejection_with_a_comment_is_said_in_the_requesters_terminal_and_batch_row_and_nothing_runs() {
    let _turn = turn().await;
    let Held {
        tree,
        _sshd,
        // the daemon lives as long as the test
        app: _app,
        admin,
        browser,
        held_id,
        shown: _,
    } = held("ui-policy-reject", "rejected").await;

    // her own hold in her queue: hers, waiting, with nothing to answer
    browser.wait_text("#reviews-badge", "1 of yours waiting").await;
    browser.click("#reviews-badge").await;
    let own = browser.wait_text(&card(&held_id), "Yours, waiting").await;
    assert!(own.contains("dev1"), "{own}");
    assert_eq!(
        browser
            .js(
                "return document.querySelectorAll(arguments[0] + ' button').length",
                vec![json!(card(&held_id))]
            )
            .await,
        0,
        "no answer buttons on one's own command"
    );
    browser.screenshot("policy-own-hold").await;

    // the admin rejects it with a comment
    admin.wait_text("#reviews-badge", "1 to review").await;
    admin.click("#reviews-badge").await;
    admin.wait_text(&card(&held_id), "ana").await;
    admin
        .fill(
            &format!("{} .review-comment", card(&held_id)),
            "not now, change freeze",
        )
        .await;
    admin.click(&format!("{} .review-reject", card(&held_id))).await;

    // said where she ran it, with who and why; it never ran
    browser.click("#tab-terminal").await;
    let shown = wait_in_terminal(&browser, "#stub-pane", "not now, change freeze").await;
    assert!(
        shown.contains("Rejected by its reviewer") && shown.contains("ada"),
        "{shown}"
    );
    let status = wait_ended(&browser).await;
    assert!(status.contains("Rejected by its reviewer"), "{status}");
    assert!(!shown.contains("ran-42"), "{shown}");
    assert!(!tree.join("rejected").exists(), "the rejected command ran");
    browser
        .wait(
            "her own hold gone from her queue",
            &format!("document.querySelector({}) === null", json!(card(&held_id))),
        )
        .await;
    browser.screenshot("policy-rejected-requester").await;

    // a batch command held on dev1: its row waits, then says it was
    // rejected and never ran, with the comment
    browser.click("#tab-batch").await;
    browser
        .wait(
            "both servers picked",
            "document.querySelectorAll('#batch-servers input:checked').length === 2",
        )
        .await;
    // prod1 is unpicked: the batch runs on dev1 alone
    browser.click("#batch-servers input[value=prod1]").await;
    browser
        .fill("#batch-commands", &restart(&tree, "batch-rejected"))
        .await;
    browser.click("#batch-run").await;
    let waiting = browser
        .wait_text(
            "#batch-results table[data-server=dev1] tr.result.held",
            "waiting for approval",
        )
        .await;
    assert!(waiting.contains("a second person checks restarts"), "{waiting}");
    let batch_held = browser
        .wait(
            "the batch row's hold",
            "document.querySelector('#batch-results tr.result.held')?.dataset.held",
        )
        .await;
    let batch_held = batch_held.as_str().unwrap().to_owned();
    browser.wait_text("#reviews-badge", "1 of yours waiting").await;
    browser.screenshot("policy-held-batch").await;
    admin.wait_text(&card(&batch_held), "dev1").await;
    admin
        .fill(
            &format!("{} .review-comment", card(&batch_held)),
            "no batch restarts today",
        )
        .await;
    admin
        .click(&format!("{} .review-reject", card(&batch_held)))
        .await;
    browser
        .wait(
            "the batch to complete",
            "document.getElementById('panel-batch').dataset.state === 'done'",
        )
        .await;
    let row = browser
        .text("#batch-results table[data-server=dev1] tr.result")
        .await;
    assert!(
        row.contains("rejected (never ran)") && row.contains("no batch restarts today"),
        "{row}"
    );
    assert_eq!(
        browser
            .js(
                "return document.querySelectorAll('#batch-results tr.result.held').length",
                vec![]
            )
            .await,
        0,
        "the waiting row gave way to the result"
    );
    assert!(!tree.join("batch-rejected").exists());
    // and the hold is no longer counted as hers
    browser
        .wait(
            "her badge gone",
            "document.getElementById('reviews-badge').hidden",
        )
        .await;
    browser.screenshot("policy-rejected-batch").await;
    admin
        .wait(
            "the admin's queue empty",
            "!document.getElementById('review-empty').hidden",
        )
        .await;
    admin.screenshot("policy-queue-empty").await;
    admin.close().await;
    browser.close().await;
}
