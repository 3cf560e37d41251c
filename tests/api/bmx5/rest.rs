//! BMX5 large files over REST: streaming both ways in bounded memory,
//! ranges, error statuses, an interrupted upload.

use super::*;

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
         Authorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 50000000\r\n\r\n",
        app.admin_token.as_deref().unwrap()
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

#[tokio::test]
async fn an_upload_whose_body_stalls_is_aborted_with_10009_its_file_removed_and_its_session_closed() {
    // 1 s instead of the default 30, to keep the suite short
    let (builder, [sshd]) = with_servers(["mdwap1p"]);
    let app = builder.env("PINKPAGE_BODY_IDLE_TIMEOUT_S", "1").spawn().await;
    let dir = TempTree::for_test_user("bmx5-stalled");
    let path = dir.path("stalled.bin");
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let head = format!(
        "PUT /api/v1/bmx5/files?server=mdwap1p&path={path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 50000000\r\n\r\n",
        app.admin_token.as_deref().unwrap()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&chunk(0)).await.unwrap();
    eventually("the temporary file appears", async || {
        dir.entries()
            .iter()
            .any(|n| n.starts_with(".stalled.bin.pinkpage-"))
    })
    .await;

    // the stimulus: send nothing more, keep the connection open, read
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}") {
        let n = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tokio::io::AsyncReadExt::read(&mut sock, &mut buf),
        )
        .await
        .expect("no answer 10 s into a stalled body")
        .unwrap();
        assert!(
            n > 0,
            "closed without an answer: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":10009"), "{answer}");
    assert!(dir.entries().is_empty(), "left behind: {:?}", dir.entries());
    // every SSH session the daemon opened to the server was closed
    eventually("the upload's SSH session is closed", async || {
        let log = sshd.log();
        let opened = log.matches("Accepted ").count();
        opened > 0 && log.matches("Disconnected from user").count() == opened
    })
    .await;
}

#[tokio::test]
async fn a_download_whose_client_disconnects_closes_its_ssh_session() {
    let (app, sshd) = app_with_server("mdwap1p").await;
    let dir = TempTree::for_test_user("bmx5-download-gone");
    // far more than the socket buffers hold, so the download is mid-way
    // when the client goes
    let path = dir.write("big.bin", vec![7u8; 64 << 20]);
    let res = app
        .http
        .get(app.url(&format!("/api/v1/bmx5/files?server=mdwap1p&path={path}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.bytes_stream();
    let first = body.next().await.expect("a first chunk").unwrap();
    assert!(!first.is_empty());
    assert!(
        sshd.log().contains("Accepted "),
        "the download's session was opened"
    );

    drop(body);

    eventually("the download's SSH session is closed", async || {
        let log = sshd.log();
        let opened = log.matches("Accepted ").count();
        // sshd says a session ended one of these ways, depending on
        // whether the client said goodbye before its socket closed
        let closed = [
            "Disconnected from user",
            "Connection closed by",
            "Connection reset by",
        ]
        .iter()
        .map(|line| log.matches(line).count())
        .sum::<usize>();
        closed >= opened
    })
    .await;
}

/// Every read of a file's content leaves its row, as a diff of the same
/// file does: an inline `sftp_download`, a REST download (with the bytes
/// sent), and one whose client leaves half-way (the bytes it got, `ok`
/// false).
#[tokio::test]
async fn downloads_over_the_websocket_and_rest_are_audited_with_server_path_and_bytes() {
    let (app, _sshd) = app_with_server("mdwap1p").await;
    let dir = TempTree::for_test_user("bmx5-read-audit");
    let small = dir.write("small.txt", "read me\n");
    let big = dir.path("big.bin");
    std::fs::write(&big, chunk(0).repeat(64)).unwrap();
    chown_to_test_user(Path::new(&big));

    let mut ws = WsClient::connect(&app, "/ws/v1/bmx5").await;
    ws.request(
        json!({"type": "sftp_download", "server": "mdwap1p", "path": small}),
        "sftp_download_result",
    )
    .await;
    let url = app.url("/api/v1/bmx5/files");
    let whole = app
        .http
        .get(&url)
        .query(&[("server", "mdwap1p"), ("path", small.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(whole.bytes().await.unwrap().as_ref(), b"read me\n");
    // 64 MiB asked for, one chunk read, then the client goes
    let mut partial = app
        .http
        .get(&url)
        .query(&[("server", "mdwap1p"), ("path", big.as_str())])
        .send()
        .await
        .unwrap();
    assert!(partial.chunk().await.unwrap().is_some());
    drop(partial);

    let rows = app.audit_events("action=sftp.download", 3).await;
    // the REST rows' actor is `rest`, the WebSocket's its connection id
    let row = |over_rest: bool, path: &str| {
        rows.iter()
            .find(|r| (r["actor"] == "rest") == over_rest && r["detail"]["path"] == path)
            .cloned()
            .unwrap_or_else(|| panic!("no row (rest: {over_rest}) for {path}: {rows:?}"))
    };
    let inline = row(false, &small);
    assert_eq!(
        (inline["server"].as_str(), inline["bytes"].as_i64()),
        (Some("mdwap1p"), Some(8))
    );
    let rest = row(true, &small);
    assert_eq!(
        (rest["bytes"].as_i64(), rest["detail"]["ok"].as_bool()),
        (Some(8), Some(true)),
        "{rest}"
    );
    let cut = row(true, &big);
    let sent = cut["bytes"].as_i64().unwrap();
    assert!(sent > 0 && sent < 64 << 20, "{cut}");
    assert_eq!(cut["detail"]["ok"], false, "{cut}");
    assert_eq!(cut["detail"]["length"], 64 << 20, "{cut}");
}
