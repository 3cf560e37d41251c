//! The STUB domain end to end: real daemon, real WebSocket, real sshd.
//!
//! (Just over 450 lines: one test per protocol rule of SPEC sections 4-6;
//! the lock's grant and revocation tests live in `lock.rs`.)
//!
//! The tests of how a command runs and ends (exit status, stop phrase,
//! timeout, cancel, input, decoding) run once per command mode
//! (`both_modes!`): exec and shell mode pass the same tests.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::fixtures::{app_with_server, app_with_server_in};
use crate::support::poll::eventually;
use crate::support::remote::{no_remote_process_for, RemoteProcess};
use crate::support::sshd::{SshdOptions, SshdServer};
use crate::support::ws::WsClient;

#[tokio::test]
async fn the_welcome_has_the_seed_shape_and_a_fresh_uuid_per_connection() {
    let app = TestApp::spawn_without_ssh().await;
    let a = WsClient::stub(&app).await;
    let b = WsClient::stub(&app).await;
    let w = &a.welcome;
    assert_eq!(w["type"], "welcome");
    assert_eq!(w["message"], "Connected to Stub SSH WebSocket");
    assert_eq!(
        w["session_status"],
        json!({"active": false, "owner": null, "owner_user": null, "since": null, "workflow_run": null})
    );
    assert!(w["server_health"].is_object(), "{w}");
    let id = uuid_of(&a.id);
    assert_eq!(id.get_version_num(), 4);
    assert_ne!(a.id, b.id);
}

fn uuid_of(s: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(s).expect("connection_id is a UUID")
}

#[tokio::test]
async fn ssh_command_without_the_lock_is_refused_with_50008() {
    let app = TestApp::spawn_without_ssh().await;
    let mut c = WsClient::stub(&app).await;
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "true", "request_id": "r1"}))
        .await;
    let err = c.expect_error().await;
    assert_eq!(err["error"]["code"], 50008);
    assert_eq!(err["request_id"], "r1");
    assert_eq!(err["success"], false);
}

#[tokio::test]
async fn the_lock_has_one_owner_and_only_the_owner_may_end_it() {
    let app = TestApp::spawn_without_ssh().await;
    let mut a = WsClient::stub(&app).await;
    let mut b = WsClient::stub(&app).await;
    a.start_session().await;

    b.send(json!({"type": "start_session"})).await;
    assert_eq!(b.expect_error().await["error"]["code"], 50004);
    b.send(json!({"type": "end_session"})).await;
    assert_eq!(b.expect_error().await["error"]["code"], 50006);
    a.send(json!({"type": "start_session"})).await;
    assert_eq!(a.expect_error().await["error"]["code"], 50007);

    a.request(json!({"type": "end_session"}), "session_ended").await;
    b.send(json!({"type": "end_session"})).await;
    assert_eq!(b.expect_error().await["error"]["code"], 50005);

    let status: Value = app.get("/api/v1/session").await.json().await.unwrap();
    assert_eq!(status["active"], false);
}

#[tokio::test]
async fn twenty_clients_grabbing_the_lock_at_once_have_exactly_one_winner() {
    let app = TestApp::spawn_without_ssh().await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(WsClient::stub(&app).await);
    }
    // all twenty requests are on the wire before any reply is read
    for c in clients.iter_mut() {
        c.send(json!({"type": "start_session"})).await;
    }
    let mut winners = Vec::new();
    let mut owners_seen = HashSet::new();
    for c in clients.iter_mut() {
        // each client gets its reply and the one broadcast of the change
        let mut reply = None;
        let mut status = None;
        while reply.is_none() || status.is_none() {
            let f = c.recv().await;
            match f["type"].as_str().unwrap() {
                "session_started" => reply = Some(true),
                "error" => {
                    assert_eq!(f["error"]["code"], 50004);
                    reply = Some(false);
                }
                "session_status" => status = Some(f),
                // the health monitor's first results may arrive any time
                "server_health" => {}
                other => panic!("unexpected {other}"),
            }
        }
        if reply == Some(true) {
            winners.push(c.id.clone());
        }
        let status = status.unwrap();
        assert_eq!(status["active"], true);
        owners_seen.insert(status["owner"].as_str().unwrap().to_owned());
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(owners_seen.len(), 1, "clients saw different owners");
    assert!(owners_seen.contains(&winners[0]));
}

crate::both_modes! {
async fn echo_completes_with_exit_and_status_0_and_exit_3_gives_3(mode) {
    let (app, _sshd) = app_with_server_in("mdwap1p", mode).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    let (out, _, done) = c.run("mdwap1p", "echo hello-from-pinkpage").await;
    assert!(out.contains("hello-from-pinkpage"), "{out}");
    assert_eq!(done["reason"], "exit");
    assert_eq!(done["exit_status"], 0);
    assert_eq!(done["server"], "mdwap1p");

    let (_, _, done) = c.run("mdwap1p", "exit 3").await;
    assert_eq!(done["reason"], "exit");
    assert_eq!(done["exit_status"], 3);
}
}

crate::both_modes! {
/// The login profile is read in shell mode only, and nothing but the
/// command's output is shown: no banner, MOTD, prompt or echo of the
/// command (test-env.sh exports the mark in the test user's ~/.profile).
async fn only_shell_mode_sees_the_login_profile_and_only_the_output_is_shown(mode) {
    let (app, _sshd) = app_with_server_in("mdwap1p", mode).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    let (out, _, done) = c.run("mdwap1p", "echo \"[$PINKPAGE_PROFILE_MARK]\"").await;
    assert_eq!(done["exit_status"], 0, "{done}");
    let expected = match mode {
        Mode::Exec => "[]\r\n",
        Mode::Shell => "[loaded]\r\n",
    };
    assert_eq!(out, expected);
}
}

#[tokio::test]
async fn an_unknown_server_gives_23000() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "ssh_command", "server": "nope", "command": "true"}))
        .await;
    assert_eq!(c.expect_error().await["error"]["code"], 23000);
    // the slot is free again
    let (_, _, done) = c.run("mdwap1p", "true").await;
    assert_eq!(done["exit_status"], 0);
}

crate::both_modes! {
async fn a_stop_phrase_printed_in_two_halves_is_detected(mode) {
    let (app, _sshd) = app_with_server_in("mdwap1p", mode).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    // The sleep starts before the phrase is complete, so the test sees it
    // running before the stop phrase ends it (the shell's hang-up reaches
    // it: without job control it is in the shell's process group).
    let sleep = format!("sleep 1002.5{}", mode.digit());
    c.send(json!({"type": "ssh_command", "server": "mdwap1p",
        "command": format!("{sleep} & printf 'ALL-DO'; sleep 0.5; printf 'NE\\n'; wait"), "stop_phrase": "ALL-DONE"}))
        .await;
    let (sleeper, (out, _, done)) =
        tokio::join!(RemoteProcess::started(&sleep), c.collect_until_complete());
    assert_eq!(done["reason"], "stop_phrase", "{done}");
    assert!(out.contains("ALL-DONE"), "{out}");
    sleeper.ended("the command survived its stop phrase").await;
}
}

#[tokio::test]
async fn a_progress_bar_arrives_in_few_messages_with_its_last_state() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    let (out, frames, done) = c
        .run(
            "mdwap1p",
            "for i in $(seq 1 200); do printf '\\r%d%%' $i; sleep 0.005; done",
        )
        .await;
    assert_eq!(done["reason"], "exit");
    assert!(frames < 60, "{frames} messages for 200 redraws");
    assert!(
        out.ends_with("\r200%"),
        "last state missing: {:?}",
        &out[out.len().saturating_sub(40)..]
    );
}

#[tokio::test]
async fn a_utf8_character_printed_one_byte_at_a_time_arrives_whole() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    // 한 is ED 95 9C: each byte on its own read, 0.2 s apart (twice the
    // throttle), between an ASCII line before and one after
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command":
        "echo before; sleep 0.2; printf '\\355'; sleep 0.2; printf '\\225'; sleep 0.2; printf '\\234'; sleep 0.5; echo after"}))
        .await;
    let (frames, done) = c.output_frames_until_complete().await;
    assert_eq!(done["reason"], "exit", "{done}");
    // no frame carries a piece of it (as U+FFFD, or a byte taken for a
    // character of its own): nothing but ASCII and the whole character...
    assert!(
        frames
            .iter()
            .all(|f| f.chars().all(|ch| ch.is_ascii() || ch == '한')),
        "{frames:?}"
    );
    // ...one frame carries it whole...
    let whole = frames.iter().position(|f| f.contains('한'));
    let whole = whole.unwrap_or_else(|| panic!("never arrived: {frames:?}"));
    assert_eq!(
        frames.iter().filter(|f| f.contains('한')).count(),
        1,
        "{frames:?}"
    );
    // ...as soon as it was complete: the line before went out while its
    // bytes trickled in, the line after in a later frame (a decoder that
    // kept everything to the end would put all three in one)
    let before = frames.iter().position(|f| f.contains("before"));
    let after = frames.iter().position(|f| f.contains("after"));
    assert!(before.is_some_and(|b| b < whole), "{frames:?}");
    assert!(after.is_some_and(|a| a > whole), "{frames:?}");
}

crate::both_modes! {
async fn an_euc_kr_server_has_its_korean_output_decoded(mode) {
    let sshd = SshdServer::start(SshdOptions::default());
    let app = TestApp::builder()
        .sshd_with("legacy", &sshd, &format!("encoding = \"euc-kr\"\n{}", mode.toml()))
        .spawn()
        .await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    let (bytes, _, _) = encoding_rs::EUC_KR.encode("안녕하세요");
    let octal: String = bytes.iter().map(|b| format!("\\{b:03o}")).collect();
    let (out, _, done) = c.run("legacy", &format!("printf '{octal}'")).await;
    assert_eq!(done["reason"], "exit");
    assert!(out.contains("안녕하세요"), "{out:?}");
}
}

crate::both_modes! {
async fn a_prompt_is_answered_through_ssh_input(mode) {
    let (app, _sshd) = app_with_server_in("mdwap1p", mode).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "read x; echo got:$x"}))
        .await;
    c.recv_until("ssh_command_started").await;
    c.send(json!({"type": "ssh_input", "data": "pink\n"})).await;
    let (out, _, done) = c.collect_until_complete().await;
    assert!(out.contains("got:pink"), "{out:?}");
    assert_eq!(done["exit_status"], 0);
}
}

crate::both_modes! {
async fn ctrl_c_through_ssh_input_stops_a_sleep(mode) {
    let (app, _sshd) = app_with_server_in("mdwap1p", mode).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    let sleep = format!("sleep 1003.5{}", mode.digit());
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": format!("echo ready; {sleep}")}))
        .await;
    c.wait_for_output("ready").await;
    let sleeper = RemoteProcess::started(&sleep).await;
    c.send(json!({"type": "ssh_input", "data": "\u{0003}"})).await;
    let (_, _, done) = c.collect_until_complete().await;
    assert_eq!(done["reason"], "exit", "{done}");
    if mode == Mode::Shell {
        // the end marker still came: the status of a command ended by
        // SIGINT (exec mode reports the signal, without a status)
        assert_eq!(done["exit_status"], 130, "{done}");
    }
    sleeper.ended("ctrl-c did not stop it").await;
}
}

#[tokio::test]
async fn after_resize_stty_size_prints_the_new_size() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.request(json!({"type": "resize", "cols": 132, "rows": 43}), "resized")
        .await;
    let (out, _, _) = c.run("mdwap1p", "stty size").await;
    assert!(out.contains("43 132"), "{out:?}");

    // and while running
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "read x; stty size"}))
        .await;
    c.recv_until("ssh_command_started").await;
    c.request(json!({"type": "resize", "cols": 100, "rows": 30}), "resized")
        .await;
    c.send(json!({"type": "ssh_input", "data": "\n"})).await;
    let (out, _, _) = c.collect_until_complete().await;
    assert!(out.contains("30 100"), "{out:?}");
}

#[tokio::test]
async fn fifty_megabytes_of_output_arrive_whole_in_few_messages_of_at_most_256_kib() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    let started = std::time::Instant::now();
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "yes | head -c 50000000"}))
        .await;
    let (frames, done) = c.output_frames_until_complete().await;
    let elapsed = started.elapsed();
    assert_eq!(done["reason"], "exit");
    let out = frames.concat();
    // the PTY turns each "y\n" into "y\r\n"
    assert_eq!(out.matches('y').count(), 25_000_000);
    assert_eq!(out.len(), 75_000_000);
    // no message over 256 KiB: a flush is cut into several
    const MAX_FRAME: usize = 256 * 1024;
    let largest = frames.iter().map(String::len).max().unwrap_or(0);
    assert!(largest <= MAX_FRAME, "a message of {largest} bytes");
    // at most one flush per 100 ms throttle (plus the first and the last),
    // each in as few messages as its size needs
    let flushes = (elapsed.as_secs_f64() / 0.1).ceil() as usize + 2;
    let bound = flushes + out.len().div_ceil(MAX_FRAME);
    assert!(
        frames.len() <= bound,
        "{} messages in {elapsed:?} (bound {bound})",
        frames.len()
    );
}

crate::both_modes! {
async fn cancel_kills_the_remote_command_and_keeps_the_lock(mode) {
    let (app, _sshd) = app_with_server_in("mdwap1p", mode).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    let sleep = format!("sleep 1004.5{}", mode.digit());
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": sleep}))
        .await;
    c.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started(&sleep).await;
    c.send(json!({"type": "cancel"})).await;
    let (_, _, done) = c.collect_until_complete().await;
    assert_eq!(done["reason"], "cancelled");
    sleeper.ended("sleep survived cancel").await;
    let status: Value = app.get("/api/v1/session").await.json().await.unwrap();
    assert_eq!(status["owner"], c.id.as_str());
    // the holder is named, with the time it took the lock
    assert_eq!(status["owner_user"], crate::support::daemon::TEST_ADMIN);
    assert!(
        status["since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{status}"
    );
    assert_eq!(status["workflow_run"], Value::Null);
}
}

#[tokio::test]
async fn end_session_kills_the_remote_command_and_releases_the_lock() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "sleep 1005.5"}))
        .await;
    c.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started("sleep 1005.5").await;
    c.send(json!({"type": "end_session"})).await;
    let (done, _) = c.recv_until("ssh_command_complete").await;
    assert_eq!(done["reason"], "cancelled");
    c.recv_until("session_ended").await;
    sleeper.ended("sleep survived end_session").await;
    let status: Value = app.get("/api/v1/session").await.json().await.unwrap();
    assert_eq!(status["active"], false);
}

#[tokio::test]
async fn closing_the_socket_kills_the_remote_command_and_releases_the_lock() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut watcher = WsClient::stub(&app).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "sleep 1006.5"}))
        .await;
    c.recv_until("ssh_command_started").await;
    let sleeper = RemoteProcess::started("sleep 1006.5").await;
    c.close().await;
    // the watcher sees the lock taken and then released
    loop {
        let (status, _) = watcher.recv_until("session_status").await;
        if status["active"] == false {
            break;
        }
    }
    sleeper.ended("sleep survived the disconnect").await;
}

#[tokio::test]
async fn bad_frames_get_their_codes_and_the_connection_keeps_working() {
    let app = TestApp::spawn_without_ssh().await;
    let mut c = WsClient::stub(&app).await;
    c.send_text("this is not json").await;
    assert_eq!(c.expect_error().await["error"]["code"], 31000);
    c.send(json!({"type": "ssh_command", "request_id": "m1"})).await;
    let e = c.expect_error().await;
    assert_eq!(e["error"]["code"], 31000);
    assert_eq!(e["request_id"], "m1");
    c.send(json!({"type": "format_disk"})).await;
    assert_eq!(c.expect_error().await["error"]["code"], 31001);
    c.send(json!({"type": "ssh_input", "data": "x".repeat(70 * 1024)}))
        .await;
    assert_eq!(c.expect_error().await["error"]["code"], 31002);
    let pong = c
        .request(json!({"type": "ping", "request_id": "p1"}), "pong")
        .await;
    assert_eq!(pong["request_id"], "p1");
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_heartbeat_timeout_and_its_lock_released() {
    let app = TestApp::builder()
        .server(ServerEntry::unreachable("mdwap1p"))
        .env("PINKPAGE_WS_HEARTBEAT_S", "0.2")
        .env("PINKPAGE_WS_TIMEOUT_S", "0.6")
        .spawn()
        .await;
    let mut silent = WsClient::stub(&app).await;
    silent.start_session().await;
    let mut watcher = WsClient::stub(&app).await;
    // from now on the silent client reads nothing, so it answers no ping
    let _raw = silent.into_raw();
    let (status, _) = watcher.recv_until("session_status").await;
    assert_eq!(status["active"], false);
    // the watcher, which answers pings, is still connected
    watcher.request(json!({"type": "ping"}), "pong").await;
}

#[tokio::test]
async fn a_second_command_while_one_runs_is_50010_and_cancel_with_nothing_running_is_50011() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "cancel"})).await;
    assert_eq!(c.expect_error().await["error"]["code"], 50011);
    c.send(json!({"type": "ssh_input", "data": "x"})).await;
    assert_eq!(c.expect_error().await["error"]["code"], 50011);
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "sleep 1007.5"}))
        .await;
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "true"}))
        .await;
    // the refusal and the first command's start may arrive in either order:
    // take the first two of either kind, then say what they must be
    let mut replies = Vec::new();
    while replies.len() < 2 {
        let f = c.recv().await;
        if f["type"] == "error" || f["type"] == "ssh_command_started" {
            replies.push(f);
        }
    }
    let kinds: HashSet<&str> = replies.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        HashSet::from(["error", "ssh_command_started"]),
        "{replies:?}"
    );
    let refusal = replies.iter().find(|f| f["type"] == "error").unwrap();
    assert_eq!(refusal["error"]["code"], 50010, "{refusal}");
    c.send(json!({"type": "cancel"})).await;
    let (_, _, done) = c.collect_until_complete().await;
    assert_eq!(done["reason"], "cancelled");
}

crate::both_modes! {
async fn a_timeout_sends_22001_and_ends_the_command(mode) {
    let (app, _sshd) = app_with_server_in("mdwap1p", mode).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    // 2 s rather than 0.5 s: long enough that the sleep is surely seen
    // running before the timeout ends it
    let sleep = format!("sleep 1008.5{}", mode.digit());
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": sleep, "timeout_s": 2}))
        .await;
    let (sleeper, (_, _, res)) =
        tokio::join!(RemoteProcess::started(&sleep), c.collect_until_complete());
    assert_eq!(res["error"]["error"]["code"], 22001, "{res}");
    assert_eq!(res["complete"]["reason"], "timeout");
    sleeper.ended("the command survived its timeout").await;
}
}

#[tokio::test]
async fn command_start_and_end_and_lock_events_are_audited() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.run("mdwap1p", "exit 7").await;
    c.request(json!({"type": "end_session"}), "session_ended").await;
    let events = eventually("session.end is audited", async || {
        let events: Value = app.get("/api/v1/audit?limit=50").await.json().await.unwrap();
        let ended = events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "session.end");
        if ended {
            Ok(events)
        } else {
            Err(events)
        }
    })
    .await;
    let events = events.as_array().unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    let end = events
        .iter()
        .find(|e| e["action"] == "ssh.command.end")
        .unwrap_or_else(|| panic!("no ssh.command.end in {actions:?}"));
    assert_eq!(end["exit_status"], 7);
    assert_eq!(end["command"], "exit 7");
    assert_eq!(end["server"], "mdwap1p");
    assert!(actions.contains(&"ssh.command.start"));
    assert!(actions.contains(&"session.start"));
}

#[tokio::test]
async fn a_client_that_stops_reading_holds_back_the_command_not_the_daemons_memory() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    // 100 MB of output: more than the daemon may hold for one client
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "yes | head -c 100000000"}))
        .await;
    c.recv_until("ssh_command_started").await;
    // The stimulus: read nothing for a while (shorter than the heartbeat
    // timeout). The daemon must stop reading the SSH channel rather than
    // buffer the output.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held_kib = app.peak_rss_kib();
    let (out, _, done) = c.collect_until_complete().await;
    assert_eq!(done["reason"], "exit", "{done}");
    assert_eq!(out.matches('y').count(), 50_000_000, "output was lost");
    eprintln!("daemon peak RSS while the client did not read: {held_kib} KiB");
    // 16 MiB of pending text plus a few frames in flight, not 100 MB
    assert!(
        held_kib < 64 * 1024,
        "the daemon buffered {held_kib} KiB for a client that did not read"
    );
}

#[tokio::test]
async fn end_session_sent_right_after_ssh_command_leaves_nothing_running() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    // back to back: the command may still be waiting for its lock check
    c.send(json!({"type": "ssh_command", "server": "mdwap1p", "command": "sleep 1009.5"}))
        .await;
    c.send(json!({"type": "end_session"})).await;
    c.recv_until("session_ended").await;
    let status: Value = app.get("/api/v1/session").await.json().await.unwrap();
    assert_eq!(status["active"], false);
    // whatever the interleaving, no command outlives the lock: the command
    // may never have started, so "gone" alone proves little; it must also
    // not start late
    no_remote_process_for("sleep 1009.5", Duration::from_secs(1)).await;
    c.send(json!({"type": "cancel"})).await;
    let err = loop {
        let f = c.recv().await;
        if f["type"] == "error" {
            break f;
        }
    };
    assert_eq!(err["error"]["code"], 50011, "a task is still registered: {err}");
}
