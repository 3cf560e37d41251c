//! Retention: recordings older than `PINKPAGE_RECORDINGS_MAX_AGE_DAYS`
//! are removed, then the oldest finished ones while all of them hold more
//! than `PINKPAGE_RECORDINGS_MAX_BYTES`; each removal is audited
//! (`recording.expire`, with its id, user, server and size). A sweep runs
//! when the daemon starts, every [`EVERY`] after, and whenever a recording
//! ends (which may put the total over its bound); it removes at most
//! [`BATCH`] recordings per store read, and never one still being written.
//! It runs on the daemon's own task and touches files only through
//! [`Recordings::remove`], on a blocking thread.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pinkpage_actors::AppError;

use super::Recordings;
use crate::store::RecordingStore;

/// How often a sweep runs.
pub const EVERY: Duration = Duration::from_secs(600);

/// Recordings one store read hands the sweep.
const BATCH: u32 = 200;

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Recordings removed.
    pub removed: usize,
    /// Their bytes.
    pub bytes: i64,
}

/// One sweep at `now`.
pub async fn sweep(
    recordings: &Recordings,
    store: &Arc<dyn RecordingStore>,
    now: DateTime<Utc>,
) -> Result<Swept, AppError> {
    let settings = recordings.settings();
    let before = match settings.max_age_days {
        0 => DateTime::<Utc>::MIN_UTC,
        days => now - chrono::Duration::days(i64::from(days)),
    };
    let max_bytes = match settings.max_bytes {
        0 => u64::MAX,
        n => n,
    };
    let mut swept = Swept::default();
    loop {
        let expired = store.expired(before, max_bytes, BATCH).await?;
        if expired.is_empty() {
            return Ok(swept);
        }
        let n = expired.len();
        let mut last = None;
        for recording in expired {
            let reason = if recording.started_at < before {
                "max_age"
            } else {
                "max_bytes"
            };
            swept.bytes += recording.bytes;
            last = Some(
                recordings
                    .remove(&recording, None, "recording.expire", reason)
                    .await?,
            );
            swept.removed += 1;
        }
        // the index's removals go through the journal, in order: once the
        // last is written, the store no longer lists any of them
        if let Some(receipt) = last {
            if recordings.settled(receipt).await != crate::journal::Settled::Written(None) {
                return Ok(swept); // the store fails: the next sweep goes on
            }
        }
        if n < BATCH as usize {
            return Ok(swept);
        }
    }
}

/// Sweeps now and every [`EVERY`] after, for the daemon's life.
pub fn spawn(recordings: Arc<Recordings>, store: Arc<dyn RecordingStore>) {
    actix::spawn(async move {
        let mut every = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = recordings.one_ended() => {}
            }
            match sweep(&recordings, &store, Utc::now()).await {
                Ok(Swept { removed: 0, .. }) => {}
                Ok(s) => log::info!(removed = s.removed, bytes = s.bytes; "recordings retention swept"),
                Err(e) => {
                    log::error!(code = e.code.code(), error = e.to_string(); "recordings retention failed")
                }
            }
        }
    });
}
