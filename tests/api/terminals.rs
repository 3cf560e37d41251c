//! Operator terminals end to end (`/ws/v1/terminal`, issue 25): each
//! operator's own shells outside the session lock, detach and attach by
//! offset, a detached terminal that pauses its program, shares and
//! watching, limits, idleness, access changes and shutdown; real daemon,
//! real sshd.
//!
//! Output is read through `support::term::Terms`, which checks that every
//! `terminal_output` starts exactly where the last one ended: each test
//! that reads output also proves no byte was missed or repeated.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::daemon::{Identity, TestApp};
use crate::support::fixtures::with_servers;
use crate::support::poll::eventually_within;
use crate::support::remote::RemoteProcess;
use crate::support::sshd::SshdServer;
use crate::support::term::Terms;
use crate::support::ws::WsClient;

/// A daemon whose one server is `alpha`, with settings `env`.
async fn alpha_with(env: &[(&str, &str)]) -> (TestApp, [SshdServer; 1]) {
    let (builder, servers) = with_servers(["alpha"]);
    let app = env
        .iter()
        .fold(builder, |b, (name, value)| b.env(name, value))
        .spawn()
        .await;
    (app, servers)
}

/// A new operator `name` and its connection to `/ws/v1/terminal`.
async fn operator(app: &TestApp, name: &str) -> (Identity, Terms) {
    let who = app.identity(name, "operator", None).await;
    let terms = Terms::connect(app, &who.token).await;
    (who, terms)
}

/// Types `command` (a `sleep` of a number no other test uses) into
/// terminal `id` and returns its process once seen running.
async fn running(terms: &mut Terms, id: &str, command: &str) -> RemoteProcess {
    terms.type_in(id, &format!("{command}\n")).await;
    RemoteProcess::started(command).await
}

/// The numbers of the lines `<prefix><n>` (or `<prefix><n> ...`) in
/// `text`, in order.
fn numbers(text: &str, prefix: &str) -> Vec<u64> {
    text.split(['\n', '\r'])
        .filter_map(|line| line.strip_prefix(prefix)?.split(' ').next()?.parse().ok())
        .collect()
}

/// Panics unless `ns` counts up by one from its first.
fn consecutive(ns: &[u64]) {
    for pair in ns.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "a number missing or repeated around {pair:?}"
        );
    }
}

const PAUSER: &str = r#"
[[workflows]]
name = "hold"
[[workflows.steps]]
type = "pause"
message = "hold the lock"
[[workflows.steps]]
type = "command"
server = "alpha"
command = "echo released"
"#;

#[tokio::test]
async fn two_operators_each_with_two_terminals_work_at_once_while_a_workflow_holds_the_lock() {
    let (builder, _servers) = with_servers(["alpha", "beta"]);
    let app = builder.transfers_toml(PAUSER).spawn().await;
    let carol = app.identity("carol", "operator", None).await;
    let ann = app.identity("ann", "operator", None).await;
    let bob = app.identity("bob", "operator", None).await;

    // a third user's workflow holds the session lock
    let mut stub = WsClient::connect_with_token(&app, "/ws/v1/stub", &carol.token).await;
    stub.request(
        json!({"type": "workflow_run", "workflow": "hold"}),
        "workflow_started",
    )
    .await;
    stub.recv_until("workflow_paused").await;
    let lock: Value = app.get("/api/v1/session").await.json().await.unwrap();
    assert_eq!(lock["active"], true, "{lock}");
    assert!(!lock["workflow_run"].is_null(), "{lock}");

    let mut a = Terms::connect(&app, &ann.token).await;
    let mut b = Terms::connect(&app, &bob.token).await;
    let mut shells = Vec::new();
    for (who, terms) in [("ann", &mut a), ("bob", &mut b)] {
        for server in ["alpha", "beta"] {
            let (id, _) = terms.open(server).await;
            // a variable set in this shell only: input reaches this one
            terms.type_in(&id, &format!("V={who}-{server}\n")).await;
            shells.push((who, server, id));
        }
    }
    for (who, server, id) in &shells {
        let terms = if *who == "ann" { &mut a } else { &mut b };
        terms.type_in(id, "echo got-$V-$((6*7))\n").await;
        let text = terms.output(id, &format!("got-{who}-{server}-42")).await;
        // outputs never mix: no other shell's answer in this one's text
        for (w, s, _) in &shells {
            if (w, s) != (who, server) {
                assert!(
                    !text.contains(&format!("got-{w}-{s}-42")),
                    "{who}@{server} saw {w}@{s}: {text}"
                );
            }
        }
    }
    // the workflow still holds the lock: terminals never needed it
    let lock: Value = app.get("/api/v1/session").await.json().await.unwrap();
    assert!(!lock["workflow_run"].is_null(), "{lock}");
}

#[tokio::test]
async fn a_dropped_socket_leaves_the_terminal_running_and_attach_resumes_exactly_where_it_was() {
    let (app, _servers) = alpha_with(&[]).await;
    let (ann, mut a) = operator(&app, "ann").await;
    let (id, pty_id) = a.open("alpha").await;
    a.type_in(&id, "for i in $(seq 1 100000); do echo c$i; sleep 0.1; done\n")
        .await;
    a.output(&id, "c5\r\n").await;
    let before = a.text(&id);
    let since = a.next(&id);
    // the laptop sleeps: the socket drops without a close frame
    drop(a);
    // the issue's scenario: the client comes back three seconds later
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut back = Terms::connect(&app, &ann.token).await;
    let list = back.ask(json!({"type": "terminal_list"}), "terminal_list").await;
    let listed = &list["terminals"][0];
    assert_eq!(listed["terminal_id"], id.as_str(), "{list}");
    assert_eq!(listed["pty_id"], pty_id.as_str());
    assert_eq!(listed["state"], "detached", "{list}");
    assert_eq!(listed["server"], "alpha");
    assert!(
        listed["bytes"].as_u64().unwrap() > since,
        "it kept reading while detached: {list}"
    );

    let attached = back
        .ask(
            json!({"type": "terminal_attach", "terminal_id": id, "since": since}),
            "terminal_attached",
        )
        .await;
    assert_eq!(attached["from"], since, "{attached}");
    assert_eq!(attached["cut"], false);
    // three seconds of counting came while detached, then live output
    let last_before = *numbers(&before, "c").last().unwrap();
    let resumed = back.output(&id, &format!("c{}\r\n", last_before + 40)).await;
    let all = numbers(&format!("{before}{resumed}"), "c");
    consecutive(&all);
    assert!(all.len() > 40, "{all:?}");
    let list = back.ask(json!({"type": "terminal_list"}), "terminal_list").await;
    assert_eq!(list["terminals"][0]["state"], "attached", "{list}");
    // every attach is audited
    let rows = app.audit_events("action=terminal.attach", 1).await;
    assert_eq!(rows[0]["detail"]["terminal_id"], id.as_str());
}

#[tokio::test]
async fn a_terminal_detached_past_the_detach_time_closes_its_remote_shell() {
    let (app, _servers) = alpha_with(&[("PINKPAGE_TERMINAL_DETACH_S", "2")]).await;
    let (ann, mut a) = operator(&app, "ann").await;
    let (id, _) = a.open("alpha").await;
    let sleep = running(&mut a, &id, "sleep 7301.25").await;
    drop(a);
    sleep.ended("the detach time expired").await;
    let rows = app.audit_events("action=terminal.end", 1).await;
    assert_eq!(rows[0]["detail"]["reason"], "detach_expired", "{rows:?}");
    assert_eq!(rows[0]["detail"]["error"], 54006);
    let mut back = Terms::connect(&app, &ann.token).await;
    back.refused(
        json!({"type": "terminal_attach", "terminal_id": id}),
        "terminal_attached",
        54000,
    )
    .await;
}

#[tokio::test]
async fn a_detached_terminal_full_of_unseen_output_pauses_its_program_and_loses_nothing() {
    let (app, _servers) = alpha_with(&[("PINKPAGE_TERMINAL_SCROLLBACK_BYTES", "65536")]).await;
    let ann = app.identity("ann", "operator", None).await;
    let counter = format!("/tmp/pinkpage-counter-{}", std::process::id());
    let _ = std::fs::remove_file(&counter);
    let mut a = Terms::connect(&app, &ann.token).await;
    let (id, _) = a.open("alpha").await;
    a.type_in(
        &id,
        // 200-byte lines fill the buffers between the program and the
        // ring (russh's channel queue, TCP, sshd) in seconds
        &format!("i=0; while :; do i=$((i+1)); printf 'n%08d %0190d\\n' $i 0; echo $i > {counter}; done\n"),
    )
    .await;
    a.output(&id, "n00000100").await;
    let before = a.text(&id);
    let since = a.next(&id);
    drop(a);

    // the file is rewritten on every line: a read may catch it empty,
    // which is no value (a paused program has written it whole)
    let read = || {
        (0..100).find_map(|_| {
            std::fs::read_to_string(&counter)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        })
    };
    // the program stops counting: the ring is full, the channel unread,
    // and SSH flow control holds the remote program at its next write
    let paused = eventually_within(
        Duration::from_secs(60),
        "the remote counter stops advancing",
        async || {
            let first = read();
            tokio::time::sleep(Duration::from_millis(700)).await;
            match (first, read()) {
                (Some(a), Some(b)) if a == b && a > 100 => Ok(a),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(read(), Some(paused), "it stays paused while detached");

    let mut back = Terms::connect(&app, &ann.token).await;
    let attached = back
        .ask(
            json!({"type": "terminal_attach", "terminal_id": id, "since": since}),
            "terminal_attached",
        )
        .await;
    assert_eq!(attached["from"], since, "{attached}");
    assert_eq!(attached["cut"], false, "nothing unseen was dropped: {attached}");
    // reading again lets it run on past where it paused
    let resumed = back.output(&id, &format!("n{:08}", paused + 1000)).await;
    let all = numbers(&format!("{before}{resumed}"), "n");
    consecutive(&all);
    assert!(all.contains(&paused), "every number up to the pause arrived");
    back.ask(
        json!({"type": "terminal_close", "terminal_id": id}),
        "terminal_closed",
    )
    .await;
    let _ = std::fs::remove_file(&counter);
}

#[tokio::test]
async fn other_users_cannot_touch_a_terminal_and_shares_watch_or_co_type_until_revoked() {
    let (app, _servers) = alpha_with(&[]).await;
    let ann = app.identity("ann", "operator", None).await;
    let bob = app.identity("bob", "operator", None).await;
    let vic = app.identity("vic", "viewer", None).await;
    let mut a = Terms::connect(&app, &ann.token).await;
    let (id, pty_id) = a.open("alpha").await;
    let audited_open = app.audit_events("action=terminal.open", 1).await;
    assert_eq!(audited_open[0]["user"], "ann");

    // bob may not attach, see, close or type into ann's terminal
    let mut b = Terms::connect(&app, &bob.token).await;
    for frame in [
        json!({"type": "terminal_attach", "terminal_id": id}),
        json!({"type": "terminal_close", "terminal_id": id}),
        json!({"type": "terminal_input", "terminal_id": id, "data": "echo no\n"}),
        json!({"type": "terminal_watch", "pty_id": pty_id}),
    ] {
        b.refused(frame, "never", 10003).await;
    }
    let list = b.ask(json!({"type": "terminal_list"}), "terminal_list").await;
    assert_eq!(list["terminals"], json!([]), "{list}");
    let ptys: Value = app
        .anon
        .get(app.url("/api/v1/ptys"))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ptys, json!([]), "bob sees no one else's PTY");

    // a viewer it is shared with to watch sees the output; its input is refused
    // co-typing needs an operator
    a.refused(
        json!({"type": "terminal_share", "terminal_id": id, "user": "vic", "mode": "type"}),
        "terminal_shared",
        54008,
    )
    .await;
    a.ask(
        json!({"type": "terminal_share", "terminal_id": id, "user": "vic", "mode": "watch"}),
        "terminal_shared",
    )
    .await;
    let mut v = Terms::connect(&app, &vic.token).await;
    let watching = v
        .ask(
            json!({"type": "terminal_watch", "pty_id": pty_id}),
            "terminal_watching",
        )
        .await;
    assert_eq!(watching["user"], "ann", "{watching}");
    a.type_in(&id, "echo shared-$((40+2))\n").await;
    a.output(&id, "shared-42").await;
    loop {
        let f = v.until("pty_output").await;
        assert_eq!(f["type"], "pty_output", "{f}");
        if f["data"].as_str().unwrap().contains("shared-42") {
            break;
        }
    }
    v.refused(
        json!({"type": "terminal_input", "terminal_id": id, "data": "x"}),
        "never",
        54003,
    )
    .await;

    // a co-typist's input arrives
    a.ask(
        json!({"type": "terminal_share", "terminal_id": id, "user": "bob", "mode": "type"}),
        "terminal_shared",
    )
    .await;
    let attached = b
        .ask(
            json!({"type": "terminal_attach", "terminal_id": id}),
            "terminal_attached",
        )
        .await;
    assert_eq!(attached["type"], "terminal_attached", "{attached}");
    b.type_in(&id, "echo from-bob-$((1+1))\n").await;
    a.output(&id, "from-bob-2").await;
    b.output(&id, "from-bob-2").await;
    let list = b.ask(json!({"type": "terminal_list"}), "terminal_list").await;
    assert_eq!(list["terminals"][0]["access"], "type", "{list}");

    // revoking the share cuts it at once
    a.ask(
        json!({"type": "terminal_unshare", "terminal_id": id, "user": "bob"}),
        "terminal_unshared",
    )
    .await;
    let detached = b.until("terminal_detached").await;
    assert_eq!(detached["error"]["code"], 10010, "{detached}");
    b.refused(
        json!({"type": "terminal_input", "terminal_id": id, "data": "echo late\n"}),
        "never",
        10003,
    )
    .await;
    for action in ["terminal.share", "terminal.unshare", "terminal.watch"] {
        let rows = app.audit_events(&format!("action={action}"), 1).await;
        assert_eq!(
            rows[0]["detail"]["terminal_id"],
            id.as_str(),
            "{action}: {rows:?}"
        );
    }
}

#[tokio::test]
async fn an_admin_watches_a_stub_command_from_its_scrollback_and_ptys_lists_it() {
    let (app, _servers) = alpha_with(&[]).await;
    let carol = app.identity("carol", "operator", None).await;
    let mut stub = WsClient::connect_with_token(&app, "/ws/v1/stub", &carol.token).await;
    stub.start_session().await;
    let started = stub
        .request(
            json!({"type": "ssh_command", "server": "alpha",
                   "command": "echo early-line; for i in $(seq 1 600); do echo tick$i; sleep 0.1; done"}),
            "ssh_command_started",
        )
        .await;
    let pty_id = started["pty_id"].as_str().unwrap().to_owned();
    stub.wait_for_output("tick2").await;

    let ptys: Value = app.get("/api/v1/ptys").await.json().await.unwrap();
    let listed = ptys
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pty_id"] == pty_id.as_str())
        .unwrap_or_else(|| panic!("{ptys}"));
    assert_eq!(listed["kind"], "command");
    assert_eq!(listed["user"], "carol");
    assert_eq!(listed["server"], "alpha");

    let mut admin = Terms::admin(&app).await;
    let watching = admin
        .ask(
            json!({"type": "terminal_watch", "pty_id": pty_id}),
            "terminal_watching",
        )
        .await;
    assert_eq!(watching["kind"], "command", "{watching}");
    assert_eq!(watching["from"], 0);
    // the scrollback first (the line before it watched), then live ticks
    let mut seen = String::new();
    let mut next = 0;
    while !seen.contains("tick8") {
        let f = admin.until("pty_output").await;
        assert_eq!(f["type"], "pty_output", "{f}");
        assert_eq!(f["offset"], next, "pty output follows on exactly");
        let data = f["data"].as_str().unwrap();
        next += data.len() as u64;
        seen.push_str(data);
    }
    assert!(seen.contains("early-line"), "{seen}");
    // its input is refused: the PTY is not a terminal it may type into
    admin
        .refused(
            json!({"type": "terminal_input", "terminal_id": pty_id, "data": "x"}),
            "never",
            54000,
        )
        .await;
    stub.send(json!({"type": "cancel"})).await;
    let ended = admin.until("pty_watch_ended").await;
    assert_eq!(ended["reason"], "ended", "{ended}");
    let rows = app.audit_events("action=terminal.watch", 1).await;
    assert_eq!(rows[0]["detail"]["as_admin"], true, "{rows:?}");
}

#[tokio::test]
async fn the_per_user_and_daemon_limits_refuse_with_their_codes() {
    let (app, _servers) = alpha_with(&[
        ("PINKPAGE_TERMINALS_PER_USER", "2"),
        ("PINKPAGE_TERMINALS_MAX", "3"),
    ])
    .await;
    let ann = app.identity("ann", "operator", None).await;
    let bob = app.identity("bob", "operator", None).await;
    let mut a = Terms::connect(&app, &ann.token).await;
    a.open("alpha").await;
    let (second, _) = a.open("alpha").await;
    a.refused(
        json!({"type": "terminal_open", "server": "alpha"}),
        "terminal_opened",
        54001,
    )
    .await;
    let mut b = Terms::connect(&app, &bob.token).await;
    b.open("alpha").await;
    b.refused(
        json!({"type": "terminal_open", "server": "alpha"}),
        "terminal_opened",
        54002,
    )
    .await;
    // closing one gives its place back
    let closed = a
        .ask(
            json!({"type": "terminal_close", "terminal_id": second}),
            "terminal_closed",
        )
        .await;
    assert_eq!(closed["reason"], "closed", "{closed}");
    b.open("alpha").await;
    // bad input has its own codes
    a.refused(
        json!({"type": "terminal_open", "server": "alpha", "cols": 0}),
        "terminal_opened",
        10001,
    )
    .await;
    a.refused(
        json!({"type": "terminal_open", "server": "nowhere"}),
        "terminal_opened",
        23000,
    )
    .await;
    a.refused(
        json!({"type": "terminal_attach", "terminal_id": "not-an-id"}),
        "terminal_attached",
        10001,
    )
    .await;
}

#[tokio::test]
async fn an_idle_terminal_is_warned_then_closed_with_54005() {
    let (app, _servers) = alpha_with(&[("PINKPAGE_TERMINAL_IDLE_S", "3")]).await;
    let (_ann, mut a) = operator(&app, "ann").await;
    let (id, _) = a.open("alpha").await;
    let sleep = running(&mut a, &id, "sleep 7302.5").await;
    let warning = a.until("terminal_idle_warning").await;
    assert_eq!(warning["terminal_id"], id.as_str(), "{warning}");
    let left = warning["closes_in_s"].as_f64().unwrap();
    assert!(left > 0.0 && left <= 1.5, "{warning}");
    let closed = a.until("terminal_closed").await;
    assert_eq!(closed["reason"], "idle", "{closed}");
    assert_eq!(closed["error"]["code"], 54005);
    sleep.ended("the idle terminal was closed").await;
}

#[tokio::test]
async fn disabling_the_owner_closes_its_terminals_and_a_shutdown_closes_them_with_a_reason() {
    let (mut app, _servers) = alpha_with(&[]).await;
    let otto = app.identity("otto", "operator", None).await;
    let ann = app.identity("ann", "operator", None).await;
    let mut o = Terms::connect(&app, &otto.token).await;
    let (id, _) = o.open("alpha").await;
    let sleep = running(&mut o, &id, "sleep 7303.5").await;
    drop(o); // detached: the account, not a connection, is judged
    let res = app
        .http
        .patch(app.url("/api/v1/users/otto"))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    sleep.ended("the owner's account was disabled").await;
    let rows = app.audit_events("action=terminal.end", 1).await;
    assert_eq!(rows[0]["detail"]["reason"], "access_changed", "{rows:?}");
    assert_eq!(rows[0]["detail"]["error"], 10010);

    // the daemon stops: an attached client is told why its terminal closed
    let mut a = Terms::connect(&app, &ann.token).await;
    let (id, _) = a.open("alpha").await;
    let sleep = running(&mut a, &id, "sleep 7303.75").await;
    let stopping = tokio::spawn(async move {
        let status = app.signal_and_wait("TERM", Duration::from_secs(20)).await;
        (app, status)
    });
    let closed = a.until("terminal_closed").await;
    assert_eq!(closed["reason"], "shutdown", "{closed}");
    assert_eq!(closed["error"]["code"], 30004);
    let (_app, status) = stopping.await.unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    sleep
        .ended("the daemon closed its terminals on the way out")
        .await;
}

crate::both_modes! {
async fn a_terminal_is_an_interactive_login_shell_in_both_modes_with_the_servers_encoding(mode) {
    let sshd = crate::support::sshd::SshdServer::start(crate::support::sshd::SshdOptions::default());
    let app = crate::support::daemon::TestApp::builder()
        .sshd_with("legacy", &sshd, &format!("encoding = \"euc-kr\"\n{}", mode.toml()))
        .spawn()
        .await;
    let (_ann, mut a) = operator(&app, "ann").await;
    let (id, _) = a.open("legacy").await;
    // an interactive shell: a variable set by one line is there for the next
    a.type_in(&id, "K=kept\n").await;
    let (bytes, _, _) = encoding_rs::EUC_KR.encode("안녕하세요");
    let octal: String = bytes.iter().map(|b| format!("\\{b:03o}")).collect();
    a.type_in(&id, &format!("printf '{octal} %s\\n' $K\n")).await;
    a.output(&id, "안녕하세요 kept").await;
    // offsets count UTF-8 bytes of the decoded text: all of it so far
    assert_eq!(a.next(&id), a.text(&id).len() as u64);
}
}

#[tokio::test]
async fn two_connections_of_the_owner_both_see_the_output_and_both_may_type() {
    let (app, _servers) = alpha_with(&[]).await;
    let (ann, mut laptop) = operator(&app, "ann").await;
    let (id, _) = laptop.open("alpha").await;
    let mut desktop = Terms::connect(&app, &ann.token).await;
    let attached = desktop
        .ask(
            json!({"type": "terminal_attach", "terminal_id": id}),
            "terminal_attached",
        )
        .await;
    assert_eq!(attached["from"], 0, "all of the scrollback: {attached}");
    desktop.type_in(&id, "echo from-desk-$((2*3))\n").await;
    laptop.output(&id, "from-desk-6").await;
    desktop.output(&id, "from-desk-6").await;
    laptop.type_in(&id, "echo from-lap-$((3*3))\n").await;
    desktop.output(&id, "from-lap-9").await;
    laptop.output(&id, "from-lap-9").await;
    let list = laptop
        .ask(json!({"type": "terminal_list"}), "terminal_list")
        .await;
    assert_eq!(list["terminals"][0]["attached"], 2, "{list}");
}

#[tokio::test]
async fn a_watcher_that_stops_reading_is_dropped_and_never_slows_the_terminal() {
    let (app, _servers) = alpha_with(&[]).await;
    let (_ann, mut a) = operator(&app, "ann").await;
    let (id, pty_id) = a.open("alpha").await;
    // the admin watches over a socket with a tiny buffer, and stops reading
    let mut watcher = WsClient::connect_slow_reader(&app, "/ws/v1/terminal").await;
    watcher
        .send(json!({"type": "terminal_watch", "pty_id": pty_id, "request_id": "w"}))
        .await;
    let watching = watcher.recv().await;
    assert_eq!(watching["type"], "terminal_watching", "{watching}");
    // 20 MB through the terminal while the watcher reads nothing
    a.type_in(
        &id,
        "head -c 20000000 /dev/zero | tr '\\0' 'z'; echo; echo printed-''all\n",
    )
    .await;
    let text = a.output(&id, "printed-all").await;
    assert!(text.len() > 20_000_000, "the owner got it all: {}", text.len());
    let logs = app.logs_settled().await;
    assert!(
        logs.contains("watcher fell behind; dropped"),
        "the watcher was dropped"
    );
    // reading again, it finds its watch ended (or the socket dropped as stalled)
    let mut ended = None;
    while let Some(f) = watcher.try_recv(Duration::from_secs(10)).await {
        if f["type"] == "pty_watch_ended" {
            ended = Some(f);
            break;
        }
    }
    if let Some(ended) = ended {
        assert_eq!(ended["reason"], "behind", "{ended}");
    }
}

#[tokio::test]
async fn a_terminal_whose_command_exits_closes_with_its_exit_status_after_its_last_output() {
    let (app, _servers) = alpha_with(&[]).await;
    let (_ann, mut a) = operator(&app, "ann").await;
    let opened = a
        .ask(
            json!({"type": "terminal_open", "server": "alpha", "command": "echo last-words; exit 3"}),
            "terminal_opened",
        )
        .await;
    let id = opened["terminal_id"].as_str().unwrap().to_owned();
    a.seen.entry(id.clone()).or_default();
    let closed = a.until("terminal_closed").await;
    assert_eq!(closed["reason"], "exit", "{closed}");
    assert_eq!(closed["exit_status"], 3, "{closed}");
    assert!(
        a.text(&id).contains("last-words"),
        "its output came before its end"
    );
    let rows = app.audit_events("action=terminal.end", 1).await;
    assert_eq!(rows[0]["detail"]["reason"], "exit", "{rows:?}");
}
