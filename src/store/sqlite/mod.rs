//! The SQLite implementation of the store (`super`): one file, WAL mode,
//! the SQL of each domain in its own file here.
//!
//! Blocking SQLite work never runs on the actix event loop: [`SqliteStore`]
//! hands each call, as one closure, to a `SyncArbiter` of its own threads,
//! each with its own connection to the same database file, and the caller
//! awaits the answer. Each trait method is one closure and one transaction.
//!
//! Who owns what: each store thread owns its `rusqlite::Connection`;
//! nothing else touches it. SQLite serialises writers itself (WAL, with a
//! busy timeout), so several threads are safe and readers never wait for a
//! writer.
//!
//! - [`migrations`]: the versioned schema.
//! - [`audit`], `batch`, `workflows`, `health`, `temp_files`, `recordings`: the journal's
//!   streams and their reads.
//! - `retention`: deleting the oldest finished runs and health
//!   transitions, a bounded number of rows per transaction.
//! - [`audit_chain`]: the audit chain's SQL (sealing, linking, cutting,
//!   verifying).
//! - [`accounts`]: users, tokens and sessions (also called directly by the
//!   command line, on a connection of its own).

pub mod accounts;
pub mod audit;
pub mod audit_chain;
pub mod backup;
mod batch;
mod health;
pub mod migrations;
mod recordings;
mod retention;
mod temp_files;
mod tx;
mod workflows;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Handler, Message, MessageResult, SyncArbiter, SyncContext};
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use pinkpage_actors::access::Role;
use pinkpage_actors::files::temp_files::RecordedTempFile;
use pinkpage_actors::health::HealthTransition;
use pinkpage_actors::secret::Secret;
use pinkpage_actors::{AppError, ErrorCode};
use rusqlite::Connection;

pub(crate) use self::tx::db_error;

use super::{
    unavailable, AccountStore, AuditStore, BackupStore, BatchStore, Expired, HealthStore, RecordingStore,
    StoreFuture, TempFileStore, UserChange, WorkflowStore, Writes,
};
use crate::accounts::{AccessChanges, AccountError, Loaded, StartedSession, TokenInfo, User};
use crate::records::batch::ResultsPage;
use crate::records::recording::{Recording, RecordingWrite, RecordingsQuery};
use crate::records::workflow::WorkflowRunsQuery;
use crate::records::{
    AuditCut, AuditEvent, AuditQuery, BatchRun, BatchRunDetail, BatchWrite, HealthEvent, NewAuditEvent,
    TempFileWrite, Visible, WorkflowRun, WorkflowRunDetail, WorkflowWrite,
};
use crate::store::chain::{Chain, KeyFile};
pub use crate::store::OpenError;

/// Threads serving the store; two let a slow write not hold up a read.
const STORE_THREADS: usize = 2;

/// One store thread and its connection.
struct StoreThread {
    /// This thread's connection; never shared.
    conn: Connection,
}

impl Actor for StoreThread {
    type Context = SyncContext<Self>;
}

/// Some work on a store thread's connection.
struct Job<R>(Box<dyn FnOnce(&mut Connection) -> R + Send>);

impl<R: 'static> Message for Job<R> {
    type Result = R;
}

impl<R: Send + 'static> Handler<Job<R>> for StoreThread {
    type Result = MessageResult<Job<R>>;

    fn handle(&mut self, Job(work): Job<R>, _: &mut SyncContext<Self>) -> Self::Result {
        MessageResult(work(&mut self.conn))
    }
}

/// The SQLite store. See the module docs.
pub struct SqliteStore {
    threads: Addr<StoreThread>,
    path: PathBuf,
    /// The audit chain's key and start, for the threads' appends.
    chain: Arc<Chain>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, brings its
    /// schema up to date, opens its audit chain with the key in
    /// `key_file` (sealing the rows from before the chain at its first
    /// start) and starts the store threads. Must run inside an actix
    /// system.
    pub fn open(path: &Path, key_file: &KeyFile) -> Result<Arc<SqliteStore>, OpenError> {
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
            return Err(cannot_write(&"opened read-only").into());
        }
        migrations::migrate(&mut conn).map_err(|e| cannot_write(&e))?;
        let chain = Arc::new(audit_chain::open_chain(&mut conn, key_file)?);
        drop(conn);
        let owned = path.to_path_buf();
        let threads = SyncArbiter::start(STORE_THREADS, move || StoreThread {
            // The file opened and migrated a moment ago; failing to open it
            // again on a store thread leaves the store unusable, and the
            // daemon must not run without its audit trail.
            conn: open_connection(&owned).expect("reopen the database the daemon just opened"),
        });
        Ok(Arc::new(SqliteStore {
            threads,
            path: path.to_path_buf(),
            chain,
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on a store thread.
    fn run<R, F>(&self, work: F) -> StoreFuture<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, AppError> + Send + 'static,
    {
        let asked = self.threads.send(Job(Box::new(work)));
        Box::pin(async move { asked.await.map_err(unavailable)? })
    }

    /// [`run`](Self::run) for a write of the journal.
    fn write<F>(&self, work: F) -> BoxFuture<'static, Writes>
    where
        F: FnOnce(&mut Connection) -> Writes + Send + 'static,
    {
        self.run(work)
    }
}

impl AuditStore for SqliteStore {
    fn append(&self, rows: Vec<NewAuditEvent>) -> BoxFuture<'static, Writes> {
        let chain = self.chain.clone();
        self.write(move |c| audit::append(c, &chain, &rows))
    }

    fn list(&self, query: AuditQuery) -> StoreFuture<Vec<AuditEvent>> {
        self.run(move |c| audit::list(c, &query).map_err(db_error))
    }

    fn page_after(&self, after_id: i64, limit: u32) -> StoreFuture<Vec<AuditEvent>> {
        self.run(move |c| audit::page_after(c, after_id, limit).map_err(db_error))
    }

    fn cut(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Option<AuditCut>> {
        let chain = self.chain.clone();
        self.run(move |c| audit_chain::cut(c, &chain, before, limit))
    }

    fn interrupt_left_work_and_start(&self, instance: &str) -> StoreFuture<Vec<String>> {
        let instance = instance.to_owned();
        let chain = self.chain.clone();
        self.run(move |c| audit::interrupt_left_work_and_start(c, &chain, &instance).map_err(db_error))
    }
}

impl BatchStore for SqliteStore {
    fn apply(&self, writes: Vec<BatchWrite>) -> BoxFuture<'static, Writes> {
        self.write(move |c| batch::apply(c, &writes))
    }

    fn list(&self, limit: u32, offset: u32, visible: Visible) -> StoreFuture<Vec<BatchRun>> {
        self.run(move |c| batch::list(c, limit, offset, &visible).map_err(db_error))
    }

    fn get(
        &self,
        run_id: String,
        page: ResultsPage,
        visible: Visible,
    ) -> StoreFuture<Option<BatchRunDetail>> {
        self.run(move |c| batch::get(c, &run_id, page, &visible).map_err(db_error))
    }

    fn interrupt_left(&self, instance: &str, at: DateTime<Utc>) -> StoreFuture<usize> {
        let instance = instance.to_owned();
        self.run(move |c| batch::interrupt_left(c, &instance, at).map_err(db_error))
    }

    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Expired> {
        self.run(move |c| {
            retention::expire_runs(c, &crate::store::migrations::BATCH_RUNS, before, limit).map_err(db_error)
        })
    }
}

impl WorkflowStore for SqliteStore {
    fn apply(&self, writes: Vec<WorkflowWrite>) -> BoxFuture<'static, Writes> {
        self.write(move |c| workflows::apply(c, &writes))
    }

    fn list(&self, query: WorkflowRunsQuery) -> StoreFuture<Vec<WorkflowRun>> {
        self.run(move |c| workflows::list(c, &query).map_err(db_error))
    }

    fn get(&self, run_id: String, visible: Visible) -> StoreFuture<Option<WorkflowRunDetail>> {
        self.run(move |c| workflows::get(c, &run_id, &visible).map_err(db_error))
    }

    fn interrupt_left(&self, instance: &str, at: DateTime<Utc>) -> StoreFuture<usize> {
        let instance = instance.to_owned();
        self.run(move |c| workflows::interrupt_left(c, &instance, at).map_err(db_error))
    }

    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Expired> {
        self.run(move |c| {
            retention::expire_runs(c, &crate::store::migrations::WORKFLOW_RUNS, before, limit)
                .map_err(db_error)
        })
    }
}

impl HealthStore for SqliteStore {
    fn record(&self, transitions: Vec<HealthTransition>) -> BoxFuture<'static, Writes> {
        self.write(move |c| health::record(c, &transitions))
    }

    fn list(&self, server: String, limit: u32) -> StoreFuture<Vec<HealthEvent>> {
        self.run(move |c| health::list(c, &server, limit).map_err(db_error))
    }

    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<u64> {
        self.run(move |c| retention::expire_health(c, before, limit).map_err(db_error))
    }
}

impl TempFileStore for SqliteStore {
    fn apply(&self, writes: Vec<TempFileWrite>) -> BoxFuture<'static, Writes> {
        self.write(move |c| temp_files::apply(c, &writes))
    }

    fn left(&self, instance: &str) -> StoreFuture<Vec<RecordedTempFile>> {
        let instance = instance.to_owned();
        self.run(move |c| temp_files::left(c, &instance).map_err(db_error))
    }
}

impl RecordingStore for SqliteStore {
    fn apply(&self, writes: Vec<RecordingWrite>) -> BoxFuture<'static, Writes> {
        self.write(move |c| recordings::apply(c, &writes))
    }

    fn list(&self, query: RecordingsQuery) -> StoreFuture<Vec<Recording>> {
        self.run(move |c| recordings::list(c, &query).map_err(db_error))
    }

    fn get(&self, id: String) -> StoreFuture<Option<Recording>> {
        self.run(move |c| recordings::get(c, &id).map_err(db_error))
    }

    fn interrupt_left(&self, instance: &str, at: DateTime<Utc>) -> StoreFuture<usize> {
        let instance = instance.to_owned();
        self.run(move |c| recordings::interrupt_left(c, &instance, at).map_err(db_error))
    }

    fn expired(&self, before: DateTime<Utc>, max_bytes: u64, limit: u32) -> StoreFuture<Vec<Recording>> {
        self.run(move |c| recordings::expired(c, before, max_bytes, limit).map_err(db_error))
    }
}

impl AccountStore for SqliteStore {
    fn load(&self) -> StoreFuture<Loaded> {
        self.run(|c| accounts::load(c).map_err(AppError::from))
    }

    fn changes(&self, revision: i64, session_seq: i64) -> StoreFuture<AccessChanges> {
        self.run(move |c| Ok(accounts::changes(c, revision, session_seq)?))
    }

    fn list_users(&self) -> StoreFuture<Vec<User>> {
        self.run(|c| Ok(accounts::list_users(c)?))
    }

    fn user_with_password(&self, name: String) -> StoreFuture<Option<(User, String)>> {
        self.run(move |c| {
            let user = accounts::get_user(c, &name)?;
            let hash = accounts::password_hash_of(c, &name)?;
            Ok(user.zip(hash))
        })
    }

    fn add_user(
        &self,
        name: String,
        role: Role,
        servers: Option<Vec<String>>,
        password_hash: Option<String>,
    ) -> StoreFuture<User> {
        self.run(move |c| Ok(accounts::add_user(c, &name, role, servers, password_hash)?))
    }

    fn change_user(&self, name: String, change: UserChange) -> StoreFuture<User> {
        self.run(move |c| accounts::change_user(c, &name, change))
    }

    fn list_tokens(&self, user: Option<String>) -> StoreFuture<Vec<TokenInfo>> {
        self.run(move |c| Ok(accounts::list_tokens(c, user.as_deref())?))
    }

    fn create_token(
        &self,
        user: String,
        label: String,
        expires_in: Option<chrono::Duration>,
    ) -> StoreFuture<(TokenInfo, Secret)> {
        self.run(move |c| Ok(accounts::create_token(c, &user, &label, expires_in)?))
    }

    fn revoke_token(&self, id: String) -> StoreFuture<TokenInfo> {
        self.run(move |c| Ok(accounts::revoke_token(c, &id)?))
    }

    fn create_session(
        &self,
        user: String,
        secret_hash: String,
        expires_at: DateTime<Utc>,
        remote_addr: Option<String>,
        per_user: usize,
    ) -> StoreFuture<StartedSession> {
        self.run(move |c| {
            Ok(accounts::create_session(
                c,
                &user,
                &secret_hash,
                expires_at,
                remote_addr.as_deref(),
                per_user,
            )?)
        })
    }

    fn delete_session(&self, id: String) -> StoreFuture<bool> {
        self.run(move |c| Ok(accounts::delete_session(c, &id)?))
    }

    fn persist_sessions(
        &self,
        seen: Vec<(String, DateTime<Utc>)>,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> StoreFuture<usize> {
        self.run(move |c| {
            let tx = c.transaction().map_err(db_error)?;
            for (id, at) in &seen {
                match accounts::touch_session(&tx, id, *at) {
                    // a session ended meanwhile: nothing to keep
                    Ok(()) | Err(AccountError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let removed = accounts::delete_ended_sessions(&tx, now, idle)?;
            accounts::prune_session_log(&tx, now - accounts::SESSION_LOG_KEPT)?;
            tx.commit().map_err(db_error)?;
            Ok(removed)
        })
    }
}

/// Opens one connection outside the store threads, schema brought up to
/// date, with the audit chain (its key from `key_file`, as the daemon
/// opens it): for the command line's user and token commands, which need
/// the database but not a running daemon, and write linked audit rows.
pub fn open_direct(path: &Path, key_file: &KeyFile) -> Result<(Connection, Chain), OpenError> {
    let mut conn = open_connection(path)?;
    migrations::migrate(&mut conn).map_err(db_error)?;
    let chain = audit_chain::open_chain(&mut conn, key_file)?;
    Ok((conn, chain))
}

/// The database, its WAL and its shared-memory file, owner-only (0600)
/// whatever the process umask: they hold password hashes, command text and
/// output. A missing database is created so before SQLite opens it (SQLite
/// gives the WAL and shared-memory files it creates the database's mode);
/// an existing one readable by others is tightened, and the log says so.
fn owner_only(path: &Path) -> Result<(), AppError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |e: std::io::Error| {
        AppError::with_detail(
            ErrorCode::Database,
            format!("cannot make {} owner-only: {e}", path.display()),
        )
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        // not ours to create here (a read-only disk, a missing directory):
        // opening it says why, with the operating system's reason
        Err(_) => return Ok(()),
    }
    let mut name = path.as_os_str().to_owned();
    let base = name.clone();
    for suffix in ["", "-wal", "-shm"] {
        name.clone_from(&base);
        name.push(suffix);
        let file = Path::new(&name);
        let Ok(meta) = std::fs::metadata(file) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
            log::warn!(path = file.display().to_string().as_str(); "database file was readable by others; made owner-only (0600)");
        }
    }
    Ok(())
}

fn open_connection(path: &Path) -> Result<Connection, AppError> {
    owner_only(path)?;
    let open = || -> rusqlite::Result<Connection> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // Every transaction takes the write lock at BEGIN: a deferred one
        // that reads, then writes (an account change reads the user
        // first) fails at once with SQLITE_BUSY when another connection
        // wrote in between (WAL snapshots cannot be upgraded; the busy
        // timeout does not apply), which a PATCH beside the journal's
        // audit writes met as a 500. Waiting at BEGIN is what the busy
        // timeout is for.
        conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
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

impl BackupStore for SqliteStore {
    fn extension(&self) -> &'static str {
        "db"
    }

    fn backup(&self, into: PathBuf) -> StoreFuture<u64> {
        let db = self.path.clone();
        Box::pin(async move {
            // a thread of its own, not a store thread: a large copy holds
            // neither the store's two threads nor the event loop
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("pinkpage-backup".into())
                .spawn(move || {
                    let _ = tx.send(backup::backup_into(&db, &into));
                })
                .map_err(|e| unavailable(format!("cannot start the backup thread: {e}")))?;
            rx.await
                .map_err(|_| unavailable("the backup thread ended without an answer"))?
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_database_is_created_owner_only_and_one_others_could_read_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.db");
        owner_only(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o600);

        let old = dir.path().join("old.db");
        let wal = dir.path().join("old.db-wal");
        for file in [&old, &wal] {
            std::fs::write(file, b"").unwrap();
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        owner_only(&old).unwrap();
        assert_eq!((mode(&old), mode(&wal)), (0o600, 0o600));
    }

    /// A transaction that reads, then writes, while another connection
    /// writes in between: it must wait at BEGIN (the busy timeout), not
    /// fail at its first write (a deferred transaction in WAL mode cannot
    /// upgrade a snapshot another writer moved past).
    #[test]
    fn a_read_then_write_transaction_waits_for_a_writer_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut a = open_connection(&path).unwrap();
        a.execute_batch("CREATE TABLE t(x INTEGER)").unwrap();
        let tx = a.transaction().unwrap();
        let n: i64 = tx.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
        // another connection writes meanwhile
        let other = path.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            let b = open_connection(&other).unwrap();
            let r = b.execute("INSERT INTO t VALUES (1)", []).map(|_| ());
            let _ = done_tx.send(());
            r
        });
        // with deferred transactions the writer finishes at once; with
        // immediate ones it waits for `tx`
        let _ = done_rx.recv_timeout(Duration::from_millis(300));
        tx.execute("INSERT INTO t VALUES (2)", [])
            .expect("the read-then-write transaction writes");
        tx.commit().unwrap();
        writer.join().unwrap().expect("the other writer wrote after it");
        let n: i64 = a.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2);
    }
}
