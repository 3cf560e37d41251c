//! The daemon's records: what it writes down about the work it does, as
//! plain types. Each record type is defined here once (or, for what the
//! engine produces, such as a batch command's result, in the engine) and
//! used by every layer: the journal queues it, the store writes and reads
//! it, the API shows it. Nothing here knows SQL or HTTP.
//!
//! - [`audit`]: the audit trail's rows.
//! - [`batch`]: BMX4 runs, their results and their end.
//! - [`workflow`]: workflow runs and their steps.
//! - [`health`]: server health transitions.
//! - [`recording`]: the index of PTY recordings.
//! - [`temp_files`]: changes to the records of temporary files on
//!   servers.
//! - [`visible`]: which runs a reader may see.
//!
//! Accounts, API tokens and sign-in sessions are the `accounts` domain's
//! own records (`crate::accounts`); a temporary file on a server is the
//! engine's (`pinkpage_actors::files::temp_files::TempFile`).
//!
//! Time in a record is the time its event happened, taken when it
//! happened ([`now`]): a record may wait in the journal while the store
//! fails, so the time of writing says nothing.

pub mod audit;
pub mod batch;
pub mod health;
pub mod recording;
pub mod temp_files;
pub mod visible;
pub mod workflow;

use chrono::{DateTime, Utc};

pub use audit::{AuditCut, AuditEvent, AuditQuery, NewAuditEvent, Outcome};
pub use batch::{BatchEnd, BatchRun, BatchRunDetail, BatchRunStatus, BatchWrite, NewBatchRun};
pub use health::HealthEvent;
pub use temp_files::TempFileWrite;
pub use visible::Visible;
pub use workflow::{NewWorkflowRun, WorkflowRun, WorkflowRunDetail, WorkflowStep, WorkflowWrite};

/// The instance id of a daemon that was given none: a single daemon on
/// its own SQLite file.
pub const DEFAULT_INSTANCE: &str = "local";

/// This daemon's instance id, set once at start ([`set_instance`]).
static INSTANCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The instance that writes this daemon's records of live work (runs,
/// batch runs, temporary files, recordings, audit rows):
/// `PINKPAGE_INSTANCE_ID`, one per daemon, [`DEFAULT_INSTANCE`] until set.
/// What a daemon marks interrupted at start-up, or cleans up, is only what
/// its own instance left, so when several instances share one database
/// (PostgreSQL) one never touches another's live work.
pub fn instance() -> &'static str {
    INSTANCE.get().map(String::as_str).unwrap_or(DEFAULT_INSTANCE)
}

/// Sets this process's instance id, once, before any record is written
/// (`Application::build`). A second call with another id is refused: the
/// records already written name the first.
pub fn set_instance(id: &str) -> Result<(), String> {
    let set = INSTANCE.get_or_init(|| id.to_owned());
    if set == id {
        Ok(())
    } else {
        Err(format!("this process is instance {set}, not {id}"))
    }
}

/// The current time, for a record's event.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// The one text form of a time in the store and on the wire: RFC 3339,
/// UTC, milliseconds. One format everywhere also makes the strings sort in
/// time order.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
