//! The one SFTP write path and the per-client SFTP sessions: long names,
//! writing through a symlink, atomic replace, sessions that end with their
//! client or request.

use super::*;

/// Uploads `body` to `path` with `PUT /api/v1/bmx5/files` and returns the
/// status and the JSON reply.
async fn put_file(app: &TestApp, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let res = app
        .http
        .put(app.url("/api/v1/bmx5/files"))
        .query(&[("server", "mdwap1p"), ("path", path)])
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn a_file_whose_name_is_at_the_255_byte_limit_uploads_over_rest_and_inline() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let dir = TempTree::for_test_user("longname");
    // 85 three-byte characters: 255 bytes, the most a name may have
    let long = "한".repeat(85);
    let (status, body) = put_file(&app, &dir.path(&long), "rest bytes").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(std::fs::read(dir.path(&long)).unwrap(), b"rest bytes");

    let ascii = "n".repeat(255);
    let mut c = bmx5(&app).await;
    let up = c
        .ask(
            json!({"type": "sftp_upload", "server": "mdwap1p", "path": dir.path(&ascii), "data": B64.encode(b"inline")}),
            "sftp_upload_result",
        )
        .await;
    assert_eq!(up["size"], 6, "{up}");
    assert_eq!(std::fs::read(dir.path(&ascii)).unwrap(), b"inline");
    let mut expected = vec![ascii, long];
    expected.sort();
    assert_eq!(dir.entries(), expected, "no temporary file is left");
}

#[tokio::test]
async fn uploading_through_a_symlink_to_a_private_file_keeps_it_private() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let dir = TempTree::for_test_user("symlink");
    let secret = PathBuf::from(dir.path("secret.conf"));
    std::fs::write(&secret, "old").unwrap();
    chown_to_test_user(&secret);
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let link = dir.path("link.conf");
    std::os::unix::fs::symlink(&secret, &link).unwrap();

    let (status, body) = put_file(&app, &link, "new over rest").await;
    assert_eq!(status, 200, "{body}");
    let mode = std::fs::metadata(&link).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the file written keeps the target's mode: {mode:o}");
    assert_eq!(std::fs::read(&link).unwrap(), b"new over rest");

    // the same through the inline upload, with a fresh link
    let link2 = dir.path("link2.conf");
    std::os::unix::fs::symlink(&secret, &link2).unwrap();
    let mut c = bmx5(&app).await;
    let up = c
        .ask(
            json!({"type": "sftp_upload", "server": "mdwap1p", "path": link2, "data": B64.encode(b"inline")}),
            "sftp_upload_result",
        )
        .await;
    assert_eq!(up["size"], 6, "{up}");
    let mode = std::fs::metadata(&link2).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "inline keeps the target's mode too: {mode:o}");
}

#[tokio::test]
async fn a_replaced_file_never_disappears_while_it_is_being_replaced() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let dir = TempTree::for_test_user("atomic");
    let path = dir.path("watched.txt");
    std::fs::write(&path, "v0").unwrap();
    chown_to_test_user(Path::new(&path));

    // An observer stats the file as fast as it can while it is replaced
    // again and again: remove + rename leaves a moment with no file, which
    // it would see; posix-rename never does.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let observer = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            let (mut looks, mut missing) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                looks += 1;
                if std::fs::symlink_metadata(&path).is_err() {
                    missing += 1;
                }
            }
            (looks, missing)
        })
    };
    let mut c = bmx5(&app).await;
    for i in 1..=40 {
        let data = format!("v{i}");
        let up = c
            .ask(
                json!({"type": "sftp_upload", "server": "mdwap1p", "path": path, "data": B64.encode(&data)}),
                "sftp_upload_result",
            )
            .await;
        assert_eq!(up["size"], data.len(), "{up}");
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (looks, missing) = observer.join().unwrap();
    assert!(looks > 1000, "the observer looked only {looks} times");
    assert_eq!(missing, 0, "the file was missing {missing} of {looks} times");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "v40");
    assert_eq!(dir.entries(), ["watched.txt"]);
}

/// Whether `sshd` has logged the end of a session of the test user.
fn session_ended(sshd: &crate::support::sshd::SshdServer) -> bool {
    let log = sshd.log();
    log.contains("Disconnected from user pinkpage-test")
        || log.contains("Connection closed by user pinkpage-test")
}

#[tokio::test]
async fn the_pooled_sftp_session_stays_while_the_client_is_there_and_ends_when_it_goes() {
    let (app, sshd) = app_with_server("mdwap1p").await;
    let dir = TempTree::for_test_user("pool");
    let mut c = bmx5(&app).await;
    for _ in 0..2 {
        let listed = c
            .ask(
                json!({"type": "sftp_list", "server": "mdwap1p", "path": dir.path("")}),
                "sftp_list_result",
            )
            .await;
        assert_eq!(listed["entries"], json!([]), "{listed}");
    }
    let log = sshd.log();
    assert_eq!(
        log.matches("Accepted ").count(),
        1,
        "both requests used one session: {log}"
    );
    assert!(!session_ended(&sshd), "the session is still open: {log}");

    c.close().await;
    eventually("the session ends with its client", async || session_ended(&sshd)).await;
}

#[tokio::test]
async fn a_rest_download_leaves_no_session_open() {
    let (app, sshd) = app_with_server("mdwap1p").await;
    let dir = TempTree::for_test_user("restpool");
    let path = dir.path("f.txt");
    std::fs::write(&path, "hello").unwrap();
    let res = app
        .http
        .get(app.url("/api/v1/bmx5/files"))
        .query(&[("server", "mdwap1p"), ("path", path.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"hello");
    assert!(sshd.log().contains("Accepted "), "{}", sshd.log());
    eventually("the download's session ends", async || session_ended(&sshd)).await;
}
