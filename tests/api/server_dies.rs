//! A server that dies mid-work: the test kills its sshd (the listener and
//! every session process below it) while a command, a script, a batch, a
//! diff or a transfer runs there. Each ends with an error code, never
//! hangs, and frees what it held; no partial file appears under a final
//! name. (A server that goes silent instead is `silent_network.rs`.)

use serde_json::{json, Value};

use crate::support::fixtures::{big_transfer_toml, with_servers, TempTree};
use crate::support::remote::RemoteProcess;
use crate::support::ws::WsClient;

/// Frames until one of `kinds`; the error frames seen before it.
async fn until(c: &mut WsClient, kinds: &[&str]) -> (Value, Vec<Value>) {
    let mut errors = Vec::new();
    loop {
        let f = c.recv().await;
        let kind = f["type"].as_str().unwrap_or_default().to_owned();
        if kind == "error" {
            errors.push(f.clone());
        }
        if kinds.contains(&kind.as_str()) {
            return (f, errors);
        }
    }
}

#[tokio::test]
async fn a_command_and_a_script_end_with_an_error_when_their_sshd_is_killed() {
    let (builder, [mut alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let mut stub = WsClient::stub(&app).await;
    stub.start_session().await;
    let command = format!("sleep 1081.{}", app.port);
    stub.send(json!({"type": "ssh_command", "server": "alpha", "command": command}))
        .await;
    stub.recv_until("ssh_command_started").await;
    let mut scripts = WsClient::connect(&app, "/ws/v1/bmx5").await;
    let marker = format!("sleep 1082.{}", app.port);
    scripts
        .send(json!({"type": "script_execute", "server": "alpha", "script": format!("{marker}\n")}))
        .await;
    scripts.recv_until("script_started").await;
    let sleeper = RemoteProcess::started(&command).await;
    let script = RemoteProcess::started(&marker).await;

    alpha.stop();
    sleeper.ended("sshd was killed with its sessions").await;
    script.ended("sshd was killed with its sessions").await;

    let (_, _, ended) = stub.collect_until_complete().await;
    assert_eq!(ended["error"]["error"]["code"], 20000, "{ended}");
    assert_eq!(ended["complete"]["reason"], "error", "{ended}");
    let (complete, errors) = until(&mut scripts, &["script_complete"]).await;
    assert_ne!(complete["reason"], "exit", "{complete}");
    assert!(
        errors.iter().any(|e| e["error"]["code"].is_number()),
        "the script's end says why: {complete} {errors:?}"
    );
    // the lock is still this connection's, and its slot is free: the next
    // command is not refused with 50010 (it fails to connect: sshd is gone)
    stub.send(json!({"type": "ssh_command", "server": "alpha", "command": "true"}))
        .await;
    let (_, _, next) = stub.collect_until_complete().await;
    assert_eq!(next["error"]["error"]["code"], 20000, "{next}");
}

#[tokio::test]
async fn a_batch_and_a_diff_end_with_an_error_when_their_sshd_is_killed() {
    let (builder, [mut alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let mut batch = WsClient::connect(&app, "/ws/v1/bmx4").await;
    let command = format!("sleep 1083.{}", app.port);
    batch
        .send(json!({"type": "batch_execute", "server": "alpha", "commands": [command]}))
        .await;
    let diff_command = format!("sleep 1084.{}", app.port);
    let diff = {
        let http = app.http.clone();
        let url = app.url("/api/v1/diff/command");
        let body = json!({"command": diff_command, "left_server": "alpha", "right_server": "alpha"});
        tokio::spawn(async move { http.post(url).json(&body).send().await })
    };
    let sleeper = RemoteProcess::started(&command).await;
    let differ = RemoteProcess::started(&diff_command).await;

    alpha.stop();
    sleeper.ended("sshd was killed with its sessions").await;
    differ.ended("sshd was killed with its sessions").await;

    let (result, _) = until(&mut batch, &["batch_command_result"]).await;
    assert_eq!(result["status"], "failed", "{result}");
    let (complete, _) = until(&mut batch, &["batch_complete"]).await;
    assert_eq!(complete["failed"], 1, "{complete}");
    let res = diff.await.unwrap().expect("the diff answers");
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    // never a 200 "identical" made of two commands that did not end
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], 20000, "{body}");
}

#[tokio::test]
async fn a_transfer_whose_destination_dies_fails_and_leaves_no_final_file() {
    let tree = TempTree::for_test_user("dies-xfer");
    tree.mkdir("src");
    let dst = tree.mkdir("dst");
    tree.write("src/big.dat", vec![9u8; 64 * 1024 * 1024]);
    let (builder, [_alpha, mut beta]) = with_servers(["alpha", "beta"]);
    let transfer = big_transfer_toml(&tree, "alpha", "beta", &dst);
    let app = builder.transfers_toml(&transfer).spawn().await;
    let mut c = WsClient::stub(&app).await;
    c.start_session().await;
    c.send(json!({"type": "scp_transfer", "transfer_name": "big", "request_id": "t1"}))
        .await;
    c.recv_until("scp_progress").await;

    beta.stop();
    // 24000, with 50014 beside it when the temporary file could not be
    // removed (its server is gone)
    let codes = c
        .error_codes_until(24000, "scp_complete", crate::support::ws::FRAME_TIMEOUT)
        .await;
    assert!(codes.iter().all(|c| [24000, 50014].contains(c)), "{codes:?}");
    assert!(
        !tree.join("dst/big.dat").exists(),
        "no partial file under the final name"
    );
    // the transfer gate is free: a second run is not refused with 50009
    beta.start_again();
    c.send(json!({"type": "scp_transfer", "transfer_name": "big", "request_id": "t2"}))
        .await;
    let (again, errors) = until(&mut c, &["scp_complete"]).await;
    assert!(errors.iter().all(|e| e["error"]["code"] != 50009), "{errors:?}");
    assert_eq!(again["files"][0]["name"], "big.dat", "{again}");
}

#[tokio::test]
async fn a_rest_upload_whose_server_dies_fails_and_leaves_no_final_file() {
    let (builder, [mut alpha]) = with_servers(["alpha"]);
    let app = builder.spawn().await;
    let dir = TempTree::for_test_user("dies-upload");
    let path = dir.path("upload.bin");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_of(rx));
    let put = {
        let request = app
            .http
            .put(app.url("/api/v1/bmx5/files"))
            .query(&[("server", "alpha"), ("path", path.as_str())])
            .body(body);
        tokio::spawn(async move { request.send().await })
    };
    for _ in 0..4 {
        tx.send(Ok(vec![7u8; 1 << 20])).await.unwrap();
    }
    // the upload is under way: its temporary file is on the server
    crate::support::poll::eventually("the upload's temporary file", async || !dir.entries().is_empty()).await;

    alpha.stop();
    // the client goes on sending until the daemon answers
    let feeder = tokio::spawn(async move {
        for _ in 0..64 {
            if tx.send(Ok(vec![7u8; 1 << 20])).await.is_err() {
                break;
            }
        }
    });
    let res = put.await.unwrap().expect("the upload is answered");
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    // a lost connection, not the server's catch-all "failure" (409)
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], 52000, "{body}");
    let detail = body["error"]["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with("connection lost"), "{body}");
    assert!(
        !dir.entries().iter().any(|e| e == "upload.bin"),
        "no file under its final name: {:?}",
        dir.entries()
    );
    feeder.abort();

    /// The receiver as a `Stream` (reqwest's body wants one).
    fn tokio_stream_of(
        rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
    ) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
    }
}
