//! The store: where the daemon's records are kept, behind one trait per
//! domain. The rest of the daemon talks to these traits only; SQLite
//! ([`sqlite`]) is one implementation, an in-memory one ([`memory`]) serves
//! unit tests, and a second database (PostgreSQL, for several instances)
//! plugs in here without changing a caller.
//!
//! | trait | records | written by |
//! |---|---|---|
//! | [`AuditStore`] | the audit trail | the journal |
//! | [`BatchStore`] | BMX4 runs and results | the journal |
//! | [`WorkflowStore`] | workflow runs and steps | the journal |
//! | [`HealthStore`] | health transitions | the journal |
//! | [`TempFileStore`] | temporary files on servers | the journal |
//! | [`RecordingStore`] | the index of PTY recordings | the journal |
//! | [`AccountStore`] | users, API tokens, sign-in sessions | its callers |
//! | [`BackupStore`] | (a copy of all of the above) | `POST /api/v1/admin/backup` |
//!
//! The audit trail is chained ([`chain`]: every row carries an HMAC over
//! the previous row's and its own fields), the same for every
//! implementation.
//!
//! What every implementation promises (`docs/architecture.md`, "Storage"):
//! - **One transaction per method.** A write method applies its whole
//!   batch or nothing ([`Applied`] says what became of each record); a
//!   read sees one consistent state.
//! - **Order per stream.** The records of one stream are applied in the
//!   order given; nothing is promised across streams (an audit row and a
//!   batch result written at once may land in either order).
//! - **Ids come from the store.** Row ids (audit events, temporary-file
//!   records) are the store's to assign and only grow within a stream;
//!   nobody relies on the order of ids between streams. Runs are named by
//!   their caller's UUID.
//! - **Times come with the records.** A record carries the time its event
//!   happened; the store writes that time, never its own clock (ordering
//!   reads by time or id).
//! - **A failure is the whole store's or one record's.** `Err` means the
//!   store could not take the batch (a full disk, a lock, a lost database:
//!   try again later, nothing was written); [`Applied::Rejected`] means the
//!   store works but refuses this record on its own merits (it names a run
//!   the store does not have), which no retry will change.
//! - **Nothing blocks the caller's thread.** Methods return `Send`
//!   futures; a blocking database runs on threads of its own, and no
//!   transaction is held across an await on the network.
//! - **Reads are filtered in the store.** A list of runs takes the
//!   reader's [`Visible`] and pages over what it allows (a page is never
//!   short because of the filter); a run is on the servers its plan names.
//! - **Retention deletes in bounded steps.** Each `expire`, and the audit
//!   `cut`, deletes at most the `limit` it is given, oldest first, in one
//!   transaction, and never a run that is not over (`crate::retention`
//!   calls them in a loop).
//! - **Live work is an instance's own.** Runs, batch runs, temporary files
//!   and audit rows carry the instance that wrote them
//!   ([`crate::records::instance`]); start-up recovery only touches its own
//!   instance's records.

pub mod chain;
pub mod memory;
pub mod migrations;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use pinkpage_actors::access::Role;
use pinkpage_actors::files::temp_files::RecordedTempFile;
use pinkpage_actors::health::HealthTransition;
use pinkpage_actors::secret::Secret;
use pinkpage_actors::{AppError, ErrorCode};

use crate::accounts::{AccessChanges, Loaded, StartedSession, TokenInfo, User};
use crate::records::batch::ResultsPage;
use crate::records::recording::{Recording, RecordingWrite, RecordingsQuery};
use crate::records::workflow::WorkflowRunsQuery;
use crate::records::{instance, Visible, WorkflowRun};
use crate::records::{
    AuditCut, AuditEvent, AuditQuery, BatchRun, BatchRunDetail, BatchWrite, HealthEvent, NewAuditEvent,
    TempFileWrite, WorkflowRunDetail, WorkflowWrite,
};

/// What became of one record of a written batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Stored; with the id the store gave it, where it gives one.
    Written(Option<i64>),
    /// Refused on its own merits (the store works): no retry will store
    /// it. Says why.
    Rejected(String),
}

/// What one retention call ([`BatchStore::expire`],
/// [`WorkflowStore::expire`]) deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    /// Runs deleted whole (their last child rows went in this call or
    /// before).
    pub runs: u64,
    /// Child rows deleted: a batch run's results, a workflow run's steps.
    pub children: u64,
}

impl Expired {
    /// Every row deleted: nothing when 0.
    pub fn rows(&self) -> u64 {
        self.runs + self.children
    }
}

/// The answer of a write method: what became of each record, in order, or
/// `Err` when the store could not take the batch at all (nothing written).
pub type Writes = Result<Vec<Applied>, AppError>;

/// A store future: `Send`, owning what it needs.
pub type StoreFuture<T> = BoxFuture<'static, Result<T, AppError>>;

/// The audit trail, append-only and chained ([`chain`]): no method
/// changes or removes a row but [`AuditStore::cut`], which removes a whole
/// prefix and records that it did.
pub trait AuditStore: Send + Sync + 'static {
    /// Appends `rows` in order; each gets the next id and its link in the
    /// chain, made inside the append's transaction (so writers in other
    /// processes, the command line, never fork the chain).
    fn append(&self, rows: Vec<NewAuditEvent>) -> BoxFuture<'static, Writes>;
    /// Events newest first (see [`AuditQuery`]).
    fn list(&self, query: AuditQuery) -> StoreFuture<Vec<AuditEvent>>;
    /// At most `limit` events with ids above `after_id`, oldest first (the
    /// export, page by page).
    fn page_after(&self, after_id: i64, limit: u32) -> StoreFuture<Vec<AuditEvent>>;
    /// Retention: removes the oldest rows, every row up to the last one
    /// before the first event at or after `before` but at most `limit` of
    /// them (the rows sealed at genesis together, once all are that old,
    /// however many), and appends an `audit.cut` row with the link the
    /// chain then starts from, in one transaction. `None` when nothing is
    /// that old.
    fn cut(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Option<AuditCut>>;
    /// At start-up, before the daemon serves: the commands, transfers and
    /// scripts `instance`'s last daemon started and never ended get
    /// `<kind>.interrupted` rows, then this daemon's `daemon.start` row, in
    /// one transaction. Returns the `.interrupted` actions written.
    fn interrupt_left_work_and_start(&self, instance: &str) -> StoreFuture<Vec<String>>;
}

/// BMX4 runs and their results.
pub trait BatchStore: Send + Sync + 'static {
    /// Applies `writes` in order (an end only finishes a run still
    /// `running`; a result of an unknown run is rejected).
    fn apply(&self, writes: Vec<BatchWrite>) -> BoxFuture<'static, Writes>;
    /// Runs `visible` allows, newest first: at most `limit` after skipping
    /// `offset` (of those it allows).
    fn list(&self, limit: u32, offset: u32, visible: Visible) -> StoreFuture<Vec<BatchRun>>;
    /// One run with a page of its results; `None` when unknown or not
    /// `visible`.
    fn get(&self, run_id: String, page: ResultsPage, visible: Visible)
        -> StoreFuture<Option<BatchRunDetail>>;
    /// Marks `instance`'s runs still `running` as `interrupted`, at `at`;
    /// how many.
    fn interrupt_left(&self, instance: &str, at: DateTime<Utc>) -> StoreFuture<usize>;
    /// Retention: deletes runs that finished before `before` (never one
    /// still `running`), oldest finished first, with their results; at
    /// most `limit` rows in all (a run's results go first, the run once it
    /// has none left, so a run with many results takes several calls).
    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Expired>;
}

/// Workflow runs and their steps.
pub trait WorkflowStore: Send + Sync + 'static {
    /// Applies `writes` in order (each only moves a run or step forward).
    fn apply(&self, writes: Vec<WorkflowWrite>) -> BoxFuture<'static, Writes>;
    /// Runs the query's `visible` allows, newest first.
    fn list(&self, query: WorkflowRunsQuery) -> StoreFuture<Vec<WorkflowRun>>;
    /// One run with its steps; `None` when unknown or not `visible`.
    fn get(&self, run_id: String, visible: Visible) -> StoreFuture<Option<WorkflowRunDetail>>;
    /// Marks `instance`'s runs left `running` or `paused` as `interrupted`
    /// (their running step too, the steps never reached `skipped`), at
    /// `at`; how many.
    fn interrupt_left(&self, instance: &str, at: DateTime<Utc>) -> StoreFuture<usize>;
    /// Retention: deletes runs that finished before `before` (never one
    /// `running` or `paused`), oldest finished first, with their steps; at
    /// most `limit` rows in all, as [`BatchStore::expire`].
    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Expired>;
}

/// Health transitions.
pub trait HealthStore: Send + Sync + 'static {
    /// Records `transitions` in order, each at the time of its check.
    fn record(&self, transitions: Vec<HealthTransition>) -> BoxFuture<'static, Writes>;
    /// One server's transitions, newest first, `limit` at most.
    fn list(&self, server: String, limit: u32) -> StoreFuture<Vec<HealthEvent>>;
    /// Retention: deletes at most `limit` transitions checked before
    /// `before`, oldest first, but never a server's newest one (its
    /// history always says since when it is in its state); how many.
    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<u64>;
}

/// Records of temporary files on servers.
pub trait TempFileStore: Send + Sync + 'static {
    /// Applies `writes` in order; an insert is written with its id.
    fn apply(&self, writes: Vec<TempFileWrite>) -> BoxFuture<'static, Writes>;
    /// Every record `instance` left: at start-up, before this daemon
    /// writes any, so all of them are an earlier daemon's leftovers.
    fn left(&self, instance: &str) -> StoreFuture<Vec<RecordedTempFile>>;
}

/// The index of PTY recordings (the files are `crate::recordings`').
pub trait RecordingStore: Send + Sync + 'static {
    /// Applies `writes` in order (an end only ends a recording still
    /// `recording`; a second start of an id is rejected).
    fn apply(&self, writes: Vec<RecordingWrite>) -> BoxFuture<'static, Writes>;
    /// The recordings the query asks for and its reader may see, newest
    /// first.
    fn list(&self, query: RecordingsQuery) -> StoreFuture<Vec<Recording>>;
    /// One recording, whoever's (the caller judges access).
    fn get(&self, id: String) -> StoreFuture<Option<Recording>>;
    /// Marks `instance`'s recordings left `recording` as `interrupted`, at
    /// `at`; how many.
    fn interrupt_left(&self, instance: &str, at: DateTime<Utc>) -> StoreFuture<usize>;
    /// What retention removes, oldest first, at most `limit`: finished
    /// recordings started before `before`, then the oldest finished ones
    /// while all together hold more than `max_bytes`.
    fn expired(&self, before: DateTime<Utc>, max_bytes: u64, limit: u32) -> StoreFuture<Vec<Recording>>;
}

/// A change to an account, applied whole with the rule that the daemon
/// never loses its last enabled admin.
#[derive(Debug, Default)]
pub struct UserChange {
    /// A new role.
    pub role: Option<Role>,
    /// New server tags (`Some(None)`: every server).
    pub servers: Option<Option<Vec<String>>>,
    /// A new password hash (PHC string); ends the account's sign-ins.
    pub password_hash: Option<String>,
    /// Disable or enable; disabling ends the account's sign-ins.
    pub disabled: Option<bool>,
}

/// Users, API tokens and sign-in sessions. Every change of a user or a
/// token moves the access revision, and every session started or ended
/// gets the next number of the session log, so a daemon notices changes
/// made by another process (the command line, another instance) and
/// follows sign-ins without reloading everything
/// ([`AccountStore::changes`]).
pub trait AccountStore: Send + Sync + 'static {
    /// What moves when another process changes access, told by the
    /// database itself (PostgreSQL's `NOTIFY`), so the directory reloads at
    /// once instead of at its next look; `None` when the store cannot tell
    /// (SQLite: the refresher's one-second look is all there is).
    fn changed(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
    /// Everything the in-memory directory needs, in one transaction.
    fn load(&self) -> StoreFuture<Loaded>;
    /// What a copy made at access revision `revision` and session log
    /// number `session_seq` needs to catch up: nothing, the sessions
    /// started and ended since, or everything (accounts or tokens changed,
    /// or the log no longer reaches back that far).
    fn changes(&self, revision: i64, session_seq: i64) -> StoreFuture<AccessChanges>;
    /// Every account, by name.
    fn list_users(&self) -> StoreFuture<Vec<User>>;
    /// An account and its password hash, when it has both.
    fn user_with_password(&self, name: String) -> StoreFuture<Option<(User, String)>>;
    /// Creates an account (10001 when the name is taken or not valid).
    fn add_user(
        &self,
        name: String,
        role: Role,
        servers: Option<Vec<String>>,
        password_hash: Option<String>,
    ) -> StoreFuture<User>;
    /// Changes an account (10004 when unknown; 10001 when it would leave
    /// no enabled admin).
    fn change_user(&self, name: String, change: UserChange) -> StoreFuture<User>;
    /// Tokens (of `user` when given), newest first.
    fn list_tokens(&self, user: Option<String>) -> StoreFuture<Vec<TokenInfo>>;
    /// Creates a token; its listing and the whole token (shown once).
    fn create_token(
        &self,
        user: String,
        label: String,
        expires_in: Option<chrono::Duration>,
    ) -> StoreFuture<(TokenInfo, Secret)>;
    /// Revokes a token (10004 when unknown).
    fn revoke_token(&self, id: String) -> StoreFuture<TokenInfo>;
    /// Starts a sign-in session whose cookie has `secret_hash`, and ends
    /// the user's oldest sessions so that at most `per_user` remain.
    fn create_session(
        &self,
        user: String,
        secret_hash: String,
        expires_at: DateTime<Utc>,
        remote_addr: Option<String>,
        per_user: usize,
    ) -> StoreFuture<StartedSession>;
    /// Ends a sign-in session; whether it existed.
    fn delete_session(&self, id: String) -> StoreFuture<bool>;
    /// Writes sessions' last use back, then removes the sessions past
    /// their absolute lifetime at `now` or unused for `idle`, and forgets
    /// session log entries older than a few minutes; how many sessions
    /// were removed.
    fn persist_sessions(
        &self,
        seen: Vec<(String, DateTime<Utc>)>,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> StoreFuture<usize>;
}

/// A consistent copy of every record while the daemon serves.
pub trait BackupStore: Send + Sync + 'static {
    /// Writes a copy of the whole store into the new file `into` (0600;
    /// never over an existing file, no partial file on failure) without
    /// stopping writers; the copy's size in bytes.
    fn backup(&self, into: std::path::PathBuf) -> StoreFuture<u64>;
    /// The file name extension of its copies (`db`: an SQLite file;
    /// `dump`: a `pg_dump` archive), so a copy's name says how to restore
    /// it.
    fn extension(&self) -> &'static str;
}

/// The stores of the records the journal writes, and their reads. Cheap
/// to clone.
#[derive(Clone)]
pub struct Stores {
    /// The audit trail.
    pub audit: Arc<dyn AuditStore>,
    /// BMX4 runs.
    pub batches: Arc<dyn BatchStore>,
    /// Workflow runs.
    pub workflows: Arc<dyn WorkflowStore>,
    /// Health transitions.
    pub health: Arc<dyn HealthStore>,
    /// Temporary files on servers.
    pub temp_files: Arc<dyn TempFileStore>,
    /// The index of PTY recordings.
    pub recordings: Arc<dyn RecordingStore>,
    /// Copies of the whole store.
    pub backup: Arc<dyn BackupStore>,
}

impl Stores {
    /// Every store of one implementation (SQLite, or memory in tests).
    pub fn of<S>(store: Arc<S>) -> Stores
    where
        S: AuditStore
            + BatchStore
            + WorkflowStore
            + HealthStore
            + TempFileStore
            + RecordingStore
            + BackupStore,
    {
        Stores {
            audit: store.clone(),
            batches: store.clone(),
            workflows: store.clone(),
            health: store.clone(),
            temp_files: store.clone(),
            recordings: store.clone(),
            backup: store,
        }
    }

    /// At start-up, before the daemon serves: marks this instance's
    /// workflow and BMX4 runs a stopped daemon left running `interrupted`,
    /// and records its unfinished commands, transfers and scripts and this
    /// daemon's start in the audit trail; how many workflow runs and BMX4
    /// runs were marked. Also at the end of a graceful shutdown (runs only).
    /// Recordings left open are marked `interrupted` too.
    pub async fn interrupt_left_runs(&self) -> Result<(usize, usize), AppError> {
        let at = crate::records::now();
        let workflows = self.workflows.interrupt_left(instance(), at).await?;
        let batches = self.batches.interrupt_left(instance(), at).await?;
        let recordings = self.recordings.interrupt_left(instance(), at).await?;
        if recordings > 0 {
            log::warn!(recordings = recordings; "recordings a stopped daemon left open marked interrupted");
        }
        Ok((workflows, batches))
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database cannot be opened, read or written.
    #[error("{}", .0.detail.clone().unwrap_or_else(|| .0.code.message().to_owned()))]
    Database(AppError),
    /// The audit chain's key is missing, wrong or unusable.
    #[error(transparent)]
    Chain(crate::store::chain::ChainError),
}

impl From<AppError> for OpenError {
    fn from(e: AppError) -> Self {
        OpenError::Database(e)
    }
}

impl From<crate::store::chain::ChainError> for OpenError {
    fn from(e: crate::store::chain::ChainError) -> Self {
        match e {
            crate::store::chain::ChainError::Store(why) => {
                OpenError::Database(AppError::with_detail(ErrorCode::Database, why))
            }
            other => OpenError::Chain(other),
        }
    }
}

/// The 40000 of a store that cannot be reached at all.
pub fn unavailable(why: impl std::fmt::Display) -> AppError {
    AppError::with_detail(ErrorCode::Database, format!("store unavailable: {why}"))
}
