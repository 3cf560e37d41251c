//! BMX5 end to end: SFTP over the WebSocket, large files over REST, remote
//! scripts; real daemon, real sshd. The sshd serves this machine, so the
//! test (root) can look at the "remote" files directly.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::support::daemon::TestApp;
use crate::support::fixtures::{app_with_server, with_servers, TempTree};
use crate::support::poll::eventually;
use crate::support::remote::{chown_to_test_user, RemoteProcess};
use crate::support::ws::WsClient;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

async fn bmx5(app: &TestApp) -> WsClient {
    WsClient::connect(app, "/ws/v1/bmx5").await
}

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

/// A deterministic, incompressible 1 MiB chunk number `i`.
fn chunk(i: u64) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut out = Vec::with_capacity(1 << 20);
    for _ in 0..(1 << 17) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

#[tokio::test]
async fn a_200_mib_file_goes_up_and_down_over_rest_intact_in_bounded_memory_with_ranges() {
    const CHUNKS: u64 = 200;
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let dir = TempTree::for_test_user("bmx5-big");
    let path = dir.path("large file.bin");
    let url = app.url("/api/v1/bmx5/files");

    let mut expected = Sha256::new();
    for i in 0..CHUNKS {
        expected.update(chunk(i));
    }
    let expected = expected.finalize();
    let body = reqwest::Body::wrap_stream(
        futures_util::stream::iter(0..CHUNKS).map(|i| Ok::<_, std::io::Error>(chunk(i))),
    );
    let put = app
        .http
        .put(&url)
        .query(&[("server", "mdwap1p"), ("path", path.as_str())])
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{:?}", put.text().await);
    let put: Value = put.json().await.unwrap();
    assert_eq!(put["size"], CHUNKS << 20);
    assert_eq!(dir.entries(), ["large file.bin"], "no temporary file is left");

    let mut got = app
        .http
        .get(&url)
        .query(&[("server", "mdwap1p"), ("path", path.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.content_length(), Some(CHUNKS << 20));
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    while let Some(part) = got.chunk().await.unwrap() {
        received += part.len() as u64;
        hasher.update(&part);
    }
    assert_eq!(received, CHUNKS << 20);
    assert_eq!(hasher.finalize(), expected, "downloaded bytes differ");

    // Peak resident memory over the daemon's whole life, both transfers
    // included: a daemon that buffered the file would be past 200 MiB.
    let peak = app.peak_rss_kib();
    eprintln!("daemon VmHWM after 200 MiB up and down: {} KiB", peak);
    assert!(peak < 100 * 1024, "daemon peak RSS {peak} KiB");

    let ranged = app
        .http
        .get(&url)
        .query(&[("server", "mdwap1p"), ("path", path.as_str())])
        .header("Range", "bytes=1048000-1049999")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes 1048000-1049999/{}", CHUNKS << 20).as_str()
    );
    let bytes = ranged.bytes().await.unwrap();
    let mut want = chunk(0)[1048000..].to_vec();
    want.extend_from_slice(&chunk(1)[..1049999 - (1 << 20) + 1]);
    assert_eq!(bytes.as_ref(), want.as_slice(), "a range across a chunk boundary");

    let beyond = app
        .http
        .get(&url)
        .query(&[("server", "mdwap1p"), ("path", path.as_str())])
        .header("Range", format!("bytes={}-", CHUNKS << 20))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{}", CHUNKS << 20).as_str()
    );
}

#[tokio::test]
async fn reading_a_missing_file_is_52000_with_404_and_writing_into_a_read_only_directory_is_52000_with_403() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let dir = TempTree::for_test_user("bmx5-errors");
    let url = app.url("/api/v1/bmx5/files");

    let missing = app
        .http
        .get(&url)
        .query(&[("server", "mdwap1p"), ("path", dir.path("nope.txt").as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], 52000, "{body}");
    assert!(
        body["error"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("no such file"),
        "{body}"
    );

    let locked = PathBuf::from(dir.path("locked"));
    std::fs::create_dir(&locked).unwrap();
    chown_to_test_user(&locked);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let refused = app
        .http
        .put(&url)
        .query(&[("server", "mdwap1p"), ("path", dir.path("locked/x.txt").as_str())])
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], 52000, "{body}");
    assert!(
        body["error"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("permission denied"),
        "{body}"
    );
    assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);

    let unknown = app
        .http
        .get(&url)
        .query(&[("server", "nope"), ("path", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], 23000, "{body}");
}

#[tokio::test]
async fn an_upload_whose_client_disconnects_mid_body_leaves_no_file() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let dir = TempTree::for_test_user("bmx5-interrupted");
    let path = dir.path("half.bin");
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let head = format!(
        "PUT /api/v1/bmx5/files?server=mdwap1p&path={path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 50000000\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&chunk(0)).await.unwrap();
    // the temporary file exists once the daemon is writing
    eventually("the temporary file appears", async || {
        dir.entries().iter().any(|n| n.starts_with(".half.bin.pinkpage-"))
    })
    .await;

    drop(sock);

    let audit = app.audit_events("action=sftp.upload", 1).await;
    assert_eq!(audit[0]["detail"]["ok"], false, "{audit:?}");
    assert_eq!(audit[0]["detail"]["error"], 52000, "{audit:?}");
    assert!(dir.entries().is_empty(), "left behind: {:?}", dir.entries());
}

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
