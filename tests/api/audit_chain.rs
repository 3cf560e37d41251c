//! The tamper-evident audit trail (docs/security.md, "Tamper evidence"),
//! against the real daemon and the real `pinkpage audit` commands: the
//! chain verifies after real work; each way of tampering with the file
//! (`sqlite3` in hand: here rusqlite, the same library) is named by
//! `verify`; the key is guarded at start and never shown; rows of the
//! previous schema are sealed; a retention cut verifies; writers in two
//! processes keep one chain; the export is resumable.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pinkpage::store::chain::{AuditKey, Field, Mac, COLUMNS};
use rusqlite::types::ValueRef;
use serde_json::{json, Value};

use crate::support::daemon::{ServerEntry, TestApp, TEST_ADMIN};
use crate::support::fixtures::with_servers;
use crate::support::poll::eventually;
use crate::support::ws::WsClient;

/// `pinkpage audit ARGS` against the daemon's database and key, as an
/// operator runs it beside the daemon: (exit code, stdout, stderr).
fn audit(app: &TestApp, args: &[&str]) -> (Option<i32>, String, String) {
    let mut full = vec!["audit"];
    full.extend_from_slice(args);
    app.cli(&full, "")
}

/// `pinkpage audit verify ARGS` that fails: its stderr.
fn verify_fails(app: &TestApp, args: &[&str]) -> String {
    let mut full = vec!["verify"];
    full.extend_from_slice(args);
    let (code, out, err) = audit(app, &full);
    assert_eq!(code, Some(1), "verify should fail:\n{out}{err}");
    assert!(
        err.contains("audit chain broken") || err.contains("key check"),
        "{err}"
    );
    err
}

/// `pinkpage audit verify ARGS` that passes: its stdout.
fn verify_passes(app: &TestApp, args: &[&str]) -> String {
    let mut full = vec!["verify"];
    full.extend_from_slice(args);
    let (code, out, err) = audit(app, &full);
    assert_eq!(code, Some(0), "verify should pass:\n{out}{err}");
    assert!(out.contains("audit chain verified"), "{out}");
    out
}

/// The daemon's key file (the harness gives it `<dir>/data`).
fn key_path(app: &TestApp) -> PathBuf {
    app.dir().join("data/audit.key")
}

/// The attacker: the database file opened with SQLite, the guard against
/// updates dropped first (anyone with the file can).
fn attacker(db: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS audit_events_append_only; DROP TRIGGER IF EXISTS audit_chain_written_once;",
    )
    .unwrap();
    conn
}

/// Every row's id and action, oldest first, read from the file.
fn rows(db: &Path) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, action FROM audit_events ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A daemon with a few rows of real work: the admin's from the command
/// line, `daemon.start`, two accounts and their tokens made over REST.
async fn daemon_with_rows() -> TestApp {
    let app = TestApp::spawn_without_ssh().await;
    app.identity("otto", "viewer", None).await;
    app.identity("anna", "operator", None).await;
    app.audit_events("action=token.create", 3).await;
    app
}

/// The rows' stored fields as the chain takes them.
fn field(v: ValueRef<'_>) -> Field {
    match v {
        ValueRef::Null => Field::Null,
        ValueRef::Integer(n) => Field::Int(n),
        ValueRef::Real(x) => Field::Real(x),
        ValueRef::Text(t) => Field::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Field::Blob(b.to_vec()),
    }
}

/// What an attacker who knows the algorithm but not the key does: every
/// chained row's MAC recomputed with `key`, from `genesis`.
fn recompute_chain(conn: &rusqlite::Connection, key: &AuditKey, genesis: Mac) {
    let rows: Vec<(i64, Vec<Field>)> = {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {} FROM audit_events WHERE mac IS NOT NULL ORDER BY id",
                COLUMNS.join(", ")
            ))
            .unwrap();
        stmt.query_map([], |r| {
            let fields = (0..COLUMNS.len()).map(|i| field(r.get_ref(i).unwrap())).collect();
            Ok((r.get(0)?, fields))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    let mut prev = genesis;
    for (id, fields) in rows {
        prev = key.link(&prev, &fields);
        conn.execute(
            "UPDATE audit_events SET mac = ?1 WHERE id = ?2",
            rusqlite::params![prev.to_hex(), id],
        )
        .unwrap();
    }
}

#[tokio::test]
async fn verify_passes_on_a_clean_database_after_real_work() {
    let (builder, [_alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let otto = app.identity("otto", "operator", None).await;
    app.sign_in(&otto).await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    let (out, _, done) = c.run("alpha", "echo chained-5e1").await;
    assert!(out.contains("chained-5e1"), "{out:?}");
    assert_eq!(done["exit_status"], 0);

    // every row has the same fields, filled where they apply
    let end = &app.audit_events("action=ssh.command.end", 1).await[0];
    assert_eq!(
        (&end["domain"], &end["outcome"], &end["server"], &end["user"]),
        (&json!("stub"), &json!("ok"), &json!("alpha"), &json!(TEST_ADMIN)),
        "{end}"
    );
    assert_eq!(end["mac"].as_str().map(str::len), Some(64), "{end}");
    let login = &app.audit_events("action=auth.login&user=otto", 1).await[0];
    assert_eq!(
        (&login["domain"], &login["target"]),
        (&json!("auth"), &json!("otto")),
        "{login}"
    );
    let added = &app.audit_events("action=user.add&domain=rest", 1).await[0];
    assert_eq!(added["target"], "otto", "{added}");
    let by_cli = &app.audit_events("action=user.add&domain=cli", 1).await[0];
    assert_eq!(
        (&by_cli["actor"], &by_cli["target"]),
        (&json!("cli"), &json!(TEST_ADMIN)),
        "{by_cli}"
    );

    verify_passes(&app, &[]);
    // the head is a row's id and MAC, as the API shows that row
    let (code, head, err) = audit(&app, &["head"]);
    assert_eq!(code, Some(0), "{err}");
    let head = head.trim().to_owned();
    let (id, mac) = head.split_once(':').expect("<id>:<mac>");
    assert_eq!(mac.len(), 64, "{head}");
    let id: i64 = id.parse().unwrap();
    let row = &app
        .get(&format!("/api/v1/audit?limit=1&before_id={}", id + 1))
        .await
        .json::<Value>()
        .await
        .unwrap()[0];
    assert_eq!(
        (row["id"].as_i64(), row["mac"].as_str()),
        (Some(id), Some(mac)),
        "{row}"
    );
    // and a head kept now still verifies as the chain grows
    app.identity("later", "viewer", None).await;
    verify_passes(&app, &["--head", &head]);
}

/// The id of the `user.add` row over REST that added `name`.
async fn user_added(app: &TestApp, name: &str) -> i64 {
    let rows = app.audit_events("action=user.add&domain=rest", 1).await;
    rows.iter()
        .find(|r| r["target"] == name)
        .and_then(|r| r["id"].as_i64())
        .unwrap_or_else(|| panic!("no user.add row for {name}: {rows:?}"))
}

#[tokio::test]
async fn an_edited_row_is_named_by_verify() {
    let app = daemon_with_rows().await;
    let id = user_added(&app, "anna").await;
    verify_passes(&app, &[]);

    // an operator made: written down as a viewer
    let changed = attacker(app.database())
        .execute(
            "UPDATE audit_events SET detail = replace(detail, 'operator', 'viewer') WHERE id = ?1",
            [id],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let err = verify_fails(&app, &[]);
    assert!(
        err.contains(&format!("row {id}: its MAC does not match")),
        "{err}"
    );
}

#[tokio::test]
async fn a_row_deleted_from_the_middle_is_named_by_verify() {
    let app = daemon_with_rows().await;
    let all = rows(app.database());
    let (middle, _) = all[all.len() / 2];
    attacker(app.database())
        .execute("DELETE FROM audit_events WHERE id = ?1", [middle])
        .unwrap();
    let err = verify_fails(&app, &[]);
    assert!(
        err.contains(&format!(
            "row {middle} is missing (the next row is {})",
            middle + 1
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_chain_recomputed_with_a_made_up_key_fails_at_its_first_row() {
    let app = daemon_with_rows().await;
    let made_up = AuditKey::from_bytes([0x42; 32]);
    let conn = attacker(app.database());
    let genesis: String = conn
        .query_row("SELECT genesis_mac FROM audit_chain", [], |r| r.get(0))
        .unwrap();
    recompute_chain(&conn, &made_up, Mac::from_hex(&genesis).unwrap());
    // the first chained row: the admin the command line added first
    let first = rows(app.database())[0].0;
    let err = verify_fails(&app, &[]);
    assert!(
        err.contains(&format!("row {first}: its MAC does not match")),
        "{err}"
    );

    // and with the chain's record rewritten for the made-up key too, the
    // key check says so (and the daemon would not start on it)
    let (forged_genesis, _) = made_up.genesis().finish();
    conn.execute(
        "UPDATE audit_chain SET genesis_mac = ?1, key_check = ?2",
        [forged_genesis.to_hex(), made_up.check_value().to_hex()],
    )
    .unwrap();
    recompute_chain(&conn, &made_up, forged_genesis);
    let err = verify_fails(&app, &[]);
    assert!(err.contains("key check value is not this key's"), "{err}");
    assert!(err.contains("genesis"), "{err}");
}

#[tokio::test]
async fn deleting_the_newest_rows_passes_plain_verify_and_is_caught_against_a_head_kept_before() {
    let app = daemon_with_rows().await;
    let (code, head, err) = audit(&app, &["head"]);
    assert_eq!(code, Some(0), "{err}");
    let head = head.trim().to_owned();
    let head_id: i64 = head.split(':').next().unwrap().parse().unwrap();
    assert_eq!(head_id, rows(app.database()).last().unwrap().0);

    // the newest two rows go
    attacker(app.database())
        .execute("DELETE FROM audit_events WHERE id >= ?1", [head_id - 1])
        .unwrap();
    // the chain alone cannot tell
    verify_passes(&app, &[]);
    // the head kept before can
    let err = verify_fails(&app, &["--head", &head]);
    assert!(
        err.contains(&format!(
            "row {head_id}, the head given, is missing: the chain ends at row {}",
            head_id - 2
        )),
        "{err}"
    );
}

/// The environment a daemon on `app`'s files starts with, its key file
/// at `key`.
fn start_env(app: &TestApp, key: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("HIWARE_ID", "u".into()),
        ("HIWARE_PW", "pw".into()),
        ("MDWAP1P_IP", "127.0.0.1".into()),
        ("PINKPAGE_BIND", "127.0.0.1:0".into()),
        ("PINKPAGE_DB", app.database().display().to_string()),
        ("PINKPAGE_DATA_DIR", app.dir().join("data").display().to_string()),
        ("PINKPAGE_AUDIT_KEY_FILE", key.display().to_string()),
    ]
}

/// Starts a daemon on `app`'s files with the key file `key`, expecting it
/// to refuse: its exit code and output. One that serves instead (it
/// accepted the key) is killed after a while and fails the test.
async fn start(app: &TestApp, key: &Path) -> (Option<i32>, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pinkpage"));
    cmd.current_dir(app.dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(start_env(app, key))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let run = cmd.spawn().expect("run pinkpage").wait_with_output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("the daemon started and served: it should have refused the key")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[tokio::test]
async fn a_chained_database_with_its_key_missing_or_another_key_does_not_start() {
    let mut app = TestApp::spawn_without_ssh().await;
    app.kill();
    let key = key_path(&app);
    let aside = app.dir().join("audit.key.aside");
    std::fs::rename(&key, &aside).unwrap();

    let (code, out) = start(&app, &key).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("PINKPAGE_AUDIT_KEY_FILE"), "{out}");
    assert!(out.contains("does not exist"), "{out}");
    assert!(
        out.contains("a new key is never made for an existing chain"),
        "{out}"
    );
    assert!(!key.exists(), "no key made in its place");
    // the command line refuses the same way
    let (code, _, err) = app.cli(&["user", "list"], "");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(!key.exists());

    // another key, owner-only and well formed
    let other = app.dir().join("other.key");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&other)
            .unwrap();
        writeln!(f, "{}", "5a".repeat(32)).unwrap();
    }
    let (code, out) = start(&app, &other).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("is not the key the audit trail was chained with"),
        "{out}"
    );

    // the key back: it starts, and the chain goes on
    std::fs::rename(&aside, &key).unwrap();
    app.kill_and_restart().await;
    app.audit_events("action=daemon.start", 2).await;
    verify_passes(&app, &[]);
}

#[tokio::test]
async fn a_key_file_others_may_read_stops_the_start_and_a_new_one_is_made_owner_only() {
    // the daemon makes the key itself (no account command ran first), under
    // a umask that would leave a naively created file readable by all
    let mut app = TestApp::builder()
        .server(ServerEntry::unreachable("nowhere"))
        .without_accounts()
        .umask(0o000)
        .spawn()
        .await;
    let key = key_path(&app);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert!(app.logs_settled().await.contains("audit key created"));
    app.kill();

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out) = start(&app, &key).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("PINKPAGE_AUDIT_KEY_FILE"), "{out}");
    assert!(out.contains("mode 0644") && out.contains("chmod 600"), "{out}");
    assert_eq!(
        mode(&key),
        0o644,
        "refused, not repaired behind the operator's back"
    );
    let (code, _, err) = audit(&app, &["verify"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("chmod 600"), "{err}");
}

#[tokio::test]
async fn the_key_is_in_no_log_line_response_or_database_file() {
    let app = daemon_with_rows().await;
    let hex = std::fs::read_to_string(key_path(&app)).unwrap().trim().to_owned();
    assert_eq!(hex.len(), 64);
    let raw = Mac::from_hex(&hex).unwrap().0;
    let upper = hex.to_uppercase();
    let leaks = |what: &str, bytes: &[u8]| {
        for needle in [hex.as_bytes(), upper.as_bytes(), &raw[..]] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "the audit key is in {what}"
            );
        }
    };
    for path in [
        "/api/v1/audit?limit=1000",
        "/api/v1/audit/export",
        "/api/v1/health",
        "/api-docs/openapi.json",
    ] {
        let body = app.get(path).await.bytes().await.unwrap();
        leaks(path, &body);
    }
    let (_, head, _) = audit(&app, &["head"]);
    let (_, verified, err) = audit(&app, &["verify"]);
    leaks(
        "the command line's output",
        format!("{head}{verified}{err}").as_bytes(),
    );
    leaks("the daemon's log", app.logs_settled().await.as_bytes());
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", app.pid())).unwrap();
    leaks("the daemon's arguments", &cmdline);
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(format!("{}{suffix}", app.database().display())) {
            leaks(&format!("the database file{suffix}"), &bytes);
        }
    }
}

#[tokio::test]
async fn rows_of_the_previous_schema_are_sealed_at_the_first_start_and_an_edit_among_them_is_caught() {
    let old = tempfile::tempdir().unwrap();
    {
        // a database the previous version wrote: migrations 1-9 and rows
        let conn = rusqlite::Connection::open(old.path().join("pinkpage.db")).unwrap();
        for step in &pinkpage::store::sqlite::migrations::MIGRATIONS[..9] {
            conn.execute_batch(step.sqlite).unwrap();
        }
        conn.pragma_update(None, "user_version", 9).unwrap();
        for (actor, action, command) in [
            ("c1", "session.start", None),
            ("c1", "ssh.command.start", Some("uptime")),
            ("c1", "ssh.command.end", Some("uptime")),
            ("cli", "user.add", None),
            ("system", "daemon.start", None),
        ] {
            conn.execute(
                "INSERT INTO audit_events (at, actor, action, command, user) VALUES ('2026-11-01T08:00:00.000Z', ?1, ?2, ?3, 'ops')",
                rusqlite::params![actor, action, command],
            )
            .unwrap();
        }
    }
    // the daemon itself seals them (no account command runs first)
    let app = TestApp::builder()
        .server(ServerEntry::unreachable("nowhere"))
        .database_in(old.path())
        .without_accounts()
        .spawn()
        .await;
    let logs = app.logs_settled().await;
    assert!(logs.contains("sealed under the genesis MAC"), "{logs}");
    let out = verify_passes(&app, &[]);
    assert!(out.contains("after row 5"), "{out}");
    // rows from before got their action's domain
    let conn = rusqlite::Connection::open(app.database()).unwrap();
    let domains: Vec<String> = conn
        .prepare("SELECT domain FROM audit_events WHERE id <= 5 ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(domains, ["stub", "stub", "stub", "cli", "system"]);

    attacker(app.database())
        .execute("UPDATE audit_events SET command = 'true' WHERE id = 2", [])
        .unwrap();
    let err = verify_fails(&app, &[]);
    assert!(
        err.contains("the rows sealed at genesis (ids up to 5) do not match the genesis MAC"),
        "{err}"
    );
}

#[tokio::test]
async fn a_prefix_cut_verifies_and_deleting_more_than_it_took_is_caught() {
    let app = daemon_with_rows().await;
    // cut before the first row that is younger than the one before it
    let times: Vec<(i64, String)> = {
        let conn = rusqlite::Connection::open(app.database()).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, at FROM audit_events ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let split = (1..times.len())
        .find(|&i| times[i].1 > times[i - 1].1 && times[i..].iter().all(|(_, at)| *at >= times[i].1))
        .expect("rows written at different times");
    let before: chrono::DateTime<chrono::Utc> = times[split].1.parse().unwrap();
    let key_file = pinkpage::store::chain::KeyFile::new(key_path(&app));
    let (mut conn, chain) = pinkpage::store::sqlite::open_direct(app.database(), &key_file).unwrap();
    let cut = pinkpage::store::sqlite::audit_chain::cut(&mut conn, &chain, before, u32::MAX)
        .unwrap()
        .expect("something to cut");
    assert_eq!(cut.through_id, times[split - 1].0);
    drop(conn);
    let row = &app.audit_events("action=audit.cut", 1).await[0];
    assert_eq!(row["detail"]["through_id"], cut.through_id, "{row}");
    let out = verify_passes(&app, &[]);
    assert!(out.contains(&format!("after row {}", cut.through_id)), "{out}");
    // the trail goes on after the cut
    app.identity("after-cut", "viewer", None).await;
    verify_passes(&app, &[]);

    // one row more than the cut took
    let first_kept = cut.through_id + 1;
    attacker(app.database())
        .execute("DELETE FROM audit_events WHERE id = ?1", [first_kept])
        .unwrap();
    let err = verify_fails(&app, &[]);
    assert!(err.contains(&format!("row {first_kept} is missing")), "{err}");
}

#[tokio::test]
async fn concurrent_appends_from_the_daemon_and_the_command_line_keep_one_chain() {
    let app = TestApp::spawn_without_ssh().await;
    let before = rows(app.database()).len();
    const REST: usize = 40;
    const CLI: usize = 6;
    // the daemon writes token rows while command-line processes add
    // accounts and tokens in the same moments
    let app = &app;
    let rest = async move {
        use futures_util::StreamExt;
        // eight at a time: one address may not hold more than 20
        // connections before admission (30005)
        let statuses: Vec<_> = futures_util::stream::iter(0..REST)
            .map(|i| async move {
                let body = json!({"user": TEST_ADMIN, "label": format!("load-{i}")});
                app.post_json("/api/v1/tokens", &body).await.status()
            })
            .buffer_unordered(8)
            .collect()
            .await;
        assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    };
    let cli = tokio::task::spawn_blocking({
        let (dir, db) = (app.dir().to_owned(), app.database().to_owned());
        move || {
            std::thread::scope(|s| {
                for i in 0..CLI {
                    let (dir, db) = (&dir, &db);
                    s.spawn(move || {
                        let name = format!("cli-{i}");
                        let args = ["user", "add", &name, "--role", "viewer", "--no-password"];
                        let (code, _, err) = crate::support::daemon::cli(dir, db, &args, "");
                        assert_eq!(code, Some(0), "{err}");
                        let args = ["token", "create", &name];
                        let (code, _, err) = crate::support::daemon::cli(dir, db, &args, "");
                        assert_eq!(code, Some(0), "{err}");
                    });
                }
            })
        }
    });
    rest.await;
    cli.await.unwrap();
    let expected = before + REST + 2 * CLI;
    eventually("every row written", async || {
        let n = rows(app.database()).len();
        (n >= expected).then_some(n)
    })
    .await;
    let ids: Vec<i64> = rows(app.database()).iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as i64).collect::<Vec<_>>(),
        "one id each, none twice"
    );
    let out = verify_passes(app, &[]);
    assert!(out.contains(&format!("{} linked row(s)", ids.len())), "{out}");
}

/// The export's lines, parsed.
async fn export(app: &TestApp, query: &str) -> Vec<Value> {
    let res = app.get(&format!("/api/v1/audit/export{query}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let body = res.text().await.unwrap();
    assert!(body.is_empty() || body.ends_with('\n'), "{body:?}");
    body.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test]
async fn export_is_resumable_by_id_and_streams_json_lines() {
    let app = daemon_with_rows().await;
    let all = export(&app, "").await;
    let ids: Vec<i64> = all.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids,
        rows(app.database()).iter().map(|(id, _)| *id).collect::<Vec<_>>()
    );
    for row in &all {
        assert_eq!(row["mac"].as_str().map(str::len), Some(64), "{row}");
        assert_eq!(row["instance"], "local", "{row}");
        assert!(row["domain"].is_string() && row["action"].is_string(), "{row}");
    }
    // resumed from the fourth row: the rest, once, in order
    let rest = export(&app, &format!("?since={}", ids[3])).await;
    let mut joined = all[..4].to_vec();
    joined.extend(rest);
    assert_eq!(joined, all);
    // past the end: nothing; a bad id: 10001
    assert!(export(&app, &format!("?since={}", ids.last().unwrap()))
        .await
        .is_empty());
    let bad = app.get("/api/v1/audit/export?since=yesterday").await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], 10001, "{body}");
}

#[tokio::test]
async fn the_audit_list_filters_by_domain_server_time_and_text() {
    let app = daemon_with_rows().await;
    let list = |query: &str| {
        let path = format!("/api/v1/audit?limit=1000&{query}");
        let app = &app;
        async move {
            let res = app.get(&path).await;
            assert_eq!(res.status(), 200, "{path}");
            res.json::<Vec<Value>>().await.unwrap()
        }
    };
    let cli = list("domain=cli").await;
    assert!(
        !cli.is_empty() && cli.iter().all(|r| r["domain"] == "cli"),
        "{cli:?}"
    );
    let anna = list("text=ANNA").await;
    assert!(!anna.is_empty(), "a text filter ignores ASCII case");
    assert!(
        anna.iter().all(|r| r.to_string().to_lowercase().contains("anna")),
        "{anna:?}"
    );
    let all = list("").await;
    let newest_at = all[0]["at"].as_str().unwrap();
    let until = list(&format!("until={newest_at}")).await;
    assert!(
        until.iter().all(|r| r["at"].as_str().unwrap() < newest_at),
        "{until:?}"
    );
    let since = list(&format!("since={newest_at}")).await;
    assert!(!since.is_empty() && since.iter().all(|r| r["at"].as_str().unwrap() >= newest_at));
    assert!(list("server=nowhere-at-all").await.is_empty());
    for bad in ["since=yesterday", "until=2026-13-01T00:00:00Z"] {
        let res = app.get(&format!("/api/v1/audit?{bad}")).await;
        assert_eq!(res.status(), 400, "{bad}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], 10001, "{body}");
        assert!(
            body["error"]["detail"].as_str().unwrap().contains("RFC 3339"),
            "{body}"
        );
    }
    let long = "x".repeat(257);
    assert_eq!(app.get(&format!("/api/v1/audit?text={long}")).await.status(), 400);
}
