//! Recordings of PTYs (issue 26): every STUB command, BMX5 script,
//! workflow command step and operator terminal is written as an asciicast
//! v2 file under `<data dir>/recordings/YYYY/MM/DD/<pty_id>.cast` (mode
//! 0600), and indexed through the journal (`records::recording`).
//!
//! - [`Recordings`]: the service. It is the engine's `RecorderOpener`
//!   (the PTY book asks it for each PTY about to open), it serves the
//!   files' whole part, deletes them, and keeps count of the recordings
//!   still being written so a shutdown waits for them.
//! - [`writer`]: one recording being written, with backpressure.
//! - [`cast`]: the file format.
//! - [`access`]: who may read which recordings.
//! - [`retention`]: removing the oldest, by age and by total size.
//!
//! Failing closed: a recording is started (its file created, its header
//! written) before its PTY connects. When that fails (a full or failing
//! disk), the PTY is refused with 56001, as new work is refused while
//! audit rows cannot be written, unless `PINKPAGE_RECORD_FAIL_OPEN=true`;
//! both are audited (`recording.unavailable`). A recording that fails
//! while its PTY runs stops; the PTY goes on unrecorded, and its owner is
//! told (`recording_stopped`, 56002) and the failure audited.
//!
//! Who owns what: [`Recordings`] is shared (`Arc`) and holds no state a
//! request changes but the count of open writers (an atomic, with a
//! `Notify` for the shutdown's wait); each file belongs to its writer task
//! until the recording ends, and is only read (never written) by
//! requests for it.

pub mod access;
pub mod cast;
pub mod retention;
pub mod writer;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use chrono::{Datelike, Utc};
use pinkpage_actors::broadcast::{BroadcastActor, Event, Publish};
use pinkpage_actors::pty::book::PtyInfo;
use pinkpage_actors::pty::record::{Recorder, RecorderOpener, RecordingEnd};
use pinkpage_actors::server::ServerSpec;
use pinkpage_actors::ssh::PtyRequest;
use pinkpage_actors::{AppError, ErrorCode};
use tokio::sync::Notify;

use self::cast::{Header, HeaderEnv};
use crate::journal::{Journal, Receipt, Settled};
use crate::records::audit::Outcome;
use crate::records::recording::{Recording, RecordingState, RecordingWrite};
use crate::records::NewAuditEvent;
use crate::settings::recordings::RecordingSettings;

/// The recordings directory under the data directory.
pub fn directory(data_dir: &Path) -> PathBuf {
    data_dir.join("recordings")
}

/// The recordings service. See the module docs.
pub struct Recordings {
    dir: PathBuf,
    /// The settings now; a reload replaces them ([`Recordings::set_settings`]).
    /// Read whole for each decision (a PTY that opens, a sweep), never
    /// held across an await.
    settings: std::sync::RwLock<RecordingSettings>,
    journal: Journal,
    /// Where the owner of a recording that stopped is told; set once the
    /// broadcast actor runs.
    broadcast: Option<Addr<BroadcastActor>>,
    open: Arc<OpenWriters>,
    /// The thread every recording's batches are written on.
    pool: writer::WritePool,
}

/// How many recordings are being written, and a wake-up when one ends
/// (for the shutdown's wait, and for retention: a recording that ended
/// may put the total over `PINKPAGE_RECORDINGS_MAX_BYTES`).
#[derive(Default)]
struct OpenWriters {
    count: AtomicUsize,
    changed: Notify,
    ended: Notify,
}

impl Recordings {
    /// The service writing under `dir`, indexing through `journal`.
    pub fn new(
        dir: PathBuf,
        settings: RecordingSettings,
        journal: Journal,
        broadcast: Option<Addr<BroadcastActor>>,
    ) -> Recordings {
        Recordings {
            dir,
            settings: std::sync::RwLock::new(settings),
            journal,
            broadcast,
            open: Arc::default(),
            pool: writer::WritePool::start(),
        }
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings now.
    pub fn settings(&self) -> RecordingSettings {
        self.settings.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// New settings (a reload): PTYs opened from now on and the next
    /// retention sweep follow them; recordings being written keep theirs.
    pub fn set_settings(&self, settings: RecordingSettings) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = settings;
    }

    /// Recordings being written now.
    pub fn writing(&self) -> usize {
        self.open.count.load(Ordering::SeqCst)
    }

    /// Waits until every recording being written has ended (their PTYs
    /// were closed first), at most `limit`: a graceful shutdown calls it
    /// before the journal's last flush, so the index gets their ends.
    pub async fn drained(&self, limit: Duration) {
        let wait = async {
            loop {
                let changed = self.open.changed.notified();
                if self.writing() == 0 {
                    return;
                }
                changed.await;
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            log::warn!(recordings = self.writing(); "recordings still being written at shutdown");
        }
    }

    /// Resolves once a recording has ended since the last call (a permit
    /// is kept when none waits).
    pub async fn one_ended(&self) {
        self.open.ended.notified().await;
    }

    /// The path of a recording's file.
    pub fn path_of(&self, recording: &Recording) -> Option<PathBuf> {
        // the index only ever holds names this service made; refuse
        // anything else rather than follow it out of the directory
        let rel = Path::new(&recording.file);
        let plain = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        plain.then(|| self.dir.join(rel))
    }

    /// Deletes `recording`: its file, then its index row, and audits
    /// `action` by `by` (`None`: the daemon) with `reason`. A file already
    /// gone is not an error. Returns the receipt of the index's removal.
    pub async fn remove(
        &self,
        recording: &Recording,
        by: Option<(&str, Option<String>)>,
        action: &str,
        reason: &str,
    ) -> Result<Receipt, AppError> {
        if let Some(path) = self.path_of(recording) {
            let removed = tokio::task::spawn_blocking(move || match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            })
            .await
            .map_err(|e| AppError::with_detail(ErrorCode::Internal, e.to_string()))?;
            removed.map_err(|e| {
                AppError::with_detail(
                    ErrorCode::Internal,
                    format!("cannot remove recording {}: {e}", recording.id),
                )
            })?;
        }
        let receipt = self.journal.record(RecordingWrite::Remove(recording.id.clone()));
        let mut event = match by {
            Some((user, remote)) => NewAuditEvent::new("rest", action).by(Some(user), remote),
            None => NewAuditEvent::new("system", action),
        }
        .on(recording.id.clone());
        event.ended(Outcome::Ok, None);
        event.server = Some(recording.server.clone());
        event.bytes = Some(recording.bytes);
        event.detail = Some(serde_json::json!({
            "pty_id": recording.id,
            "recording_user": recording.user,
            "started_at": crate::records::timestamp(recording.started_at),
            "reason": reason,
        }));
        self.journal.audit(event);
        Ok(receipt)
    }

    /// Waits until the index change of `receipt` is written (or dropped,
    /// or waiting for a failing store).
    pub async fn settled(&self, receipt: Receipt) -> Settled {
        self.journal.settled(receipt).await
    }

    /// Creates the file and writes its header: the step that fails on a
    /// full or failing disk.
    fn create(&self, info: &PtyInfo, pty: &PtyRequest) -> std::io::Result<(File, String, u64)> {
        let now = info.started;
        let rel = format!(
            "{:04}/{:02}/{:02}/{}.cast",
            now.year(),
            now.month(),
            now.day(),
            info.pty_id
        );
        let path = self.dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let header = Header {
            version: 2,
            width: pty.cols,
            height: pty.rows,
            timestamp: now.timestamp(),
            command: (!info.command.is_empty()).then_some(info.command.as_str()),
            title: format!("{}@{}", info.user, info.server),
            env: HeaderEnv { term: &pty.term },
        }
        .line();
        let written = file.write_all(header.as_bytes());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok((file, rel, header.len() as u64))
    }

    fn audit(&self, action: &str, info: &PtyInfo, outcome: Outcome, code: u32, detail: serde_json::Value) {
        let mut event = NewAuditEvent::new("system", action)
            .by(Some(&info.user), None)
            .on(info.pty_id.to_string());
        event.ended(outcome, Some(code));
        event.server = Some(info.server.clone());
        event.command = (!info.command.is_empty()).then(|| info.command.clone());
        event.detail = Some(detail);
        self.journal.audit(event);
    }
}

impl RecorderOpener for Recordings {
    fn open(
        &self,
        info: &PtyInfo,
        server: &ServerSpec,
        pty: &PtyRequest,
    ) -> Result<Option<Recorder>, AppError> {
        if !server.record {
            return Ok(None);
        }
        // one reading for the whole decision: a reload meanwhile cannot
        // split it
        let settings = self.settings();
        let (file, rel, written) = match self.create(info, pty) {
            Ok(created) => created,
            Err(e) => {
                let why = format!("cannot write the recording under {}: {e}", self.dir.display());
                let pty_id = info.pty_id.to_string();
                if settings.fail_open {
                    log::warn!(server = info.server.as_str(), user = &*info.user, pty_id = pty_id.as_str(), error = why.as_str(); "recording unavailable: the PTY opens UNRECORDED (PINKPAGE_RECORD_FAIL_OPEN)");
                } else {
                    log::error!(server = info.server.as_str(), user = &*info.user, pty_id = pty_id.as_str(), error = why.as_str(); "recording unavailable: the PTY is refused");
                }
                let outcome = if settings.fail_open {
                    "opened unrecorded"
                } else {
                    "refused"
                };
                let kept = if settings.fail_open {
                    Outcome::Ok
                } else {
                    Outcome::Refused
                };
                self.audit(
                    "recording.unavailable",
                    info,
                    kept,
                    ErrorCode::RecordingUnavailable.code(),
                    serde_json::json!({"pty_id": pty_id, "error": why, "outcome": outcome}),
                );
                return if settings.fail_open {
                    Ok(None)
                } else {
                    Err(AppError::with_detail(ErrorCode::RecordingUnavailable, why))
                };
            }
        };
        let recording = Recording {
            id: info.pty_id.to_string(),
            pty_id: info.pty_id.to_string(),
            kind: info.kind.as_str().to_owned(),
            user: info.user.to_string(),
            server: info.server.clone(),
            command: info.command.clone(),
            terminal_id: info.terminal_id.map(|t| t.to_string()),
            run_id: info.run_id.map(|r| r.to_string()),
            step: info.step.map(|s| s as i64),
            started_at: info.started,
            ended_at: None,
            state: RecordingState::Recording,
            reason: None,
            exit_status: None,
            error: None,
            bytes: written as i64,
            width: i64::from(pty.cols),
            height: i64::from(pty.rows),
            file: rel,
        };
        self.journal
            .record(RecordingWrite::Start(Box::new(recording)))
            .ignore();
        self.open.count.fetch_add(1, Ordering::SeqCst);
        let reports = Arc::new(Reporter {
            info: info.clone(),
            journal: self.journal.clone(),
            broadcast: self.broadcast.clone(),
            open: self.open.clone(),
        });
        let recorder = writer::start(
            file,
            written,
            server.encoding,
            settings.input,
            self.pool.clone(),
            reports,
        );
        Ok(Some(Recorder(Arc::new(recorder))))
    }
}

/// What one recording's writer reports to: the index, the audit trail,
/// the owner's connections, and the count of open writers.
struct Reporter {
    info: PtyInfo,
    journal: Journal,
    broadcast: Option<Addr<BroadcastActor>>,
    open: Arc<OpenWriters>,
}

impl Reporter {
    /// The writer is done; `end` is the receipt of the index's end row:
    /// retention is woken once it is written (its size then counts).
    fn closed(&self, end: Receipt) {
        self.open.count.fetch_sub(1, Ordering::SeqCst);
        self.open.changed.notify_waiters();
        let (journal, open) = (self.journal.clone(), self.open.clone());
        writer::spawn_lasting(async move {
            journal.settled(end).await;
            open.ended.notify_one();
        });
    }
}

impl writer::Reports for Reporter {
    fn failed(&self, error: String, bytes: u64) {
        let pty_id = self.info.pty_id.to_string();
        log::error!(server = self.info.server.as_str(), user = &*self.info.user, pty_id = pty_id.as_str(), error = error.as_str(); "recording failed: the PTY goes on unrecorded");
        let end = self.journal.record(RecordingWrite::End {
            id: pty_id.clone(),
            at: Utc::now(),
            state: RecordingState::Failed,
            reason: "recording failed".to_owned(),
            exit_status: None,
            error: Some(error.clone()),
            bytes: bytes as i64,
        });
        let mut event = NewAuditEvent::new("system", "recording.failed")
            .by(Some(&self.info.user), None)
            .on(pty_id.clone());
        event.ended(Outcome::Failed, Some(ErrorCode::RecordingStopped.code()));
        event.server = Some(self.info.server.clone());
        event.bytes = Some(bytes as i64);
        event.detail = Some(serde_json::json!({"pty_id": pty_id, "error": error}));
        self.journal.audit(event);
        if let Some(broadcast) = &self.broadcast {
            broadcast.do_send(Publish(Event::RecordingStopped {
                user: self.info.user.clone(),
                pty_id: self.info.pty_id,
                error: AppError::with_detail(
                    ErrorCode::RecordingStopped,
                    format!("the recording could not be written ({error}); the PTY goes on unrecorded"),
                ),
            }));
        }
        self.closed(end);
    }

    fn ended(&self, end: RecordingEnd, bytes: u64) {
        let written = self.journal.record(RecordingWrite::End {
            id: self.info.pty_id.to_string(),
            at: Utc::now(),
            state: RecordingState::Ended,
            reason: end.reason,
            exit_status: end.exit_status.map(i64::from),
            error: None,
            bytes: bytes as i64,
        });
        self.closed(written);
    }
}
