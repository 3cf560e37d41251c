//! The BMX4 domain end to end: batch runs through the real daemon, over a
//! real WebSocket, against real sshd processes.

use serde_json::{json, Value};

use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::fixtures::{app_with_server, with_servers};
use crate::support::poll::eventually;
use crate::support::remote::RemoteProcess;
use crate::support::ws::WsClient;

mod history;
mod runs;
mod stopping;

async fn bmx4(app: &TestApp) -> WsClient {
    WsClient::connect(app, "/ws/v1/bmx4").await
}

/// What one batch produced.
struct Batch {
    started: Value,
    results: Vec<Value>,
    errors: Vec<Value>,
    complete: Value,
}

impl Batch {
    fn run_id(&self) -> &str {
        self.started["run_id"].as_str().unwrap()
    }
}

/// Sends `request` (a `batch_execute`) and reads until `batch_complete`.
async fn run_batch(c: &mut WsClient, mut request: Value) -> Batch {
    request["type"] = json!("batch_execute");
    request["request_id"] = json!("b1");
    c.send(request).await;
    let started = c.request_wait("batch_started").await;
    assert_eq!(started["request_id"], "b1");
    finish_batch(c, started).await
}

async fn finish_batch(c: &mut WsClient, started: Value) -> Batch {
    let mut results = Vec::new();
    let mut errors = Vec::new();
    loop {
        let f = c.recv().await;
        match f["type"].as_str().unwrap() {
            "batch_command_result" => {
                assert_eq!(f["request_id"], started["request_id"], "{f}");
                results.push(f)
            }
            "error" => errors.push(f),
            "batch_complete" => {
                assert_eq!(f["run_id"], started["run_id"]);
                return Batch {
                    started,
                    results,
                    errors,
                    complete: f,
                };
            }
            _ => {}
        }
    }
}

trait RequestWait {
    async fn request_wait(&mut self, kind: &str) -> Value;
}

impl RequestWait for WsClient {
    /// The next frame of type `kind`, skipping broadcasts; panics on errors.
    async fn request_wait(&mut self, kind: &str) -> Value {
        loop {
            let f = self.recv().await;
            if f["type"] == kind {
                return f;
            }
            assert_ne!(f["type"], "error", "{f}");
        }
    }
}

/// A `sleep` nobody else runs, so pgrep finds only ours.
fn unique_sleep() -> String {
    format!("sleep 1000.{}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000)
}

fn statuses(results: &[Value]) -> Vec<&str> {
    results.iter().map(|r| r["status"].as_str().unwrap()).collect()
}

fn counts(complete: &Value) -> (u64, u64, u64) {
    (
        complete["succeeded"].as_u64().unwrap(),
        complete["failed"].as_u64().unwrap(),
        complete["skipped"].as_u64().unwrap(),
    )
}
