//! What a transfer is asked to do ([`TransferRequest`], under the
//! daemon's one-transfer rule, [`TransferGate`]) and what it reports
//! ([`TransferProgress`], [`TransferOutcome`]): plain data, shared by the
//! actor, its relay and whoever records the transfer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::error::{AppError, ErrorCode};
use crate::files::temp_files::TempFiles;
use crate::server::{ServerSpec, TransferSpec};
use crate::ssh::SshOptions;

/// The one-transfer-per-daemon rule (50009). Cloned into every connection.
#[derive(Clone, Default)]
pub struct TransferGate {
    /// The name of the running transfer, if any.
    running: Arc<Mutex<Option<String>>>,
}

impl TransferGate {
    /// Takes the slot for `name`, or 50009 naming the running transfer.
    pub fn try_acquire(&self, name: &str) -> Result<TransferPermit, AppError> {
        let mut running = self.running.lock().expect("gate lock");
        if let Some(other) = running.as_deref() {
            return Err(AppError::with_detail(
                ErrorCode::TransferAlreadyRunning,
                format!("transfer '{other}' is running"),
            ));
        }
        *running = Some(name.to_owned());
        Ok(TransferPermit {
            running: self.running.clone(),
        })
    }

    /// The running transfer's name.
    pub fn running(&self) -> Option<String> {
        self.running.lock().expect("gate lock").clone()
    }
}

/// Holds the daemon's transfer slot until dropped.
pub struct TransferPermit {
    running: Arc<Mutex<Option<String>>>,
}

impl Drop for TransferPermit {
    fn drop(&mut self) {
        *self.running.lock().expect("gate lock") = None;
    }
}

/// What to copy and how to reach both ends.
pub struct TransferRequest {
    /// The named transfer.
    pub spec: Arc<TransferSpec>,
    /// Its source server.
    pub source: Arc<ServerSpec>,
    /// Its destination server.
    pub destination: Arc<ServerSpec>,
    /// How to connect (timeouts, host keys).
    pub ssh: Arc<SshOptions>,
    /// Where the copies' temporary files are recorded (crash recovery).
    pub temp_files: TempFiles,
    /// The daemon's transfer slot, released after cleanup.
    pub permit: TransferPermit,
}

/// Where the copy is (`scp_progress`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TransferProgress {
    /// The file that last moved bytes.
    pub file: String,
    /// Bytes written to the destination so far, all files.
    pub bytes_done: u64,
    /// Bytes of all matched files.
    pub bytes_total: u64,
    /// Files renamed into place.
    pub files_done: usize,
    /// Files matched.
    pub files_total: usize,
}

/// One copied file (`scp_complete.files[]`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileDone {
    /// Its name (the same in source and destination directory).
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// Hex SHA-256, equal on both sides; only when the transfer verifies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A finished transfer.
#[derive(Debug, Clone)]
pub struct TransferSummary {
    /// Every file, by name.
    pub files: Vec<FileDone>,
    /// Their total size.
    pub bytes: u64,
    /// From start (including connecting) to the last rename.
    pub duration: Duration,
}

/// How a transfer ended.
#[derive(Debug, Clone)]
pub enum TransferOutcome {
    /// Every file is in place and verified.
    Complete(TransferSummary),
    /// 24000 / 24001; files renamed before the failure stay, no partial
    /// file does.
    Failed(AppError),
    /// Stopped on request; files renamed before stay, no partial file does.
    Cancelled {
        /// The last progress counters.
        progress: Option<TransferProgress>,
    },
}
