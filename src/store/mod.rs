//! The SQLite store: audit trail, health transitions, batch and workflow
//! runs, accounts, and the records of temporary files on servers.
//!
//! Blocking SQLite work never runs on the actix event loop: [`StoreActor`]
//! lives on a `SyncArbiter` (its own OS threads), each thread with its own
//! connection to the same WAL-mode database file. Callers `send` typed
//! messages and await the reply.
//!
//! Who owns what: each `StoreActor` thread owns its `rusqlite::Connection`;
//! nothing else touches it. SQLite serialises writers itself (WAL, with a
//! busy timeout), so several threads are safe and readers never wait for a
//! writer.

mod accounts;
mod audit;
mod batch;
mod health;
mod journal;
pub(crate) mod migrations;
mod temp_files;
mod workflows;

use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::{Actor, Addr, SyncArbiter, SyncContext};
use pinkpage_actors::{AppError, ErrorCode};
use rusqlite::Connection;

pub use accounts::{AuthRevision, LoadDirectory, PersistSessions, WithAccounts};
pub(crate) use audit::insert_audit;
pub use audit::{AuditEvent, ListAudit, NewAuditEvent};
pub use batch::{
    BatchResult, BatchRun, BatchRunDetail, CreateBatchRun, FinishBatchRun, GetBatchRun, ListBatchRuns,
    NewBatchRun, RecordBatchResult,
};
pub use health::{HealthEvent, ListHealthEvents, RecordHealthEvent};
pub use journal::{AuditJournal, JournalHealth};
pub use temp_files::StoreTempFiles;
pub use workflows::{
    GetWorkflowRun, ListWorkflowRuns, NewWorkflowRun, WorkflowRun, WorkflowRunDetail, WorkflowStep,
    WorkflowWrite,
};

/// Threads serving the store; two let a slow write not hold up a read.
const STORE_THREADS: usize = 2;

/// One connection to the database, on its own thread.
pub struct StoreActor {
    /// This thread's connection; never shared.
    conn: Connection,
}

impl Actor for StoreActor {
    type Context = SyncContext<Self>;
}

/// A handle to the store that can be cloned into every handler and actor.
#[derive(Clone)]
pub struct Store {
    addr: Addr<StoreActor>,
    path: PathBuf,
    /// Every audit row goes through it (see `journal.rs`).
    journal: AuditJournal,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, brings its schema
    /// up to date and starts the store threads and the audit journal's
    /// writer (`audit_fail_open`: see [`AuditJournal::start`]). Must run
    /// inside an actix system.
    pub fn open(path: &Path, audit_fail_open: bool) -> Result<Store, AppError> {
        let mut conn = open_connection(path)?;
        // SQLite opens a database it cannot write read-only without a word
        // (a read-only file system with a WAL left behind, for one): find
        // out here, with the operating system's reason, rather than at the
        // first write
        let cannot_write = |e: &dyn std::fmt::Display| {
            AppError::with_detail(
                ErrorCode::Database,
                format!("cannot write {}: {e}{}", path.display(), why_not_writable(path)),
            )
        };
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(db_error)? {
            return Err(cannot_write(&"opened read-only"));
        }
        migrations::migrate(&mut conn).map_err(|e| cannot_write(&e))?;
        drop(conn);
        let owned = path.to_path_buf();
        let addr = SyncArbiter::start(STORE_THREADS, move || StoreActor {
            // The file opened and migrated a moment ago; failing to open it
            // again on a store thread leaves the store unusable, and the
            // daemon must not run without its audit trail.
            conn: open_connection(&owned).expect("reopen the database the daemon just opened"),
        });
        Ok(Store {
            journal: AuditJournal::start(addr.clone(), audit_fail_open),
            addr,
            path: path.to_path_buf(),
        })
    }

    /// Reads accounts, tokens and sessions on a connection of its own
    /// (start-up, before the daemon serves).
    pub fn load_directory_now(&self) -> Result<crate::auth::directory::Loaded, AppError> {
        let mut conn = open_connection(&self.path)?;
        accounts::load_directory(&mut conn)
    }

    /// Marks workflow runs a stopped daemon left `running` or `paused`, and
    /// BMX4 runs it left `running`, as `interrupted`, on a connection of its
    /// own; how many workflow runs (the BMX4 count is logged). At start-up,
    /// after the daemon has its port (a second daemon started by mistake on
    /// the same files fails there first) and before it serves, and again at
    /// the end of a graceful shutdown.
    pub fn interrupt_left_runs_now(&self) -> Result<usize, AppError> {
        let mut conn = open_connection(&self.path)?;
        let batches = batch::interrupt_left_runs(&conn)?;
        if batches > 0 {
            log::warn!(runs = batches; "BMX4 runs left running by the last daemon marked interrupted");
        }
        workflows::interrupt_left_runs(&mut conn)
    }

    /// Records the commands, transfers and scripts a stopped daemon left
    /// unfinished as `<kind>.interrupted` audit rows, and this daemon's
    /// `daemon.start` row, in one transaction on a connection of its own
    /// (see `audit::interrupt_left_work_and_start`). Once, at start-up,
    /// before the daemon serves.
    pub fn record_start_now(&self) -> Result<(), AppError> {
        let mut conn = open_connection(&self.path)?;
        let work = audit::interrupt_left_work_and_start(&mut conn).map_err(db_error)?;
        for action in ["ssh.command", "transfer", "script"] {
            let count = work
                .iter()
                .filter(|a| a.strip_suffix(".interrupted") == Some(action))
                .count();
            if count > 0 {
                log::warn!(kind = action, count = count;
                    "work the last daemon left unfinished recorded as interrupted in the audit trail");
            }
        }
        Ok(())
    }

    /// The temporary-file records a stopped daemon left (every record in
    /// the database: call it before this daemon writes any), read on a
    /// connection of its own at start-up.
    pub fn left_temp_files_now(
        &self,
    ) -> Result<Vec<pinkpage_actors::files::temp_files::RecordedTempFile>, AppError> {
        let conn = open_connection(&self.path)?;
        temp_files::load_left(&conn)
    }

    /// The actor's address, for sending messages.
    pub fn addr(&self) -> &Addr<StoreActor> {
        &self.addr
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `msg` and flattens the mailbox error into a 40000.
    pub async fn call<M, T>(&self, msg: M) -> Result<T, AppError>
    where
        M: actix::Message<Result = Result<T, AppError>> + Send + 'static,
        T: Send + 'static,
        StoreActor: actix::Handler<M>,
    {
        self.addr
            .send(msg)
            .await
            .map_err(|e| AppError::with_detail(ErrorCode::Database, format!("store unavailable: {e}")))?
    }

    /// Records an audit event without waiting: queued in the journal and
    /// written behind, in order, kept while the store fails.
    pub fn audit(&self, event: NewAuditEvent) {
        self.journal.record(event);
    }

    /// The audit journal: whether new remote actions may start, and its
    /// health.
    pub fn journal(&self) -> &AuditJournal {
        &self.journal
    }
}

/// Opens one connection outside the store threads, schema brought up to
/// date: for the command line's user and token commands, which need the
/// database but not a running daemon.
pub fn open_direct(path: &Path) -> Result<Connection, AppError> {
    let mut conn = open_connection(path)?;
    migrations::migrate(&mut conn).map_err(db_error)?;
    Ok(conn)
}

fn open_connection(path: &Path) -> Result<Connection, AppError> {
    let open = || -> rusqlite::Result<Connection> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(conn)
    };
    open().map_err(|e| {
        AppError::with_detail(
            ErrorCode::Database,
            format!("cannot open {}: {e}{}", path.display(), why_not_writable(path)),
        )
    })
}

/// What the operating system says when `path` (or, while it does not
/// exist, a new file beside it) is opened for writing: SQLite's own message
/// ("unable to open database file") does not tell a read-only file system
/// from a missing directory or a permission. Empty when writing works.
fn why_not_writable(path: &Path) -> String {
    let refused = if path.exists() {
        std::fs::OpenOptions::new().write(true).open(path).err()
    } else {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let probe = dir.join(format!(".pinkpage-probe-{}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
        {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
                None
            }
            Err(e) => Some(e),
        }
    };
    refused.map(|e| format!(" ({e})")).unwrap_or_default()
}

/// Maps a rusqlite failure to 40000 with its cause.
pub(crate) fn db_error(e: rusqlite::Error) -> AppError {
    AppError::with_detail(ErrorCode::Database, e.to_string())
}
