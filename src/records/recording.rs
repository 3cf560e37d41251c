//! Recordings of PTYs: the index of the asciicast files under
//! `<data dir>/recordings/` (the files themselves are `crate::recordings`'
//! to write and serve).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Visible;

/// Where a recording is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Its PTY runs: the file grows.
    Recording,
    /// Its PTY ended and the file is whole.
    Ended,
    /// The daemon stopped without ending it (killed): the file holds what
    /// was written up to its last full event.
    Interrupted,
    /// Writing it failed (a full or failing disk); its PTY went on
    /// unrecorded from then on.
    Failed,
}

impl RecordingState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Recording => "recording",
            RecordingState::Ended => "ended",
            RecordingState::Interrupted => "interrupted",
            RecordingState::Failed => "failed",
        }
    }

    /// The state a stored name names.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "recording" => RecordingState::Recording,
            "ended" => RecordingState::Ended,
            "interrupted" => RecordingState::Interrupted,
            "failed" => RecordingState::Failed,
            _ => return None,
        })
    }
}

/// A recording as listed: what was recorded, where, by whom, and how it
/// ended. Its id is its PTY's `pty_id`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Recording {
    /// The recording's id: its PTY's id.
    pub id: String,
    /// The PTY's id (the same; named as the other frames name it).
    pub pty_id: String,
    /// What ran on the PTY: `command`, `script`, `workflow_step`,
    /// `terminal`.
    pub kind: String,
    /// Whose PTY it was.
    pub user: String,
    /// The server.
    pub server: String,
    /// The command (empty for an interactive shell).
    pub command: String,
    /// The operator terminal, for one.
    pub terminal_id: Option<String>,
    /// The workflow run, for a workflow step.
    pub run_id: Option<String>,
    /// The run's step (from 0), for a workflow step.
    pub step: Option<i64>,
    /// When the recording started (RFC 3339, UTC).
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Where it is.
    pub state: RecordingState,
    /// How the PTY ended (`exit`, `cancelled`, `closed`, ...).
    pub reason: Option<String>,
    /// The remote exit status, when it exited.
    pub exit_status: Option<i64>,
    /// Why writing it failed, for a failed one.
    pub error: Option<String>,
    /// The file's size in bytes (its size now, while recording).
    pub bytes: i64,
    /// The PTY's width when it opened (columns).
    pub width: i64,
    /// Its height (rows).
    pub height: i64,
    /// The file, relative to the recordings directory; not shown.
    #[serde(skip)]
    pub file: String,
}

/// A change to the index, in order per recording.
#[derive(Debug, Clone)]
pub enum RecordingWrite {
    /// A recording started (its file exists, with its header).
    Start(Box<Recording>),
    /// A recording ended: whole (`Ended`) or cut short (`Failed`).
    End {
        /// The recording.
        id: String,
        /// When.
        at: DateTime<Utc>,
        /// `Ended` or `Failed`.
        state: RecordingState,
        /// How its PTY ended.
        reason: String,
        /// The exit status, when it exited.
        exit_status: Option<i64>,
        /// Why writing failed, for `Failed`.
        error: Option<String>,
        /// The file's final size.
        bytes: i64,
    },
    /// A recording was deleted (its file is gone).
    Remove(String),
}

impl RecordingWrite {
    /// Its size in memory, near enough.
    pub fn weight(&self) -> usize {
        match self {
            RecordingWrite::Start(r) => 512 + r.command.len(),
            RecordingWrite::End { reason, error, .. } => {
                256 + reason.len() + error.as_ref().map_or(0, String::len)
            }
            RecordingWrite::Remove(id) => 64 + id.len(),
        }
    }

    /// The recording it changes.
    pub fn id(&self) -> &str {
        match self {
            RecordingWrite::Start(r) => &r.id,
            RecordingWrite::End { id, .. } | RecordingWrite::Remove(id) => id,
        }
    }
}

/// Which recordings to list: newest first, `limit` after skipping
/// `offset` of those that match.
#[derive(Debug, Clone)]
pub struct RecordingsQuery {
    /// Only this user's.
    pub user: Option<String>,
    /// Only on this server.
    pub server: Option<String>,
    /// Only those started at or after.
    pub since: Option<DateTime<Utc>>,
    /// Only those started before.
    pub until: Option<DateTime<Utc>>,
    /// Only those whose command contains this text.
    pub text: Option<String>,
    /// Only the steps of this workflow run.
    pub run_id: Option<String>,
    /// The reader's scope: only recordings on these servers.
    pub visible: Visible,
    /// The reader's ownership rule: `Some(user)` for a reader who sees
    /// only their own.
    pub owner: Option<String>,
    /// Most to return.
    pub limit: u32,
    /// How many matching ones to skip.
    pub offset: u32,
}
