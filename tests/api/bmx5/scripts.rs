//! BMX5 remote scripts: arguments, exit codes, timeout, cancel,
//! disconnect, names from the scripts directory.

use std::time::Duration;

use super::*;
use crate::support::remote::pgrep;

/// Runs `script` with `args` and returns (output with `\r\n` as `\n`,
/// the remote temporary path, the completion).
async fn run_script(c: &mut WsClient, frame: Value) -> (String, String, Value) {
    c.send(frame).await;
    let mut remote = String::new();
    let mut out = String::new();
    loop {
        let f = c.recv().await;
        match f["type"].as_str() {
            Some("script_started") => remote = f["remote_path"].as_str().unwrap().to_owned(),
            Some("script_output") => out.push_str(f["data"].as_str().unwrap()),
            Some("script_complete") => return (out.replace("\r\n", "\n"), remote, f),
            Some("error") if f["error"]["code"] == 22001 => {}
            Some("error") => panic!("{f}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_script_gets_its_arguments_byte_for_byte_and_its_exit_code_comes_back() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = bmx5(&app).await;
    let pwned = format!("/tmp/pp-bmx5-pwned-{}-{}", std::process::id(), app.port);
    let args = [
        "a b",
        "it's",
        &format!("$(touch {pwned})"),
        ";rm -rf ~",
        "\"quoted\"",
        "",
        "새 인자",
    ];
    let script = "#!/bin/sh\nfor a in \"$@\"; do printf '<%s>\\n' \"$a\"; done\nexit 7\n";

    let (out, remote, done) = run_script(
        &mut c,
        json!({"type": "script_execute", "server": "mdwap1p", "script": script, "args": args, "request_id": "s1"}),
    )
    .await;

    let expected: String = args.iter().map(|a| format!("<{a}>\n")).collect();
    assert_eq!(out, expected);
    assert_eq!(done["exit_status"], 7, "{done}");
    assert_eq!(done["reason"], "exit");
    assert_eq!(done["request_id"], "s1");
    assert!(!Path::new(&pwned).exists(), "an argument was run as a command");
    assert!(remote.starts_with("/tmp/.pinkpage-script-"), "{remote}");
    assert!(
        !Path::new(&remote).exists(),
        "the temporary script is still there"
    );
    let audit = app.audit_events("action=script.end", 1).await;
    assert_eq!(audit[0]["exit_status"], 7, "{audit:?}");
}

#[tokio::test]
async fn a_script_that_runs_past_its_timeout_is_killed_and_its_file_removed() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = bmx5(&app).await;
    let marker = format!("sleep 3456.{}", app.port);

    let (sleeper, (_, remote, done)) = tokio::join!(
        RemoteProcess::started(&marker),
        run_script(
            &mut c,
            json!({"type": "script_execute", "server": "mdwap1p", "script": format!("{marker}\n"), "timeout_s": 1}),
        )
    );

    assert_eq!(done["reason"], "timeout", "{done}");
    assert!(!remote.is_empty());
    assert!(
        !Path::new(&remote).exists(),
        "the temporary script is still there"
    );
    sleeper.ended("the script still runs").await;
}

#[tokio::test]
async fn a_cancelled_script_is_killed_and_its_file_removed() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = bmx5(&app).await;
    let marker = format!("sleep 4567.{}", app.port);
    c.send(
        json!({"type": "script_execute", "server": "mdwap1p", "script": format!("echo started\n{marker}\n")}),
    )
    .await;
    let (started, _) = c.recv_until("script_started").await;
    let remote = started["remote_path"].as_str().unwrap().to_owned();
    let mut out = String::new();
    while !out.contains("started") {
        let f = c.recv().await;
        if f["type"] == "script_output" {
            out.push_str(f["data"].as_str().unwrap());
        }
    }
    let sleeper = RemoteProcess::started(&marker).await;
    let mode = std::fs::metadata(&remote).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o700, "the temporary script is private: {mode:o}");

    c.send(json!({"type": "script_cancel"})).await;
    let (done, _) = c.recv_until("script_complete").await;

    assert_eq!(done["reason"], "cancelled", "{done}");
    assert!(
        !Path::new(&remote).exists(),
        "the temporary script is still there"
    );
    sleeper.ended("the script still runs").await;
    let none = c.ask(json!({"type": "script_cancel"}), "never").await;
    assert_eq!(none["error"]["code"], 50011, "{none}");
}

#[tokio::test]
async fn a_script_of_a_client_that_disconnects_is_killed_and_its_file_removed() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = bmx5(&app).await;
    let marker = format!("sleep 5678.{}", app.port);
    c.send(json!({"type": "script_execute", "server": "mdwap1p", "script": format!("{marker}\n")}))
        .await;
    let (started, _) = c.recv_until("script_started").await;
    let remote = started["remote_path"].as_str().unwrap().to_owned();
    let sleeper = RemoteProcess::started(&marker).await;
    // seen there first, so "removed" below can fail
    assert!(Path::new(&remote).exists(), "no script at {remote}");

    drop(c.into_raw());

    eventually("the temporary script is removed", async || {
        !Path::new(&remote).exists()
    })
    .await;
    sleeper.ended("the script still runs").await;
}

#[tokio::test]
async fn script_names_are_plain_file_names_from_the_scripts_directory() {
    let (builder, _sshd) = with_servers(["mdwap1p"]);
    let scripts = TempTree::private("scripts");
    std::fs::write(scripts.join("hello.sh"), "#!/bin/sh\necho \"hello $1\"\n").unwrap();
    let app = builder
        .env("PINKPAGE_SCRIPTS_DIR", scripts.root().to_str().unwrap())
        .spawn()
        .await;
    let mut c = bmx5(&app).await;

    for name in ["../hello.sh", "../../etc/passwd", "", ".hidden", "a/b"] {
        let err = c
            .ask(
                json!({"type": "script_execute", "server": "mdwap1p", "script_name": name}),
                "script_started",
            )
            .await;
        assert_eq!(err["error"]["code"], 10001, "{name:?}: {err}");
    }
    let (out, _, done) = run_script(
        &mut c,
        json!({"type": "script_execute", "server": "mdwap1p", "script_name": "hello.sh", "args": ["world"]}),
    )
    .await;
    assert_eq!(out, "hello world\n");
    assert_eq!(done["exit_status"], 0);
}

#[tokio::test]
async fn a_client_that_stops_reading_slows_a_fast_script_instead_of_growing_the_daemon() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = bmx5(&app).await;
    // Random bytes as base64 at PTY speed with no throttle: the daemon
    // must stop reading the channel rather than hold what the client does
    // not take.
    c.send(
        json!({"type": "script_execute", "server": "mdwap1p", "throttle_ms": 0,
        "script": "#!/bin/sh\ncat /dev/urandom | base64\n"}),
    )
    .await;
    let (started, _) = c.recv_until("script_started").await;
    let remote = started["remote_path"].as_str().unwrap().to_owned();
    let script = RemoteProcess::started(&remote).await;
    // The stimulus: read nothing for 6 s (the 30 s cut to keep the
    // suite short; the bound is reached within the first second).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let held_kib = app.peak_rss_kib();
    eprintln!("daemon peak RSS while the script client did not read: {held_kib} KiB");
    // the same bound as STUB's: a bounded mailbox of output plus the socket
    // buffers, not six seconds of PTY output (hundreds of MB)
    assert!(
        held_kib < 64 * 1024,
        "the daemon buffered {held_kib} KiB for a client that did not read"
    );
    // slowed, not killed: it still runs, and output flows once read again
    assert!(pgrep(&remote), "the script was killed instead of slowed");
    let mut bytes = 0;
    while bytes < 4 << 20 {
        let f = c.recv().await;
        assert_ne!(f["type"], "script_complete", "the script ended: {f}");
        if f["type"] == "script_output" {
            bytes += f["data"].as_str().unwrap().len();
        }
    }
    c.send(json!({"type": "script_cancel"})).await;
    let (done, _) = c.recv_until("script_complete").await;
    assert_eq!(done["reason"], "cancelled", "{done}");
    script.ended("the cancelled script still runs").await;
}
