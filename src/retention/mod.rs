//! Retention (issue 28): the records of finished work are deleted once
//! older than `PINKPAGE_RETENTION_DAYS`, and whole prefixes of the audit
//! trail once older than `PINKPAGE_AUDIT_RETENTION_DAYS`, so the database
//! never needs a manual `DELETE`.
//!
//! What goes, each stream oldest first:
//! - finished BMX4 runs with their results, and finished workflow runs
//!   with their steps, by when they finished (a run still `running` or
//!   `paused` never goes);
//! - health transitions, by the time of their check, except each server's
//!   newest;
//! - audit rows, a prefix of the chain at a time, each cut recorded in the
//!   chain itself (`audit.cut`, `AuditStore::cut`). SSH sessions, commands
//!   and finished transfers are recorded only as audit rows, so the cut is
//!   their retention too. Recordings have their own sweep
//!   (`crate::recordings::retention`); sign-in sessions end by themselves
//!   (`AccountStore::persist_sessions`); temporary-file records live only
//!   as long as their files.
//!
//! A sweep runs when the daemon starts and every
//! `PINKPAGE_RETENTION_INTERVAL_S` after. It deletes at most [`BATCH`]
//! rows per store call (one transaction each; [`AUDIT_BATCH`] for the
//! audit trail) and after each call waits as long as the call took, so it
//! holds the database's write lock at most about half the time and the
//! journal's writes (a terminal's audit rows, BMX4 results) get their
//! turns. The SQL runs on the store's own threads; this task only awaits
//! it, so the event loop (terminals' output) never waits for a sweep.
//! A sweep that removed anything logs one line with its counts and writes
//! one `retention.sweep` audit row.
//!
//! Who owns what: the sweep task owns its counts and nothing else; the
//! limits are read through a getter at each sweep, so a reload changes
//! them for the next one. What it deletes no writer touches any more: a
//! finished run is never written again (each write only moves a run
//! forward, and a late write to a run that is gone changes nothing), and
//! the audit cut takes the write lock the appends take. One sweep runs at
//! a time per daemon; two daemons on one database would each delete whole
//! transactions' worth, never the same row twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pinkpage_actors::AppError;
use serde::Serialize;
use tokio::time::Instant;

use crate::journal::Journal;
use crate::records::{timestamp, NewAuditEvent, Outcome};
use crate::settings::retention::RetentionSettings;
use crate::store::{Expired, Stores};

/// Most rows one store call deletes: small enough that a transaction
/// holds the write lock for milliseconds.
pub const BATCH: u32 = 500;

/// Most audit rows one cut removes. Larger than [`BATCH`] because each cut
/// leaves an `audit.cut` row behind: an hour of a busy daemon's trail
/// should take one cut, not dozens.
pub const AUDIT_BATCH: u32 = 5_000;

/// The longest pause between two store calls of a sweep.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Where the sweep reads its limits, at each sweep (the live settings, so
/// a reload changes them).
pub type SettingsSource = Arc<dyn Fn() -> RetentionSettings + Send + Sync>;

/// What one sweep deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// BMX4 runs, whole.
    pub batch_runs: u64,
    /// Their results.
    pub batch_results: u64,
    /// Workflow runs, whole.
    pub workflow_runs: u64,
    /// Their steps.
    pub workflow_steps: u64,
    /// Health transitions.
    pub health_events: u64,
    /// Audit rows cut.
    pub audit_rows: u64,
    /// Cuts made (each wrote an `audit.cut` row).
    pub audit_cuts: u64,
}

impl Swept {
    /// Whether anything was deleted.
    pub fn is_empty(&self) -> bool {
        *self == Swept::default()
    }
}

/// A sweep's end: what it deleted, and the failure that stopped it early
/// (the next sweep goes on from there).
#[derive(Debug)]
pub struct Sweep {
    /// What was deleted, also when it failed part way.
    pub swept: Swept,
    /// Why it stopped early.
    pub error: Option<AppError>,
}

/// One sweep with `settings`, its limits counted back from `now`.
pub async fn sweep(stores: &Stores, settings: &RetentionSettings, now: DateTime<Utc>) -> Sweep {
    let mut swept = Swept::default();
    let error = sweep_into(stores, settings, now, &mut swept).await.err();
    Sweep { swept, error }
}

async fn sweep_into(
    stores: &Stores,
    settings: &RetentionSettings,
    now: DateTime<Utc>,
    swept: &mut Swept,
) -> Result<(), AppError> {
    if let Some(before) = settings.records_before(now) {
        loop {
            let Expired { runs, children } = paced(stores.batches.expire(before, BATCH)).await?;
            (swept.batch_runs, swept.batch_results) =
                (swept.batch_runs + runs, swept.batch_results + children);
            if runs + children == 0 {
                break;
            }
        }
        loop {
            let Expired { runs, children } = paced(stores.workflows.expire(before, BATCH)).await?;
            (swept.workflow_runs, swept.workflow_steps) =
                (swept.workflow_runs + runs, swept.workflow_steps + children);
            if runs + children == 0 {
                break;
            }
        }
        loop {
            let n = paced(stores.health.expire(before, BATCH)).await?;
            swept.health_events += n;
            if n == 0 {
                break;
            }
        }
    }
    if let Some(before) = settings.audit_before(now) {
        while let Some(cut) = paced(stores.audit.cut(before, AUDIT_BATCH)).await? {
            swept.audit_rows += cut.rows;
            swept.audit_cuts += 1;
        }
    }
    Ok(())
}

/// Awaits one store call, then waits as long as it took (at most
/// [`MAX_PAUSE`]) before the sweep makes the next: other writers get the
/// write lock in between.
async fn paced<T>(call: impl std::future::Future<Output = Result<T, AppError>>) -> Result<T, AppError> {
    let started = Instant::now();
    let answer = call.await?;
    tokio::time::sleep(started.elapsed().min(MAX_PAUSE)).await;
    Ok(answer)
}

/// The audit row of a sweep that deleted something (or failed): its
/// counts, its limits, and when it started (the row's time is its end).
fn audit_row(sweep: &Sweep, settings: &RetentionSettings, started: DateTime<Utc>) -> NewAuditEvent {
    let mut event = NewAuditEvent::new("system", "retention.sweep");
    match &sweep.error {
        None => event.ended(Outcome::Ok, None),
        Some(e) => event.ended(Outcome::Failed, Some(e.code.code())),
    }
    let mut detail = serde_json::to_value(sweep.swept).unwrap_or_default();
    detail["started_at"] = timestamp(started).into();
    detail["records_before"] = settings.records_before(started).map(timestamp).into();
    detail["audit_before"] = settings.audit_before(started).map(timestamp).into();
    event.detail = Some(detail);
    event
}

/// Sweeps now and then every interval the settings say, for the daemon's
/// life; reads `settings` afresh before each sweep.
pub async fn run(stores: Stores, journal: Journal, settings: SettingsSource) {
    loop {
        let limits = settings();
        let started = Utc::now();
        let sweep = sweep(&stores, &limits, started).await;
        let s = sweep.swept;
        if !s.is_empty() {
            log::info!(
                batch_runs = s.batch_runs, batch_results = s.batch_results,
                workflow_runs = s.workflow_runs, workflow_steps = s.workflow_steps,
                health_events = s.health_events, audit_rows = s.audit_rows;
                "retention swept"
            );
        }
        if let Some(e) = &sweep.error {
            log::error!(code = e.code.code(), error = e.to_string(); "retention sweep failed; the next goes on");
        }
        if !s.is_empty() || sweep.error.is_some() {
            journal.audit(audit_row(&sweep, &limits, started));
        }
        tokio::time::sleep(limits.interval).await;
    }
}

/// Starts [`run`] on the current actix runtime.
pub fn spawn(stores: Stores, journal: Journal, settings: SettingsSource) {
    actix::spawn(run(stores, journal, settings));
}

#[cfg(test)]
mod tests;
