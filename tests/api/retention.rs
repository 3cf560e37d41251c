//! Retention end to end (issue 28): a real daemon deletes finished runs
//! and health transitions older than `PINKPAGE_RETENTION_DAYS` and cuts
//! the audit trail's prefix older than `PINKPAGE_AUDIT_RETENTION_DAYS`,
//! nothing younger and nothing unfinished, and a terminal's output keeps
//! arriving while it sweeps. Old rows are put in the database file
//! directly (the daemon writes only rows of now), the audit rows linked
//! in the chain with the daemon's key.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pinkpage::records::NewAuditEvent;
use pinkpage::store::chain::KeyFile;
use serde_json::{json, Value};

use crate::support::daemon::TestApp;
use crate::support::fixtures::with_servers;
use crate::support::poll::eventually;
use crate::support::term::Terms;

fn days_ago(n: i64) -> String {
    (Utc::now() - chrono::Duration::days(n)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A connection to the daemon's database, as another process has it.
fn open(db: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn
}

/// What [`seed`] put in that retention must delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Old {
    batch_runs: u64,
    batch_results: u64,
    workflow_runs: u64,
    workflow_steps: u64,
    health_events: u64,
}

/// Puts in, in one transaction, records named after `tag`:
/// - `runs` BMX4 runs that ended 100 days ago with `results` results each
///   (deleted), three that ended 10 days ago with two results each, and
///   two started 100 days ago and still `running` with one (both kept);
/// - `runs / 10` workflow runs that ended 100 days ago with three steps
///   each (deleted), one started 100 days ago and `paused`, one that ended
///   5 days ago (kept);
/// - `runs / 2` health transitions 100 days old of each of two servers, and
///   one of a day ago of the first: all old ones go but the second
///   server's newest.
fn seed(conn: &mut rusqlite::Connection, tag: &str, runs: u64, results: u64) -> Old {
    let (old, ten, five, one) = (days_ago(100), days_ago(10), days_ago(5), days_ago(1));
    let tx = conn.transaction().unwrap();
    let run = |id: String, started: &str, finished: Option<&str>, status: &str, results: u64| {
        tx.execute(
            "INSERT INTO batch_runs (run_id, actor, started_at, finished_at, status, servers, commands,
                stop_on_error, retries, retry_delay_ms)
             VALUES (?1, 'test', ?2, ?3, ?4, '[\"alpha\"]', '[\"true\"]', 0, 0, 0)",
            rusqlite::params![id, started, finished, status],
        )
        .unwrap();
        tx.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2)
             INSERT INTO batch_results (run_id, server, idx, command, status, exit_status, stdout, stderr,
                truncated, attempts, duration_ms)
             SELECT ?1, 'alpha', i, 'true', 'succeeded', 0, hex(randomblob(100)), '', 0, 1, 1 FROM n",
            rusqlite::params![id, results],
        )
        .unwrap();
    };
    for i in 0..runs {
        run(format!("{tag}-old-{i}"), &old, Some(&old), "completed", results);
    }
    for i in 0..3 {
        run(format!("{tag}-young-{i}"), &ten, Some(&ten), "completed", 2);
    }
    for i in 0..2 {
        run(format!("{tag}-running-{i}"), &old, None, "running", 1);
    }
    let workflow = |id: String, started: &str, finished: Option<&str>, status: &str, steps: u64| {
        tx.execute(
            "INSERT INTO workflow_runs (run_id, workflow, actor, params, status, started_at, finished_at)
             VALUES (?1, 'w', 'rest', '{}', ?2, ?3, ?4)",
            rusqlite::params![id, status, started, finished],
        )
        .unwrap();
        for idx in 0..steps {
            tx.execute(
                "INSERT INTO workflow_steps (run_id, idx, name, kind, plan, status)
                 VALUES (?1, ?2, 's', 'pause', '{}', 'succeeded')",
                rusqlite::params![id, idx],
            )
            .unwrap();
        }
    };
    for i in 0..runs / 10 {
        workflow(format!("{tag}-wf-old-{i}"), &old, Some(&old), "succeeded", 3);
    }
    workflow(format!("{tag}-wf-paused"), &old, None, "paused", 1);
    workflow(format!("{tag}-wf-young"), &five, Some(&five), "failed", 1);
    for server in ["a", "b"] {
        for _ in 0..runs / 2 {
            tx.execute(
                "INSERT INTO health_events (at, server, host, healthy) VALUES (?1, ?2, 'h', 1)",
                rusqlite::params![old, format!("{tag}-host-{server}")],
            )
            .unwrap();
        }
    }
    tx.execute(
        "INSERT INTO health_events (at, server, host, healthy) VALUES (?1, ?2, 'h', 0)",
        rusqlite::params![one, format!("{tag}-host-a")],
    )
    .unwrap();
    tx.commit().unwrap();
    Old {
        batch_runs: runs,
        batch_results: runs * results,
        workflow_runs: runs / 10,
        workflow_steps: runs / 10 * 3,
        health_events: runs - 1,
    }
}

/// The ids of one column of a table, sorted.
fn ids(db: &Path, sql: &str) -> BTreeSet<String> {
    let conn = open(db);
    let mut stmt = conn.prepare(sql).unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The rows of `tag` that must stay, checked exactly: the young and
/// unfinished runs with all their children, and the health transitions
/// that are young or a server's newest.
fn only_young_and_unfinished_left(db: &Path, tag: &str) {
    let runs = ids(
        db,
        &format!("SELECT run_id FROM batch_runs WHERE run_id LIKE '{tag}-%'"),
    );
    let want: Vec<String> = (0..3)
        .map(|i| format!("{tag}-young-{i}"))
        .chain((0..2).map(|i| format!("{tag}-running-{i}")))
        .collect();
    assert_eq!(runs, want.into_iter().collect::<BTreeSet<_>>());
    let results = ids(
        db,
        &format!("SELECT run_id || '/' || idx FROM batch_results WHERE run_id LIKE '{tag}-%'"),
    );
    let want_results: BTreeSet<String> = (0..3)
        .flat_map(|i| (0..2).map(move |n| format!("{tag}-young-{i}/{n}")))
        .chain((0..2).map(|i| format!("{tag}-running-{i}/0")))
        .collect();
    assert_eq!(results, want_results);
    let workflows = ids(
        db,
        &format!("SELECT run_id FROM workflow_runs WHERE run_id LIKE '{tag}-%'"),
    );
    assert_eq!(
        workflows,
        names(&[&format!("{tag}-wf-paused"), &format!("{tag}-wf-young")])
    );
    let steps = ids(
        db,
        &format!("SELECT run_id || '/' || idx FROM workflow_steps WHERE run_id LIKE '{tag}-%'"),
    );
    assert_eq!(
        steps,
        names(&[&format!("{tag}-wf-paused/0"), &format!("{tag}-wf-young/0")])
    );
    let health = ids(
        db,
        &format!("SELECT server || ' ' || healthy FROM health_events WHERE server LIKE '{tag}-%'"),
    );
    // host-a: its young transition (healthy 0); host-b: its newest old one
    assert_eq!(
        health,
        names(&[&format!("{tag}-host-a 0"), &format!("{tag}-host-b 1")])
    );
    let counted = |sql: String| -> i64 { open(db).query_row(&sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        counted(format!(
            "SELECT count(*) FROM health_events WHERE server LIKE '{tag}-%'"
        )),
        2
    );
}

/// `pinkpage audit verify` beside the daemon passes; its output.
fn audit_verifies(app: &TestApp) -> String {
    let (code, out, err) = app.cli(&["audit", "verify"], "");
    assert_eq!(code, Some(0), "verify should pass:\n{out}{err}");
    assert!(out.contains("audit chain verified"), "{out}");
    out
}

/// The sums of the `retention.sweep` rows' counts.
fn summed(rows: &[Value]) -> Old {
    let sum = |field: &str| rows.iter().map(|r| r["detail"][field].as_u64().unwrap()).sum();
    Old {
        batch_runs: sum("batch_runs"),
        batch_results: sum("batch_results"),
        workflow_runs: sum("workflow_runs"),
        workflow_steps: sum("workflow_steps"),
        health_events: sum("health_events"),
    }
}

#[tokio::test]
async fn the_start_sweep_deletes_old_records_and_cuts_the_old_audit_prefix_and_the_chain_still_verifies() {
    let (builder, _servers) = with_servers(["alpha"]);
    let old = Arc::new(std::sync::Mutex::new(None));
    let seeded = old.clone();
    let app = builder
        .env("PINKPAGE_RETENTION_DAYS", "90")
        .env("PINKPAGE_AUDIT_RETENTION_DAYS", "30")
        .seed(move |db, key| {
            let (mut conn, chain) = pinkpage::store::sqlite::open_direct(db, &KeyFile::new(key)).unwrap();
            // the trail's first rows: 40 days old (cut), then 20 (kept)
            let rows: Vec<NewAuditEvent> = [(40, "old"), (20, "recent")]
                .iter()
                .flat_map(|(days, what)| {
                    (0..30).map(move |i| {
                        let mut e = NewAuditEvent::new("test", format!("retention.{what}"));
                        e.at = Utc::now() - chrono::Duration::days(*days);
                        e.target = Some(format!("{what}-{i}"));
                        e
                    })
                })
                .collect();
            pinkpage::store::sqlite::audit::append(&mut conn, &chain, &rows).unwrap();
            *seeded.lock().unwrap() = Some(seed(&mut conn, "start", 40, 5));
        })
        .spawn()
        .await;
    let old = old.lock().unwrap().expect("seeded");

    let sweep = &app.audit_events("action=retention.sweep", 1).await[0];
    assert_eq!(summed(std::slice::from_ref(sweep)), old, "{sweep}");
    assert_eq!(sweep["detail"]["audit_rows"], 30, "{sweep}");
    assert_eq!(sweep["outcome"], "ok", "{sweep}");
    only_young_and_unfinished_left(app.database(), "start");

    // the trail: the old prefix gone, the recent rows and everything after kept
    let targets = ids(
        app.database(),
        "SELECT target FROM audit_events WHERE action LIKE 'retention.%' AND target IS NOT NULL",
    );
    let recent: BTreeSet<String> = (0..30).map(|i| format!("recent-{i}")).collect();
    assert_eq!(targets, recent);
    let cut = &app.audit_events("action=audit.cut", 1).await[0];
    assert_eq!(cut["detail"]["through_id"], 30, "{cut}");
    assert_eq!(cut["detail"]["rows"], 30, "{cut}");
    let out = audit_verifies(&app);
    assert!(out.contains("after row 30"), "{out}");
}

#[tokio::test]
async fn old_rows_go_and_young_ones_stay_while_a_terminal_keeps_printing() {
    let (builder, _servers) = with_servers(["alpha"]);
    let app = builder
        .env("PINKPAGE_RETENTION_DAYS", "90")
        .env("PINKPAGE_RETENTION_INTERVAL_S", "1")
        .spawn()
        .await;

    // a terminal printing a numbered line every 10 ms
    let mut terms = Terms::admin(&app).await;
    let (id, _) = terms.open("alpha").await;
    terms
        .type_in(
            &id,
            "i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.01; done\n",
        )
        .await;
    terms.output(&id, "tick-20\r\n").await;
    // its frames, each with when it arrived, read on a task of their own
    let stop = Arc::new(AtomicBool::new(false));
    let reading = stop.clone();
    let mut ws = terms.ws;
    let reader = tokio::spawn(async move {
        let mut arrived: Vec<DateTime<Utc>> = Vec::new();
        while !reading.load(Ordering::SeqCst) {
            match ws.try_recv(Duration::from_millis(200)).await {
                Some(frame) if frame["type"] == "terminal_output" => arrived.push(Utc::now()),
                Some(frame) => assert_ne!(frame["type"], "terminal_closed", "{frame}"),
                None => {}
            }
        }
        (ws, arrived)
    });

    // 2,000 old runs with 20 results each, and the rest, put in while it prints
    let inserted = Utc::now();
    let old = seed(&mut open(app.database()), "load", 2_000, 20);

    let sweeps = eventually("retention to have deleted every old row", async || {
        let rows: Value = app
            .get("/api/v1/audit?limit=1000&action=retention.sweep")
            .await
            .json()
            .await
            .unwrap();
        let after: Vec<Value> = rows
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap() > inserted)
            .cloned()
            .collect();
        if summed(&after) == old {
            Ok(after)
        } else {
            Err(json!({"so_far": format!("{:?}", summed(&after)), "want": format!("{old:?}")}))
        }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let (mut ws, arrived) = reader.await.unwrap();
    only_young_and_unfinished_left(app.database(), "load");

    // the sweep that deleted the results ran a while (about a second
    // here, 80-odd transactions and a pause after each); the terminal's
    // output kept arriving through it (about ten frames a second). Were
    // the event loop blocked, none would arrive until the sweep ended but
    // one already on its way
    let heavy = sweeps
        .iter()
        .max_by_key(|r| r["detail"]["batch_results"].as_u64())
        .unwrap();
    let started: DateTime<Utc> = heavy["detail"]["started_at"].as_str().unwrap().parse().unwrap();
    let ended: DateTime<Utc> = heavy["at"].as_str().unwrap().parse().unwrap();
    let during = arrived.iter().filter(|t| **t >= started && **t <= ended).count();
    assert!(
        during >= 2,
        "{during} output frames arrived during a sweep of {:?} ({} frames in all): {heavy}",
        ended - started,
        arrived.len()
    );

    // the terminal is still there and printing
    let more = eventually("more output after the sweep", async || {
        ws.try_recv(Duration::from_millis(500))
            .await
            .filter(|f| f["type"] == "terminal_output" && f["terminal_id"] == id)
    })
    .await;
    assert!(more["data"].as_str().unwrap().contains("tick-"), "{more}");
    audit_verifies(&app);
}
