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

mod rest;
mod scripts;
mod sftp;
mod writes;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

async fn bmx5(app: &TestApp) -> WsClient {
    WsClient::connect(app, "/ws/v1/bmx5").await
}
