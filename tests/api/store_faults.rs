//! The store in trouble (WAVE2, "Audit when the store fails"): while audit
//! rows cannot be written, new remote actions are refused with 40000, work
//! already running goes on, its rows wait in memory and land, in order
//! and with the time they happened, once the store takes writes again.
//!
//! Two troubles, one behaviour ([`StoreFault`]):
//! - a database another process holds locked (an exclusive transaction from
//!   the test, as a `sqlite3` shell left open would): the daemon's writes
//!   fail after its 5 s busy timeout, so that test spends about that long
//!   waiting to see the first failure;
//! - the database on a full disk: a tmpfs the test mounts and fills (skipped,
//!   saying why, where mounting is refused).
//!
//! A database on a read-only file system is found at start-up: the daemon
//! does not start without its audit trail, and says why.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::daemon::{run_to_exit, ServerEntry, TestApp, TEST_ADMIN};
use crate::support::fixtures::with_servers;
use crate::support::poll::eventually_within;
use crate::support::postgres::PrivateCluster;
use crate::support::tmpfs::Tmpfs;
use crate::support::ws::WsClient;

/// Longer than the daemon's busy timeout (5 s) plus its first retries.
const DEGRADED_WITHIN: Duration = Duration::from_secs(30);

/// Something that makes the daemon's store writes fail until it ends.
trait StoreFault {
    fn begin(&mut self, app: &TestApp);
    fn end(&mut self);
}

/// Holds the daemon's database locked, as another process would.
#[derive(Default)]
struct Locked(Option<rusqlite::Connection>);

impl Locked {
    fn take(app: &TestApp) -> Locked {
        let mut locked = Locked::default();
        locked.begin(app);
        locked
    }

    fn release(mut self) {
        self.end();
    }
}

impl StoreFault for Locked {
    fn begin(&mut self, app: &TestApp) {
        let conn = rusqlite::Connection::open(app.database()).expect("open the daemon's database");
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").expect("lock the database");
        self.0 = Some(conn);
    }

    fn end(&mut self) {
        let conn = self.0.take().expect("locked");
        conn.execute_batch("ROLLBACK").expect("release the database");
    }
}

/// PostgreSQL stopped under the daemon, then started again (a restart of
/// the database server under load).
struct PostgresStopped<'a>(&'a PrivateCluster);

impl StoreFault for PostgresStopped<'_> {
    fn begin(&mut self, _: &TestApp) {
        self.0.stop();
    }

    fn end(&mut self) {
        self.0.start_again();
    }
}

/// The file system under the database, filled to the last block.
struct FullDisk<'a> {
    disk: &'a Tmpfs,
    filler: Option<PathBuf>,
}

impl StoreFault for FullDisk<'_> {
    fn begin(&mut self, _: &TestApp) {
        self.filler = Some(self.disk.fill());
    }

    fn end(&mut self) {
        std::fs::remove_file(self.filler.take().expect("filled")).expect("free the disk");
    }
}

/// `GET /api/v1/health`'s `store` once its status is `status`.
async fn store_health(app: &TestApp, status: &str) -> Value {
    eventually_within(DEGRADED_WITHIN, &format!("the store {status}"), async || {
        let body: Value = app.get("/api/v1/health").await.json().await.unwrap();
        if body["store"]["status"] == status {
            Ok(body)
        } else {
            Err(body)
        }
    })
    .await
}

#[tokio::test]
async fn a_locked_database_refuses_new_work_keeps_running_work_and_writes_its_rows_after() {
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    refuses_new_work_keeps_running_work_and_writes_its_rows_after(&app, &mut Locked::default()).await;
}

#[tokio::test]
async fn postgres_restarted_refuses_new_work_meanwhile_keeps_running_work_and_writes_its_rows_after() {
    let cluster = PrivateCluster::start();
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.postgres_on(&cluster.admin_url()).spawn().await;
    refuses_new_work_keeps_running_work_and_writes_its_rows_after(&app, &mut PostgresStopped(&cluster)).await;
    drop(app);
}

#[tokio::test]
async fn a_full_disk_refuses_new_work_keeps_running_work_and_writes_its_rows_after_space_frees() {
    let Some(disk) = Tmpfs::mount_or_skip("16m", "store_faults full disk") else {
        return;
    };
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.database_in(disk.path()).spawn().await;
    let mut full = FullDisk {
        disk: &disk,
        filler: None,
    };
    refuses_new_work_keeps_running_work_and_writes_its_rows_after(&app, &mut full).await;
    assert!(
        app.logs_settled().await.contains("database or disk is full"),
        "the cause is in the log"
    );
    drop(app);
}

#[tokio::test]
async fn a_database_on_a_read_only_file_system_stops_startup_saying_so() {
    let Some(disk) = Tmpfs::mount_or_skip("16m", "store_faults read-only disk") else {
        return;
    };
    // a daemon killed with its database open leaves its WAL behind, and
    // then the disk turns read-only (errors=remount-ro, an operator)
    let db = disk.path().join("pinkpage.db");
    let mut app = TestApp::builder()
        .server(ServerEntry::unreachable("nowhere"))
        .database_in(disk.path())
        .spawn()
        .await;
    app.kill();
    assert!(disk.path().join("pinkpage.db-wal").exists(), "a WAL left behind");
    disk.remount_read_only();

    let db = db.to_str().unwrap();
    let (code, out) = run_to_exit(
        &[],
        &[
            ("HIWARE_ID", "u"),
            ("HIWARE_PW", "pw"),
            ("MDWAP1P_IP", "127.0.0.1"),
            ("PINKPAGE_DB", db),
            ("PINKPAGE_BIND", "127.0.0.1:0"),
        ],
    );
    // no audit trail, no daemon: it does not start and says why, naming
    // the setting, the file and the operating system's reason
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("PINKPAGE_DB"), "{out}");
    assert!(out.contains(db), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

#[tokio::test]
async fn a_batch_run_across_a_full_disk_is_recorded_whole_once_space_frees() {
    let Some(disk) = Tmpfs::mount_or_skip("16m", "store_faults batch across a full disk") else {
        return;
    };
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.database_in(disk.path()).spawn().await;
    let flag_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        flag_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let flag = flag_dir.path().join("go").display().to_string();
    let mut c = WsClient::connect(&app, "/ws/v1/bmx4").await;
    c.send(json!({"type": "batch_execute", "server": "alpha", "commands": [
        "echo first",
        format!("while [ ! -e {flag} ]; do sleep 0.1; done; echo second"),
    ]}))
    .await;
    let (first, _) = c.recv_until("batch_command_result").await;
    let run_id = first["run_id"].as_str().unwrap().to_owned();
    let run_path = format!("/api/v1/bmx4/runs/{run_id}");
    let stored: Value = app.get(&run_path).await.json().await.unwrap();
    assert_eq!(stored["results_total"], 1, "{stored}");

    // the disk fills while the second command runs
    let mut full = FullDisk {
        disk: &disk,
        filler: None,
    };
    full.begin(&app);
    // an audit row (a failed sign-in) shows the journal the store fails;
    // from then on results wait without a write attempt each
    let refused = app
        .anon
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"name": "nobody", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    store_health(&app, "degraded").await;
    std::fs::write(&flag, "").unwrap();
    let (second, _) = c.recv_until("batch_command_result").await;
    assert!(second["stdout"].as_str().unwrap().contains("second"), "{second}");
    let (done, _) = c.recv_until("batch_complete").await;
    assert_eq!(done["succeeded"], 2, "the client hears the whole run: {done}");
    let waiting: Value = app.get(&run_path).await.json().await.unwrap();
    assert_eq!(waiting["status"], "running", "{waiting}");
    assert_eq!(waiting["results_total"], 1, "{waiting}");

    // space again: the result that waited and the run's end are stored
    full.end();
    let recorded = eventually_within(DEGRADED_WITHIN, "the run recorded whole", async || {
        let run: Value = app.get(&run_path).await.json().await.unwrap();
        if run["status"] == "completed" {
            Ok(run)
        } else {
            Err(run)
        }
    })
    .await;
    assert_eq!(recorded["results_total"], 2, "{recorded}");
    assert_eq!(recorded["succeeded"], 2, "{recorded}");
    let second_stored = recorded["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["index"] == 1)
        .cloned()
        .unwrap_or_else(|| panic!("{recorded}"));
    assert!(
        second_stored["stdout"].as_str().unwrap().contains("second"),
        "{recorded}"
    );
    let _ = std::fs::remove_file(&flag);
}

#[tokio::test]
async fn a_workflow_run_and_health_flips_across_a_full_disk_are_recorded_with_their_times_once_space_frees() {
    let Some(disk) = Tmpfs::mount_or_skip("16m", "store_faults workflow across a full disk") else {
        return;
    };
    let (builder, [_alpha, mut beta]) = with_servers(["alpha", "beta"]);
    let toml = r#"
[[workflows]]
name = "paused"
description = "a command, a pause, a command"
[[workflows.steps]]
type = "command"
name = "before"
server = "alpha"
command = "echo before-the-pause"
[[workflows.steps]]
type = "pause"
name = "check"
message = "go on?"
timeout_s = 600
[[workflows.steps]]
type = "command"
name = "after"
server = "alpha"
command = "echo after-the-pause"
"#;
    let app = builder
        .transfers_toml(toml)
        .database_in(disk.path())
        .env("PINKPAGE_HEALTH_INTERVAL_S", "0.2")
        .env("PINKPAGE_HEALTH_TIMEOUT_S", "1")
        .env("PINKPAGE_HEALTH_FAILURES", "1")
        .spawn()
        .await;
    let started: Value = app
        .post_json("/api/v1/workflows/paused/runs", &json!({"params": {}}))
        .await
        .json()
        .await
        .unwrap();
    let run_id = started["run_id"].as_str().unwrap().to_owned();
    let run_path = format!("/api/v1/workflows/runs/{run_id}");
    eventually_within(DEGRADED_WITHIN, "the run paused", async || {
        let run: Value = app.get(&run_path).await.json().await.unwrap();
        if run["status"] == "paused" {
            Ok(run)
        } else {
            Err(run)
        }
    })
    .await;

    // the disk fills during the pause; a failed sign-in shows it
    let mut full = FullDisk {
        disk: &disk,
        filler: None,
    };
    full.begin(&app);
    let refused = app
        .anon
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"name": "nobody", "password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    store_health(&app, "degraded").await;

    // a server goes down meanwhile: its flip is published at once
    beta.stop();
    eventually_within(DEGRADED_WITHIN, "beta seen unhealthy", async || {
        let h: Value = app.get("/api/v1/health/servers/beta").await.json().await.unwrap();
        if h["is_healthy"] == false {
            Ok(h)
        } else {
            Err(h)
        }
    })
    .await;
    let seen_down = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);

    // the run goes on: confirmed, it runs its last step and ends, which
    // frees the lock it holds
    let confirmed = app.post_json(&format!("{run_path}/confirm"), &json!({})).await;
    assert_eq!(confirmed.status(), 200);
    eventually_within(DEGRADED_WITHIN, "the run ended (the lock is free)", async || {
        let s: Value = app.get("/api/v1/session").await.json().await.unwrap();
        if s["active"] == false {
            Ok(s)
        } else {
            Err(s)
        }
    })
    .await;
    let waiting: Value = app.get(&run_path).await.json().await.unwrap();
    assert_eq!(
        waiting["status"], "paused",
        "the store still has the pause: {waiting}"
    );

    // space again: the run is recorded whole, the flip at its check's time
    full.end();
    let recorded = eventually_within(DEGRADED_WITHIN, "the run recorded whole", async || {
        let run: Value = app.get(&run_path).await.json().await.unwrap();
        if run["status"] == "succeeded" {
            Ok(run)
        } else {
            Err(run)
        }
    })
    .await;
    let steps = recorded["steps"].as_array().unwrap();
    let states: Vec<&str> = steps.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(states, ["succeeded", "succeeded", "succeeded"], "{recorded}");
    assert_eq!(steps[1]["confirmed_by"], TEST_ADMIN, "{recorded}");
    assert!(
        steps[2]["output_tail"]
            .as_str()
            .unwrap()
            .contains("after-the-pause"),
        "{recorded}"
    );
    let events: Value = app
        .get("/api/v1/health/servers/beta/events?limit=5")
        .await
        .json()
        .await
        .unwrap();
    let flip = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["is_healthy"] == false)
        .unwrap_or_else(|| panic!("the flip is recorded: {events}"));
    assert!(
        flip["at"].as_str().unwrap() <= seen_down.as_str(),
        "recorded at the time of its check, not of its write: {flip} vs {seen_down}"
    );
    let drained = store_health(&app, "ok").await;
    assert_eq!(drained["store"]["dropped_rows"], 0, "{drained}");
}

/// The fingerprint of the one key in the daemon's known_hosts, as
/// `ssh-keygen -lf` prints it.
fn recorded_fingerprint(app: &TestApp) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(app.dir().join("known_hosts"))
        .output()
        .expect("run ssh-keygen -lf");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .to_owned()
}

/// The behaviour both faults must show: a command started before the fault
/// takes its input and ends; new work is refused with 40000 over WebSocket
/// and REST while reads and ending a session still work; health says
/// degraded; after the fault every row lands, in order, stamped when it
/// happened, and new work is admitted again.
async fn refuses_new_work_keeps_running_work_and_writes_its_rows_after(
    app: &TestApp,
    fault: &mut dyn StoreFault,
) {
    let mut c = WsClient::stub(app).await;
    c.start_session().await;
    c.send(json!({"type": "ssh_command", "server": "alpha", "command": "read x; echo got:$x"}))
        .await;
    c.recv_until("ssh_command_started").await;
    let healthy: Value = app.get("/api/v1/health").await.json().await.unwrap();
    assert_eq!(healthy["status"], "ok", "{healthy}");
    assert_eq!(healthy["store"]["status"], "ok", "{healthy}");

    fault.begin(app);
    // running work goes on: the command takes its input and ends, and its
    // end row is the first the store cannot take
    c.send(json!({"type": "ssh_input", "data": "pink\n"})).await;
    let (out, _, done) = c.collect_until_complete().await;
    let seen_end = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert!(out.contains("got:pink"), "{out:?}");
    assert_eq!(done["exit_status"], 0);
    let degraded = store_health(app, "degraded").await;
    assert_eq!(degraded["status"], "degraded", "{degraded}");
    assert!(
        degraded["store"]["failed_writes"].as_u64().unwrap() >= 1,
        "{degraded}"
    );
    assert!(
        degraded["store"]["pending_rows"].as_u64().unwrap() >= 1,
        "{degraded}"
    );
    assert!(degraded["store"]["degraded_since"].is_string(), "{degraded}");
    assert!(
        app.logs_settled().await.contains("40000"),
        "the failure is logged with its code"
    );

    // new remote work is refused, over WebSocket and REST
    c.send(
        json!({"type": "ssh_command", "server": "alpha", "command": "touch /tmp/pinkpage-refused-while-degraded", "request_id": "n1"}),
    )
    .await;
    let refused = c.expect_error().await;
    assert_eq!(refused["error"]["code"], 40000, "{refused}");
    assert_eq!(refused["request_id"], "n1");
    let rest = app
        .post_json(
            "/api/v1/diff/command",
            &json!({"command": "true", "left_server": "alpha", "right_server": "alpha"}),
        )
        .await;
    assert_eq!(rest.status(), 500);
    let body: Value = rest.json().await.unwrap();
    assert_eq!(body["error"]["code"], 40000, "{body}");
    // so is a change of trust that could not be audited: accepting the
    // very key alpha offers, which would pass otherwise
    let accept = app
        .post_json(
            "/api/v1/servers/alpha/host-key/accept",
            &json!({"fingerprint": recorded_fingerprint(app)}),
        )
        .await;
    assert_eq!(accept.status(), 500);
    let body: Value = accept.json().await.unwrap();
    assert_eq!(body["error"]["code"], 40000, "{body}");
    // what is not new work still answers: reads, and ending the session
    assert_eq!(app.get("/api/v1/servers").await.status(), 200);
    c.send(json!({"type": "end_session", "request_id": "e1"})).await;
    let ended = c.recv_until("session_status").await.0;
    assert_eq!(ended["active"], false, "{ended}");

    let fault_ended = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    fault.end();
    let recovered = store_health(app, "ok").await;
    assert_eq!(recovered["status"], "ok", "{recovered}");
    let drained = eventually_within(DEGRADED_WITHIN, "the queue drained", async || {
        let body: Value = app.get("/api/v1/health").await.json().await.unwrap();
        if body["store"]["pending_rows"] == 0 {
            Ok(body)
        } else {
            Err(body)
        }
    })
    .await;
    assert_eq!(drained["store"]["dropped_rows"], 0, "{drained}");
    // the rows written late carry the time they happened, in order
    let rows = app.audit_events(&format!("user={TEST_ADMIN}"), 4).await;
    let actions: Vec<&str> = rows.iter().rev().map(|r| r["action"].as_str().unwrap()).collect();
    let end = actions
        .iter()
        .position(|a| *a == "ssh.command.end")
        .unwrap_or_else(|| panic!("{actions:?}"));
    let session_end = actions
        .iter()
        .position(|a| *a == "session.end")
        .unwrap_or_else(|| panic!("{actions:?}"));
    assert!(end < session_end, "written in order: {actions:?}");
    // the end row is stamped when the command ended (before its client
    // saw the end), not when it was finally written after the fault
    let end_at = rows.iter().find(|r| r["action"] == "ssh.command.end").unwrap()["at"].clone();
    assert!(
        end_at.as_str().unwrap() <= seen_end.as_str(),
        "stamped when it happened: {end_at} vs {seen_end}"
    );
    assert!(
        end_at.as_str().unwrap() < fault_ended.as_str(),
        "stamped before it could be written: {end_at} vs {fault_ended}"
    );
    assert!(
        !std::path::Path::new("/tmp/pinkpage-refused-while-degraded").exists(),
        "the refused command never ran"
    );

    // and new work is admitted again
    c.start_session().await;
    let (out, _, done) = c.run("alpha", "echo again").await;
    assert!(out.contains("again"), "{out:?}");
    assert_eq!(done["exit_status"], 0);
}

#[tokio::test]
async fn failing_open_admits_new_work_while_the_audit_trail_fails_and_says_so() {
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.env("PINKPAGE_AUDIT_FAIL_OPEN", "true").spawn().await;
    let mut c = WsClient::stub(&app).await;
    let locked = Locked::take(&app);
    // taking the lock writes `session.start`: the first row that fails
    c.start_session().await;
    store_health(&app, "degraded").await;

    let (out, _, done) = c.run("alpha", "echo admitted").await;
    assert!(out.contains("admitted"), "{out:?}");
    assert_eq!(done["exit_status"], 0);
    assert!(
        app.logs_settled()
            .await
            .contains("PINKPAGE_AUDIT_FAIL_OPEN admits this new remote action"),
        "failing open is logged loudly"
    );

    locked.release();
    store_health(&app, "ok").await;
    let rows = app.audit_events("action=ssh.command.end", 1).await;
    assert_eq!(rows[0]["exit_status"], 0, "the run's row landed after the outage");
}
