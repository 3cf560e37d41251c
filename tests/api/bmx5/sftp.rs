//! BMX5 SFTP operations over the WebSocket: names that need care, the
//! inline size limit, field errors in the order they are checked.

use super::*;

#[tokio::test]
async fn the_bmx5_welcome_names_the_domain() {
    let app = TestApp::spawn_without_ssh().await;
    let c = bmx5(&app).await;
    assert_eq!(c.welcome["message"], "Connected to BMX5 WebSocket");
    assert_eq!(c.welcome["session_status"]["active"], false);
}

#[tokio::test]
async fn files_with_spaces_and_korean_names_survive_mkdir_upload_stat_rename_download_and_remove() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let dir = TempTree::for_test_user("bmx5-roundtrip");
    let mut c = bmx5(&app).await;
    let nested = dir.path("새 폴더 a/하위 b");
    let content: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 256) as u8).collect();

    let made = c.ask(json!({"type": "sftp_mkdir", "server": "mdwap1p", "path": nested, "parents": true, "request_id": "m1"}),
        "sftp_mkdir_result",
    )
    .await;
    assert_eq!(made["created"], true, "{made}");
    assert_eq!(made["request_id"], "m1");
    let again = c
        .ask(
            json!({"type": "sftp_mkdir", "server": "mdwap1p", "path": nested, "parents": true}),
            "sftp_mkdir_result",
        )
        .await;
    assert_eq!(again["created"], false, "{again}");

    let file = format!("{nested}/보고서 1.txt");
    let up = c
        .ask(
            json!({"type": "sftp_upload", "server": "mdwap1p", "path": file, "data": B64.encode(&content)}),
            "sftp_upload_result",
        )
        .await;
    assert_eq!(up["size"], 5000, "{up}");
    assert_eq!(std::fs::read(&file).unwrap(), content, "the bytes on the server");

    let listed = c
        .ask(
            json!({"type": "sftp_list", "server": "mdwap1p", "path": nested}),
            "sftp_list_result",
        )
        .await;
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "no temporary file is left: {listed}");
    assert_eq!(entries[0]["name"], "보고서 1.txt");
    assert_eq!(entries[0]["kind"], "file");
    assert_eq!(entries[0]["size"], 5000);
    assert!(entries[0]["mtime"].as_u64().unwrap() > 1_600_000_000, "{listed}");
    let parent = c
        .ask(
            json!({"type": "sftp_list", "server": "mdwap1p", "path": dir.path("새 폴더 a")}),
            "sftp_list_result",
        )
        .await;
    assert_eq!(parent["entries"][0]["kind"], "dir", "{parent}");

    let stat = c
        .ask(
            json!({"type": "sftp_stat", "server": "mdwap1p", "path": file}),
            "sftp_stat_result",
        )
        .await;
    assert_eq!(stat["entry"]["size"], 5000, "{stat}");
    assert_eq!(stat["entry"]["name"], "보고서 1.txt");
    let mode = stat["entry"]["mode"].as_u64().unwrap();
    assert_eq!(mode & 0o600, 0o600, "owner can read and write: {mode:o}");

    let renamed_to = format!("{nested}/최종 보고서.txt");
    let renamed = c
        .ask(
            json!({"type": "sftp_rename", "server": "mdwap1p", "from": file, "to": renamed_to}),
            "sftp_rename_result",
        )
        .await;
    assert_eq!(renamed["to"], renamed_to.as_str(), "{renamed}");
    assert!(!Path::new(&file).exists());

    let down = c
        .ask(
            json!({"type": "sftp_download", "server": "mdwap1p", "path": renamed_to}),
            "sftp_download_result",
        )
        .await;
    assert_eq!(
        B64.decode(down["data"].as_str().unwrap()).unwrap(),
        content,
        "{down}"
    );
    assert_eq!(down["size"], 5000);

    let refused = c
        .ask(
            json!({"type": "sftp_remove", "server": "mdwap1p", "path": dir.path("새 폴더 a")}),
            "sftp_remove_result",
        )
        .await;
    assert_eq!(
        refused["type"], "error",
        "a non-empty directory needs recursive: {refused}"
    );
    assert_eq!(refused["error"]["code"], 52000);

    let removed = c.ask(json!({"type": "sftp_remove", "server": "mdwap1p", "path": dir.path("새 폴더 a"), "recursive": true}),
        "sftp_remove_result",
    )
    .await;
    assert_eq!(removed["removed"], 3, "two directories and a file: {removed}");
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());

    let gone = c
        .ask(
            json!({"type": "sftp_stat", "server": "mdwap1p", "path": renamed_to}),
            "sftp_stat_result",
        )
        .await;
    assert_eq!(gone["error"]["code"], 52000, "{gone}");
    assert!(
        gone["error"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("no such file"),
        "{gone}"
    );

    // the remove is the last operation: once it is recorded, all are
    app.audit_events("action=sftp.remove", 1).await;
    let audit = app.audit_events("", 1).await;
    let actions: Vec<&str> = audit.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["sftp.mkdir", "sftp.upload", "sftp.rename", "sftp.remove"] {
        assert!(actions.contains(&action), "{action} not audited: {actions:?}");
    }
}

#[tokio::test]
async fn an_inline_download_over_the_frame_limit_is_refused_and_names_the_limit() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let dir = TempTree::for_test_user("bmx5-inline");
    let big = dir.path("big.bin");
    std::fs::write(&big, vec![b'x'; 100 * 1024]).unwrap();
    let mut c = bmx5(&app).await;

    let err = c
        .ask(
            json!({"type": "sftp_download", "server": "mdwap1p", "path": big}),
            "sftp_download_result",
        )
        .await;

    assert_eq!(err["error"]["code"], 52000, "{err}");
    let detail = err["error"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("47104") && detail.contains("/api/v1/bmx5/files"),
        "{detail}"
    );
}

#[tokio::test]
async fn bad_sftp_fields_are_10001_and_an_unknown_server_23000_in_the_order_they_are_checked() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let mut c = bmx5(&app).await;
    for (frame, code) in [
        (
            json!({"type": "sftp_list", "server": "mdwap1p", "path": ""}),
            10001,
        ),
        (
            json!({"type": "sftp_stat", "server": "nope", "path": "/tmp"}),
            23000,
        ),
        // a bad path is found before the unknown server
        (json!({"type": "sftp_list", "server": "nope", "path": ""}), 10001),
        (
            json!({"type": "sftp_rename", "server": "mdwap1p", "from": "/tmp/a", "to": "b\u{0}c"}),
            10001,
        ),
        // an inline upload's data is looked at first
        (
            json!({"type": "sftp_upload", "server": "nope", "path": "", "data": "not base64!"}),
            10001,
        ),
        (
            json!({"type": "sftp_upload", "server": "nope", "path": "/tmp/x", "data": "aGk="}),
            23000,
        ),
    ] {
        c.send(frame.clone()).await;
        let err = c.expect_error().await;
        assert_eq!(err["error"]["code"], code, "{frame}: {err}");
    }
}
