//! Online backup (issue 28, part 4): `POST /api/v1/admin/backup` and
//! `pinkpage backup FILE` write a consistent copy of the database while
//! the daemon serves and writes.

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};

use crate::support::ws::WsClient;

#[tokio::test]
async fn a_backup_taken_while_a_batch_writes_results_is_whole_and_private() {
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("copies");
    let (app, _sshd) = {
        // the harness's own builder, with the backup directory named
        let sshd = crate::support::sshd::SshdServer::start(crate::support::sshd::SshdOptions::default());
        let app = crate::support::daemon::TestApp::builder()
            .sshd("mdwap1p", &sshd)
            .env("PINKPAGE_BACKUP_DIR", dir.to_str().unwrap())
            .spawn()
            .await;
        (app, sshd)
    };
    // a batch writing results while the copy is taken
    let mut b = WsClient::connect(&app, "/ws/v1/bmx4").await;
    let commands: Vec<String> = (0..300).map(|i| format!("echo row-{i}")).collect();
    b.send(
        json!({"type": "batch_execute", "servers": ["mdwap1p"], "commands": commands, "request_id": "b1"}),
    )
    .await;
    let (started, _) = b.recv_until("batch_command_result").await;
    assert_eq!(started["status"], "succeeded", "{started}");

    let res = app.post_json("/api/v1/admin/backup", &json!({})).await;
    assert_eq!(res.status(), 201);
    let done: Value = res.json().await.unwrap();
    let file = done["file"].as_str().unwrap();
    assert!(file.starts_with("pinkpage-") && file.ends_with(".db"), "{done}");
    let (complete, _) = b.recv_until("batch_complete").await;
    assert_eq!(complete["succeeded"], 300, "{complete}");

    let copy = dir.join(file);
    assert_eq!(
        std::fs::metadata(&copy).unwrap().len(),
        done["bytes"].as_u64().unwrap()
    );
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let runs: i64 = conn
        .query_row("SELECT count(*) FROM batch_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 1, "the run started before the copy is in it");
    let rows = app.audit_events("action=backup.create", 1).await;
    assert_eq!(rows[0]["target"], file);
    assert_eq!(rows[0]["outcome"], "ok");

    // the command line: beside the running daemon, never over a file
    let by_hand = backups.path().join("by-hand.db");
    let (code, out, err) = app.cli(&["backup", by_hand.to_str().unwrap()], "");
    assert_eq!(code, Some(0), "{out} {err}");
    let conn = rusqlite::Connection::open(&by_hand).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let (code, _, err) = app.cli(&["backup", by_hand.to_str().unwrap()], "");
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot create"), "{err}");
}

/// On PostgreSQL the REST backup is a `pg_dump` archive, named so, private,
/// that `pg_restore` reads, and audited like any other.
#[tokio::test]
async fn a_rest_backup_on_postgres_is_a_private_pg_dump_archive() {
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("copies");
    let app = crate::support::daemon::TestApp::builder()
        .server(crate::support::daemon::ServerEntry::unreachable("mdwap1p"))
        .env("PINKPAGE_BACKUP_DIR", dir.to_str().unwrap())
        .postgres()
        .spawn()
        .await;
    let res = app.post_json("/api/v1/admin/backup", &json!({})).await;
    assert_eq!(res.status(), 201);
    let done: Value = res.json().await.unwrap();
    let file = done["file"].as_str().unwrap();
    assert!(file.starts_with("pinkpage-") && file.ends_with(".dump"), "{done}");
    let copy = dir.join(file);
    assert_eq!(
        std::fs::metadata(&copy).unwrap().len(),
        done["bytes"].as_u64().unwrap()
    );
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let listed = std::process::Command::new("pg_restore")
        .arg("--list")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("TABLE DATA public users"));
    let rows = app.audit_events("action=backup.create", 1).await;
    assert_eq!(rows[0]["target"], file, "{rows:?}");
}
