//! Recordings of PTYs end to end (issue 26): a STUB command, an operator
//! terminal and a workflow step are recorded as asciicast v2 files that
//! `asciinema cat` replays, with their timing and resizes; input is kept
//! only when asked; a `kill -9` leaves a readable file and an index that
//! says `interrupted`; retention removes the oldest first; a full disk
//! stops a recording (the PTY goes on, its owner is told) and refuses new
//! PTYs; readers see only what they may. Real daemon, real sshd.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::support::daemon::{Identity, TestApp};
use crate::support::fixtures::with_servers;
use crate::support::poll::eventually;
use crate::support::sshd::{SshdOptions, SshdServer};
use crate::support::term::Terms;
use crate::support::tmpfs::Tmpfs;
use crate::support::ws::WsClient;

/// One parsed asciicast v2 file.
struct Cast {
    header: Value,
    /// `(seconds, kind, data)`.
    events: Vec<(f64, String, String)>,
}

impl Cast {
    /// Parses `text` line by line; panics on a line that is not one
    /// asciicast v2 header or event.
    fn parse(text: &str) -> Cast {
        assert!(text.ends_with('\n'), "a cast ends with a full line");
        let mut lines = text.lines();
        let header: Value = serde_json::from_str(lines.next().expect("a header")).expect("header JSON");
        assert_eq!(header["version"], 2, "{header}");
        let events = lines
            .map(|line| {
                let e: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
                let e = e.as_array().unwrap_or_else(|| panic!("not an array: {line}"));
                assert_eq!(e.len(), 3, "{line}");
                (
                    e[0].as_f64().expect("a time"),
                    e[1].as_str().expect("a kind").to_owned(),
                    e[2].as_str().expect("data").to_owned(),
                )
            })
            .collect();
        Cast { header, events }
    }

    /// Every `o` event's text, joined.
    fn output(&self) -> String {
        self.of("o").map(|(_, d)| d).collect()
    }

    /// The events of `kind`: (time, data).
    fn of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (f64, &'a str)> + 'a {
        self.events
            .iter()
            .filter(move |(_, k, _)| k == kind)
            .map(|(t, _, d)| (*t, d.as_str()))
    }

    /// The time of the first `o` event containing `needle`.
    fn time_of(&self, needle: &str) -> f64 {
        // the needle may be split across events: find the event where the
        // joined output first contains it
        let mut joined = String::new();
        for (t, d) in self.of("o") {
            joined.push_str(d);
            if joined.contains(needle) {
                return t;
            }
        }
        panic!("{needle:?} is not in the output: {joined:?}")
    }

    /// Panics unless the event times never go back.
    fn times_never_go_back(&self) {
        for pair in self.events.windows(2) {
            assert!(
                pair[0].0 <= pair[1].0,
                "time went back: {:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
    }
}

/// The recording `id` once its index says it is no longer `recording`.
async fn finished(app: &TestApp, token: Option<&str>, id: &str) -> Value {
    eventually(&format!("recording {id} ended"), async || {
        let list = list(app, token, "limit=1000").await;
        match list.as_array().unwrap().iter().find(|r| r["id"] == id) {
            Some(r) if r["state"] != "recording" => Ok(r.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// `GET /api/v1/recordings?<query>` as `token` (the test admin when
/// `None`).
async fn list(app: &TestApp, token: Option<&str>, query: &str) -> Value {
    let res = get_as(app, token, &format!("/api/v1/recordings?{query}")).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn get_as(app: &TestApp, token: Option<&str>, path: &str) -> reqwest::Response {
    match token {
        Some(token) => app
            .anon
            .get(app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
        None => app.get(path).await,
    }
}

/// The recording's file as served.
async fn fetch(app: &TestApp, id: &str) -> String {
    let res = app.get(&format!("/api/v1/recordings/{id}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-asciicast");
    res.text().await.unwrap()
}

/// What `asciinema cat` prints of `cast` (the real player's reading of the
/// file; installed by scripts/test-env.sh).
fn asciinema_cat(dir: &Path, cast: &str) -> String {
    let path = dir.join(format!("replay-{}.cast", uuid::Uuid::new_v4()));
    std::fs::write(&path, cast).unwrap();
    let out = Command::new("asciinema")
        .arg("cat")
        .arg(&path)
        .output()
        .expect("asciinema is installed (scripts/test-env.sh)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The recordings directory of `app`.
fn recordings_dir(app: &TestApp) -> PathBuf {
    app.dir().join("data/recordings")
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A running command's `pty_id`, from its `ssh_command_started`.
async fn command(stub: &mut WsClient, server: &str, command: &str) -> String {
    let started = stub
        .ask(
            json!({"type": "ssh_command", "server": server, "command": command}),
            "ssh_command_started",
        )
        .await;
    started["pty_id"].as_str().expect("a pty_id").to_owned()
}

#[tokio::test]
async fn a_recorded_command_replays_exactly_with_its_timing_and_its_resize() {
    let (builder, _servers) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let mut stub = WsClient::stub(&app).await;
    stub.start_session().await;
    let id = command(
        &mut stub,
        "alpha",
        "printf 'one\\n'; sleep 0.6; printf 'two\\n'; read go; stty size; printf 'three \\342\\234\\223\\n'",
    )
    .await;
    stub.wait_for_output("two").await;
    stub.ask(json!({"type": "resize", "cols": 91, "rows": 21}), "resized")
        .await;
    stub.send(json!({"type": "ssh_input", "data": "go\n"})).await;
    let (_, _, complete) = stub.collect_until_complete().await;
    assert_eq!(complete["exit_status"], 0, "{complete}");

    let indexed = finished(&app, None, &id).await;
    assert_eq!(indexed["state"], "ended", "{indexed}");
    assert_eq!(indexed["reason"], "exit", "{indexed}");
    assert_eq!(indexed["exit_status"], 0, "{indexed}");
    assert_eq!(indexed["kind"], "command", "{indexed}");
    assert_eq!(indexed["server"], "alpha", "{indexed}");
    let text = fetch(&app, &id).await;
    assert_eq!(indexed["bytes"], text.len(), "the index has the file's size");
    let cast = Cast::parse(&text);
    assert_eq!(
        cast.header["title"],
        format!("{}@alpha", crate::support::daemon::TEST_ADMIN)
    );
    assert_eq!(cast.header["env"]["TERM"], "xterm");
    assert!(
        cast.header["command"]
            .as_str()
            .unwrap()
            .starts_with("printf 'one"),
        "{}",
        cast.header
    );
    assert!(cast.header["width"].as_u64().is_some() && cast.header["height"].as_u64().is_some());
    cast.times_never_go_back();
    // the sleep between one and two is in the timing (the remote side's,
    // not the throttle's)
    let gap = cast.time_of("two") - cast.time_of("one");
    assert!(
        (0.5..3.0).contains(&gap),
        "one -> two took {gap} s in the recording"
    );
    // the resize is an `r` event with the new size, before the size the
    // command printed
    let resizes: Vec<_> = cast.of("r").collect();
    assert_eq!(resizes.len(), 1, "{:?}", cast.events);
    assert_eq!(resizes[0].1, "91x21");
    assert!(resizes[0].0 <= cast.time_of("21 91"));
    // input is not recorded by default
    assert_eq!(cast.of("i").count(), 0);
    // what the remote side printed, in order, UTF-8 whole
    let output = cast.output();
    let order: Vec<_> = ["one", "two", "21 91", "three \u{2713}"]
        .iter()
        .map(|n| {
            output
                .find(n)
                .unwrap_or_else(|| panic!("{n:?} missing: {output:?}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{output:?}");
    // and the real player reads the file back to exactly that text
    assert_eq!(asciinema_cat(app.dir(), &text), output);
}

#[tokio::test]
async fn an_operator_terminal_is_recorded_as_its_client_saw_it_and_keeps_recording_detached() {
    let (builder, _servers) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let ann = app.identity("ann", "operator", None).await;
    let mut terms = Terms::connect(&app, &ann.token).await;
    let (tid, pty_id) = terms.open("alpha").await;
    terms
        .type_in(&tid, "printf 'A-%s\\n' 1; sleep 0.5; printf 'B-%s\\n' 2\n")
        .await;
    terms.output(&tid, "B-2").await;
    terms
        .ask(
            json!({"type": "terminal_resize", "terminal_id": tid, "cols": 101, "rows": 33}),
            "terminal_resized",
        )
        .await;
    // detached, it goes on and is recorded
    terms
        .ask(
            json!({"type": "terminal_detach", "terminal_id": tid}),
            "terminal_detached",
        )
        .await;
    let marker = format!("detached-{}", app.port);
    let id_for_attach = tid.clone();
    drop(terms);
    let mut again = Terms::connect(&app, &ann.token).await;
    again
        .ask(
            json!({"type": "terminal_attach", "terminal_id": id_for_attach, "since": 0}),
            "terminal_attached",
        )
        .await;
    again.type_in(&tid, &format!("echo {marker}; exit\n")).await;
    again.until("terminal_closed").await;
    let seen = again.text(&tid);
    assert!(seen.contains(&marker), "{seen:?}");

    let indexed = finished(&app, Some(&ann.token), &pty_id).await;
    assert_eq!(indexed["kind"], "terminal", "{indexed}");
    assert_eq!(indexed["terminal_id"], tid.as_str(), "{indexed}");
    assert_eq!(indexed["user"], "ann", "{indexed}");
    let text = fetch(&app, &pty_id).await;
    let cast = Cast::parse(&text);
    assert_eq!(cast.header["env"]["TERM"], "xterm-256color");
    assert_eq!(cast.header["title"], "ann@alpha");
    cast.times_never_go_back();
    let gap = cast.time_of("B-2") - cast.time_of("A-1");
    assert!((0.4..3.0).contains(&gap), "A -> B took {gap} s");
    assert_eq!(cast.of("r").map(|(_, d)| d).collect::<Vec<_>>(), ["101x33"]);
    // an operator terminal sends text as it came: the recording is exactly
    // what its client received from offset 0
    assert_eq!(cast.output(), seen);
    assert_eq!(asciinema_cat(app.dir(), &text), seen);
}

const STEPS: &str = r#"
[[workflows]]
name = "recorded"
[[workflows.steps]]
type = "command"
server = "alpha"
command = "printf 'w-1\n'; sleep 0.4; printf 'w-2\n'"
[[workflows.steps]]
type = "command"
server = "alpha"
command = "echo second-step"
"#;

#[tokio::test]
async fn each_workflow_command_step_is_recorded_and_named_by_its_run_and_step() {
    let (builder, _servers) = with_servers(["alpha"]);
    let app = builder.transfers_toml(STEPS).spawn().await;
    let mut stub = WsClient::stub(&app).await;
    let started = stub
        .request(
            json!({"type": "workflow_run", "workflow": "recorded"}),
            "workflow_started",
        )
        .await;
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    stub.recv_until("workflow_complete").await;
    let steps = eventually("both steps indexed and ended", async || {
        let l = list(&app, None, &format!("run_id={run_id}")).await;
        let steps = l.as_array().unwrap().clone();
        if steps.len() == 2 && steps.iter().all(|r| r["state"] == "ended") {
            Ok(steps)
        } else {
            Err(l)
        }
    })
    .await;
    let first = steps.iter().find(|r| r["step"] == 0).expect("step 0");
    let second = steps.iter().find(|r| r["step"] == 1).expect("step 1");
    assert_eq!(first["kind"], "workflow_step");
    assert_eq!(first["run_id"], run_id.as_str());
    let text = fetch(&app, first["id"].as_str().unwrap()).await;
    let cast = Cast::parse(&text);
    cast.times_never_go_back();
    let gap = cast.time_of("w-2") - cast.time_of("w-1");
    assert!((0.3..3.0).contains(&gap), "w-1 -> w-2 took {gap} s");
    assert_eq!(asciinema_cat(app.dir(), &text), cast.output());
    let second = Cast::parse(&fetch(&app, second["id"].as_str().unwrap()).await);
    assert!(second.output().contains("second-step"), "{:?}", second.events);
}

/// Runs a command that reads a password with `read -s` on `app`, types
/// `secret`, and returns the recording's text.
async fn type_a_password(app: &TestApp, secret: &str) -> String {
    let mut stub = WsClient::stub(app).await;
    stub.start_session().await;
    let id = command(
        &mut stub,
        "alpha",
        "read -s -p 'Password: ' pw; echo; echo length-${#pw}",
    )
    .await;
    stub.wait_for_output("Password:").await;
    stub.send(json!({"type": "ssh_input", "data": format!("{secret}\n")}))
        .await;
    let (out, _, _) = stub.collect_until_complete().await;
    assert!(out.contains(&format!("length-{}", secret.len())), "{out}");
    finished(app, None, &id).await;
    fetch(app, &id).await
}

#[tokio::test]
async fn a_password_typed_at_a_prompt_is_in_no_file_row_or_log_unless_input_recording_is_on() {
    let secret = format!("hunter2-{}", uuid::Uuid::new_v4().simple());
    let (builder, _servers) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let text = type_a_password(&app, &secret).await;
    assert!(!text.contains(&secret), "the recording holds the password");
    for file in files_under(&recordings_dir(&app)) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&secret),
            "{}",
            file.display()
        );
    }
    // the database (and its write-ahead log) and the daemon's log
    let db = app.database().to_path_buf();
    for file in [db.clone(), PathBuf::from(format!("{}-wal", db.display()))] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&secret),
                "{}",
                file.display()
            );
        }
    }
    assert!(
        !app.logs_settled().await.contains(&secret),
        "the log holds the password"
    );

    // the same steps with input recording on keep it: the checks above
    // would have seen it
    let (builder, _servers) = with_servers(["alpha"]);
    let recorded = builder.env("PINKPAGE_RECORD_INPUT", "true").spawn().await;
    let text = type_a_password(&recorded, &secret).await;
    let cast = Cast::parse(&text);
    let typed: String = cast.of("i").map(|(_, d)| d).collect();
    assert_eq!(typed, format!("{secret}\n"));
}

#[tokio::test]
async fn a_recording_survives_kill_9_readable_to_its_last_full_event_and_is_marked_interrupted() {
    let (builder, _servers) = with_servers(["alpha"]);
    let mut app = builder.spawn().await;
    let ann = app.identity("ann", "operator", None).await;
    let mut terms = Terms::connect(&app, &ann.token).await;
    let (tid, pty_id) = terms.open("alpha").await;
    let tag = format!("k9-{}", app.port);
    terms
        .type_in(
            &tid,
            &format!("for i in $(seq 1 100000); do echo {tag}-$i; sleep 0.01; done\n"),
        )
        .await;
    terms.output(&tid, &format!("{tag}-50\r\n")).await;
    let indexed = list(&app, None, "limit=10").await;
    assert_eq!(indexed[0]["id"], pty_id.as_str());
    assert_eq!(indexed[0]["state"], "recording");

    app.kill_and_restart().await;
    let after = finished(&app, None, &pty_id).await;
    assert_eq!(after["state"], "interrupted", "{after}");
    assert_eq!(after["reason"], "interrupted", "{after}");
    let text = fetch(&app, &pty_id).await;
    // whole lines only, every one an event, and the output up to the kill
    let cast = Cast::parse(&text);
    cast.times_never_go_back();
    let output = cast.output();
    assert!(output.contains(&format!("{tag}-50\r\n")), "{output:?}");
    let on_disk = std::fs::metadata(files_under(&recordings_dir(&app))[0].clone())
        .unwrap()
        .len();
    assert!(text.len() as u64 <= on_disk);
}

#[tokio::test]
async fn retention_removes_the_oldest_recordings_first_and_audits_each() {
    let (builder, _servers) = with_servers(["alpha"]);
    // each recording below is ~2.3 KB: two fit, three do not
    let app = builder.env("PINKPAGE_RECORDINGS_MAX_BYTES", "5000").spawn().await;
    let mut stub = WsClient::stub(&app).await;
    stub.start_session().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let id = command(
            &mut stub,
            "alpha",
            &format!("head -c 1500 /dev/zero | tr '\\0' '{n}'"),
        )
        .await;
        stub.collect_until_complete().await;
        finished(&app, None, &id).await;
        ids.push(id);
    }
    let expired = app.audit_events("action=recording.expire", 1).await;
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(
        expired[0]["detail"]["pty_id"],
        ids[0].as_str(),
        "the oldest goes first"
    );
    assert_eq!(expired[0]["detail"]["reason"], "max_bytes");
    let left = eventually("the oldest unlisted", async || {
        let l = list(&app, None, "limit=100").await;
        let ids: Vec<String> = l
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        if ids.len() == 2 {
            Ok(ids)
        } else {
            Err(format!("{ids:?}"))
        }
    })
    .await;
    assert_eq!(left, [ids[2].clone(), ids[1].clone()]);
    let res = app.get(&format!("/api/v1/recordings/{}", ids[0])).await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 56000);
    assert_eq!(files_under(&recordings_dir(&app)).len(), 2);
}

#[tokio::test]
async fn a_full_disk_stops_a_recording_the_owner_is_told_the_shell_goes_on_and_new_ptys_are_refused() {
    let Some(disk) = Tmpfs::mount_or_skip("256k", "a_full_disk_stops_a_recording") else {
        return;
    };
    let sshd = SshdServer::start(SshdOptions::default());
    let app = TestApp::builder()
        .sshd("alpha", &sshd)
        .env("PINKPAGE_DATA_DIR", disk.path().to_str().unwrap())
        .spawn()
        .await;
    let ann = app.identity("ann", "operator", None).await;
    let mut terms = Terms::connect(&app, &ann.token).await;
    let (tid, pty_id) = terms.open("alpha").await;
    // more output than the disk holds
    terms
        .type_in(
            &tid,
            "head -c 600000 /dev/zero | tr '\\0' 'x'; echo; echo filled\n",
        )
        .await;
    let stopped = terms.until("recording_stopped").await;
    assert_eq!(stopped["pty_id"], pty_id.as_str(), "{stopped}");
    assert_eq!(stopped["error"]["code"], 56002, "{stopped}");
    // the shell goes on
    terms.output(&tid, "filled").await;
    let alive = format!("alive-{}", app.port);
    terms.type_in(&tid, &format!("echo {alive}\n")).await;
    terms.output(&tid, &alive).await;
    let failed = app.audit_events("action=recording.failed", 1).await;
    assert_eq!(failed[0]["detail"]["pty_id"], pty_id.as_str());
    let indexed = finished(&app, None, &pty_id).await;
    assert_eq!(indexed["state"], "failed", "{indexed}");
    assert!(indexed["error"].as_str().unwrap().contains("space"), "{indexed}");
    // what was written is whole up to its last full event
    Cast::parse(&fetch(&app, &pty_id).await);

    // new PTYs are refused while the disk stays full
    terms
        .refused(
            json!({"type": "terminal_open", "server": "alpha"}),
            "terminal_opened",
            56001,
        )
        .await;
    let mut stub = WsClient::connect_with_token(&app, "/ws/v1/stub", &ann.token).await;
    stub.start_session().await;
    let refused = stub
        .ask(
            json!({"type": "ssh_command", "server": "alpha", "command": "echo never"}),
            "ssh_command_started",
        )
        .await;
    assert_eq!(refused["error"]["code"], 56001, "{refused}");
    let unavailable = app.audit_events("action=recording.unavailable", 2).await;
    assert!(
        unavailable.iter().all(|e| e["detail"]["outcome"] == "refused"),
        "{unavailable:?}"
    );
    drop(disk);
}

#[tokio::test]
async fn with_fail_open_a_pty_whose_recording_cannot_start_runs_unrecorded_and_is_audited() {
    let data = tempfile::tempdir().unwrap();
    // the recordings directory cannot be made: a file stands in its place
    std::fs::write(data.path().join("recordings"), "not a directory").unwrap();
    let sshd = SshdServer::start(SshdOptions::default());
    let app = TestApp::builder()
        .sshd("alpha", &sshd)
        .env("PINKPAGE_DATA_DIR", data.path().to_str().unwrap())
        .env("PINKPAGE_RECORD_FAIL_OPEN", "true")
        .spawn()
        .await;
    let mut stub = WsClient::stub(&app).await;
    stub.start_session().await;
    command(&mut stub, "alpha", "echo ran-unrecorded").await;
    let (out, _, _) = stub.collect_until_complete().await;
    assert!(out.contains("ran-unrecorded"), "{out}");
    let rows = app.audit_events("action=recording.unavailable", 1).await;
    assert_eq!(rows[0]["detail"]["outcome"], "opened unrecorded", "{rows:?}");
    assert_eq!(list(&app, None, "limit=10").await, json!([]));
}

#[tokio::test]
async fn a_server_with_record_false_is_not_recorded() {
    let sshd = SshdServer::start(SshdOptions::default());
    let app = TestApp::builder()
        .sshd_with("quiet", &sshd, "record = false")
        .spawn()
        .await;
    let mut stub = WsClient::stub(&app).await;
    stub.start_session().await;
    let id = command(&mut stub, "quiet", "echo kept-nowhere").await;
    let (out, _, _) = stub.collect_until_complete().await;
    assert!(out.contains("kept-nowhere"), "{out}");
    let res = app.get(&format!("/api/v1/recordings/{id}")).await;
    assert_eq!(res.status(), 404);
    assert!(files_under(&recordings_dir(&app)).is_empty());
}

/// A finished recording of `who`'s command on `server`: its id.
async fn recorded_by(app: &TestApp, who: &Identity, server: &str, text: &str) -> String {
    let mut stub = WsClient::connect_with_token(app, "/ws/v1/stub", &who.token).await;
    stub.start_session().await;
    let id = command(&mut stub, server, &format!("echo {text}")).await;
    stub.collect_until_complete().await;
    stub.send(json!({"type": "end_session"})).await;
    stub.recv_until("session_ended").await;
    finished(app, None, &id).await;
    id
}

#[tokio::test]
async fn readers_see_only_their_own_recordings_and_only_admins_delete() {
    let (builder, _servers) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let ann = app.identity("ann", "operator", None).await;
    let bob = app.identity("bob", "operator", None).await;
    let vic = app.identity("vic", "viewer", None).await;
    let anns = recorded_by(&app, &ann, "alpha", "ann-was-here").await;
    let bobs = recorded_by(&app, &bob, "alpha", "bob-was-here").await;

    let ids = |l: Value| -> Vec<String> {
        l.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(list(&app, Some(&ann.token), "limit=100").await),
        vec![anns.clone()]
    );
    assert_eq!(
        ids(list(&app, Some(&bob.token), "limit=100").await),
        vec![bobs.clone()]
    );
    // asking for another user's by filter gives nothing, not theirs
    assert_eq!(
        ids(list(&app, Some(&bob.token), "user=ann").await),
        Vec::<String>::new()
    );
    assert!(ids(list(&app, Some(&vic.token), "limit=100").await).is_empty());
    // the admin sees both, newest first, and filters work
    assert_eq!(
        ids(list(&app, None, "limit=100").await),
        [bobs.clone(), anns.clone()]
    );
    assert_eq!(ids(list(&app, None, "user=ann").await), vec![anns.clone()]);
    assert_eq!(ids(list(&app, None, "q=bob-was").await), vec![bobs.clone()]);
    assert_eq!(ids(list(&app, None, "server=beta").await), Vec::<String>::new());
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert!(ids(list(&app, None, &format!("since={}", future.replace('+', "%2B"))).await).is_empty());

    for (token, id) in [(&bob.token, &anns), (&vic.token, &anns), (&ann.token, &bobs)] {
        let res = get_as(&app, Some(token), &format!("/api/v1/recordings/{id}")).await;
        assert_eq!(res.status(), 403);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], 10003, "{body}");
    }
    let own = get_as(&app, Some(&ann.token), &format!("/api/v1/recordings/{anns}")).await;
    assert_eq!(own.status(), 200);
    assert!(own.text().await.unwrap().contains("ann-was-here"));

    // deleting: admins only, audited
    let url = app.url(&format!("/api/v1/recordings/{anns}"));
    let res = app
        .anon
        .delete(&url)
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app.http.delete(&url).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let deleted = app.audit_events("action=recording.delete", 1).await;
    assert_eq!(deleted[0]["detail"]["pty_id"], anns.as_str());
    assert_eq!(deleted[0]["detail"]["recording_user"], "ann");
    let res = app.get(&format!("/api/v1/recordings/{anns}")).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_running_recording_is_served_whole_with_ranges_and_gzip() {
    let (builder, _servers) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let mut terms = Terms::admin(&app).await;
    let (tid, pty_id) = terms.open("alpha").await;
    terms.type_in(&tid, "echo range-me\n").await;
    terms.output(&tid, "range-me").await;
    let listed = eventually("the running recording listed", async || {
        let l = list(&app, None, "limit=10").await;
        if l[0]["id"] == pty_id.as_str() {
            Ok(l[0].clone())
        } else {
            Err(l)
        }
    })
    .await;
    assert_eq!(listed["state"], "recording");
    // while it runs, what is there reads as a whole cast; the writer is
    // behind the client by a batch at most, so its output is awaited
    let whole = eventually("the output in the running recording", async || {
        let whole = fetch(&app, &pty_id).await;
        if Cast::parse(&whole).output().contains("range-me") {
            Ok(whole)
        } else {
            Err(Cast::parse(&whole).output())
        }
    })
    .await;

    let url = app.url(&format!("/api/v1/recordings/{pty_id}"));
    let res = app
        .http
        .get(&url)
        .header("Range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert!(res.headers()["content-range"]
        .to_str()
        .unwrap()
        .starts_with("bytes 0-9/"));
    assert_eq!(res.bytes().await.unwrap().as_ref(), &whole.as_bytes()[..10]);
    let res = app
        .http
        .get(&url)
        .header("Range", "bytes=99999999-")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 416);

    let res = app
        .http
        .get(&url)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let zipped = res.bytes().await.unwrap();
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(zipped.as_ref()), &mut unzipped).unwrap();
    assert!(
        unzipped.starts_with(&whole[..whole.find('\n').unwrap()]),
        "{unzipped:?}"
    );
    assert!(unzipped.contains("range-me"));
}

#[tokio::test]
async fn a_cancelled_command_and_a_client_that_leaves_end_their_recordings_with_their_reasons() {
    let (builder, _servers) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let mut stub = WsClient::stub(&app).await;
    stub.start_session().await;
    let cancelled = command(&mut stub, "alpha", "echo before-cancel; sleep 1093.1").await;
    stub.wait_for_output("before-cancel").await;
    stub.send(json!({"type": "cancel"})).await;
    stub.collect_until_complete().await;
    let left = command(&mut stub, "alpha", "echo before-leaving; sleep 1093.2").await;
    stub.wait_for_output("before-leaving").await;
    stub.close().await;
    for (id, reason, text) in [
        (cancelled, "cancelled", "before-cancel"),
        (left, "cancelled", "before-leaving"),
    ] {
        let indexed = finished(&app, None, &id).await;
        assert_eq!(indexed["state"], "ended", "{indexed}");
        assert_eq!(indexed["reason"], reason, "{indexed}");
        assert!(Cast::parse(&fetch(&app, &id).await).output().contains(text));
    }
}

#[tokio::test]
async fn a_graceful_shutdown_ends_a_detached_terminals_recording_whole() {
    let (builder, _servers) = with_servers(["alpha"]);
    let mut app = builder.spawn().await;
    let ann = app.identity("ann", "operator", None).await;
    let mut terms = Terms::connect(&app, &ann.token).await;
    let (tid, pty_id) = terms.open("alpha").await;
    terms.type_in(&tid, "echo before-shutdown\n").await;
    terms.output(&tid, "before-shutdown").await;
    terms
        .ask(
            json!({"type": "terminal_detach", "terminal_id": tid}),
            "terminal_detached",
        )
        .await;
    drop(terms);
    let status = app
        .signal_and_wait("TERM", std::time::Duration::from_secs(30))
        .await
        .expect("the daemon stops");
    assert!(status.success(), "{status}");
    // the daemon is gone: its database says how the recording ended
    let db = rusqlite::Connection::open(app.database()).unwrap();
    let (state, reason, file): (String, String, String) = db
        .query_row(
            "SELECT state, reason, file FROM recordings WHERE id = ?1",
            [&pty_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((state.as_str(), reason.as_str()), ("ended", "shutdown"));
    let text = std::fs::read_to_string(recordings_dir(&app).join(file)).unwrap();
    assert!(Cast::parse(&text).output().contains("before-shutdown"));
}

#[tokio::test]
async fn a_bmx5_script_is_recorded_with_its_audit_row_naming_the_recording() {
    let (builder, _servers) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let mut bmx5 = WsClient::connect(&app, "/ws/v1/bmx5").await;
    bmx5.request(
        json!({"type": "script_execute", "server": "alpha", "script": "echo from-a-script\nexit 7\n"}),
        "script_started",
    )
    .await;
    let (done, _) = bmx5.recv_until("script_complete").await;
    assert_eq!(done["exit_status"], 7, "{done}");
    let start = app.audit_events("action=script.start", 1).await;
    let id = start[0]["detail"]["pty_id"]
        .as_str()
        .expect("the row names the PTY")
        .to_owned();
    let indexed = finished(&app, None, &id).await;
    assert_eq!(indexed["kind"], "script", "{indexed}");
    assert_eq!(indexed["exit_status"], 7, "{indexed}");
    assert!(Cast::parse(&fetch(&app, &id).await)
        .output()
        .contains("from-a-script"));
}
