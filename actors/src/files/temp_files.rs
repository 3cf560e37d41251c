//! Crash recovery of the temporary files Pink-Page creates on servers
//! (WAVE2, "Crash recovery of temp files").
//!
//! Before an upload, a transfer or a script creates its temporary file (an
//! upload's or a copy's `.<name>.pinkpage-<hex>.part`, a script's
//! `/tmp/.pinkpage-script-<uuid>`), the file's server and full path are
//! recorded in the store ([`ServerTempFiles::record`]). The record goes once
//! the file was renamed into place or removed ([`TempRecord::done`]).
//!
//! A record whose file may still be there is a *leftover*: every record the
//! last daemon left (it was killed before it could clean), and every record
//! of this daemon dropped without `done` (its removal failed, typically
//! because the server went away mid-write). The next SSH connection to that
//! account on that machine removes exactly the files its leftovers name,
//! before the connection is used ([`TempFiles::recover`]), and each removal
//! is audited by the store. Nothing else is touched: a recorded path that is
//! not a Pink-Page temporary name, or no longer a regular file, is left
//! alone and its record dropped.
//!
//! Who owns what: the store owns the records (behind [`TempFileStore`]);
//! `Shared::left` holds the leftovers not yet cleaned, keyed by
//! [`Machine`], filled at start-up and by dropped records. A connection
//! takes its machine's whole list out under the mutex before it cleans, so
//! two connections at once never clean the same file; what it could not
//! clean it puts back for the next one. The mutex is never held across an
//! await.
//!
//! A store that fails does not stop the work (WAVE2: work already running
//! goes on): the file is then created unrecorded, which is logged with
//! 40000 and its path, and this daemon still cleans it if the write fails.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use russh_sftp::client::error::Error as SftpLibError;
use russh_sftp::protocol::StatusCode;

use crate::error::AppError;
use crate::server::ServerSpec;
use crate::ssh::{ConnectHook, SshSession};

/// How long a record may take to be stored before the file is created
/// without one (a hung store must not hold every copy up).
const RECORD_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one step of a recovery (opening SFTP, one file) may take; past
/// it the connection is used as it is and the rest waits for the next one.
const RECOVERY_STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection spends on recovery at most, however many
/// leftovers its server has; the rest waits for the next connection.
const RECOVERY_BUDGET: Duration = Duration::from_secs(10);
/// Connections that may fail to remove one leftover (the server refused:
/// a permission, an immutable file) before it is given up: its record is
/// dropped, with an audit row naming the path for the operator.
const MAX_ATTEMPTS: u32 = 3;

/// An account on a machine: whose files a connection can see and remove.
/// Two configured servers for one account share their leftovers; a server
/// whose address changed since the record was made does not inherit them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Machine {
    pub username: String,
    pub host: String,
    pub port: u16,
}

impl Machine {
    /// The account `server` connects to.
    pub fn of(server: &ServerSpec) -> Machine {
        Machine {
            username: server.username.clone(),
            host: server.host.to_ascii_lowercase(),
            port: server.port,
        }
    }
}

/// What a temporary file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempKind {
    /// A BMX5 upload (REST or inline), renamed over its target.
    Upload,
    /// A file of a server-to-server transfer, renamed over its target.
    Transfer,
    /// A BMX5 script, removed after it ran.
    Script,
}

impl TempKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TempKind::Upload => "upload",
            TempKind::Transfer => "transfer",
            TempKind::Script => "script",
        }
    }

    pub fn parse(s: &str) -> Option<TempKind> {
        [TempKind::Upload, TempKind::Transfer, TempKind::Script]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A temporary file on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempFile {
    /// The configured server name (for the audit row and logs).
    pub server: String,
    pub machine: Machine,
    /// Its full path on the server.
    pub path: String,
    pub kind: TempKind,
}

/// A temporary file and its record, when it has one (`None`: the store
/// could not take it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedTempFile {
    pub id: Option<i64>,
    pub file: TempFile,
    /// Connections that tried to remove it and were refused, in this
    /// daemon's life.
    pub attempts: u32,
}

/// How a leftover ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// The file was there and was removed.
    Removed,
    /// Nothing was there any more.
    AlreadyGone,
    /// Something else was there (a directory, a symlink) or the path is not
    /// a Pink-Page temporary name: left alone.
    LeftAlone,
    /// The server refused to remove it [`MAX_ATTEMPTS`] times: given up,
    /// left for the operator.
    GaveUp,
}

/// Where the records live: the daemon's store. Calls must not block the
/// caller's thread (the store runs on its own).
pub trait TempFileStore: Send + Sync + 'static {
    /// Whether records can be written now; while not (the store is known
    /// to fail), files are made unrecorded at once instead of each waiting
    /// for a write that fails.
    fn accepting(&self) -> bool;
    /// Stores a record before its file is created; its id.
    fn insert(&self, file: &TempFile) -> BoxFuture<'static, Result<i64, AppError>>;
    /// Drops a record whose file was renamed into place or removed.
    fn delete(&self, id: i64) -> BoxFuture<'static, Result<(), AppError>>;
    /// Drops a leftover's record after a connection dealt with it, and
    /// audits a removal or a leftover given up. Runs detached: the audit
    /// row is queued before this returns.
    fn recovered(
        &self,
        file: &RecordedTempFile,
        outcome: Recovered,
    ) -> BoxFuture<'static, Result<(), AppError>>;
}

/// The daemon's temporary-file records, shared by every connection (in
/// [`SshOptions`](crate::ssh::SshOptions)). The default records nothing and
/// recovers nothing (unit tests, tools without a store).
#[derive(Clone, Default)]
pub struct TempFiles(Option<Arc<Shared>>);

struct Shared {
    store: Arc<dyn TempFileStore>,
    /// Leftovers not yet cleaned, per machine account. See the module docs.
    left: Mutex<HashMap<Machine, Vec<RecordedTempFile>>>,
}

impl fmt::Debug for TempFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempFiles")
            .field("enabled", &self.0.is_some())
            .field("leftovers", &self.leftovers())
            .finish()
    }
}

impl TempFiles {
    /// Records in `store`; `left` are the records a previous daemon left.
    pub fn new(store: Arc<dyn TempFileStore>, left: Vec<RecordedTempFile>) -> TempFiles {
        let mut by_machine: HashMap<Machine, Vec<RecordedTempFile>> = HashMap::new();
        for file in left {
            by_machine
                .entry(file.file.machine.clone())
                .or_default()
                .push(file);
        }
        TempFiles(Some(Arc::new(Shared {
            store,
            left: Mutex::new(by_machine),
        })))
    }

    /// How many leftovers wait for a connection.
    pub fn leftovers(&self) -> usize {
        self.0
            .as_ref()
            .map_or(0, |s| s.lock_left().values().map(Vec::len).sum())
    }

    /// The handle a writer to `server` records its files with.
    pub fn for_server(&self, server: &ServerSpec) -> ServerTempFiles {
        ServerTempFiles {
            shared: self.0.clone(),
            server: server.name.clone(),
            machine: Machine::of(server),
        }
    }

    /// Removes the leftovers of `server`'s machine account over `session`,
    /// which was just opened to it. Failures are logged; what could not be
    /// cleaned waits for the next connection. Returns at once when there
    /// is nothing to clean (the usual case).
    pub async fn recover(&self, server: &ServerSpec, session: &SshSession) {
        let Some(shared) = &self.0 else { return };
        let machine = Machine::of(server);
        let Some(files) = shared.lock_left().remove(&machine) else {
            return;
        };
        // whatever is not dealt with goes back for the next connection, also
        // when this future is dropped half-way (a connect that is cancelled)
        let mut pending = PutBack {
            shared: shared.clone(),
            machine,
            files: files.into(),
        };
        let name = server.name.as_str();
        log::info!(server = name, files = pending.files.len();
            "removing temporary files an earlier write left on this server");
        let deadline = tokio::time::Instant::now() + RECOVERY_BUDGET;
        let sftp = match tokio::time::timeout(RECOVERY_STEP_TIMEOUT, session.sftp()).await {
            Ok(Ok(sftp)) => sftp,
            Ok(Err(e)) => {
                log::warn!(server = name, error = e.to_string();
                    "cannot open sftp to remove leftover temporary files; trying again at the next connection");
                return;
            }
            Err(_) => {
                log::warn!(server = name;
                    "sftp did not open in time to remove leftover temporary files; trying again at the next connection");
                return;
            }
        };
        let mut refused = Vec::new();
        while let Some(file) = pending.files.front() {
            if tokio::time::Instant::now() >= deadline {
                log::warn!(server = name, left = pending.files.len();
                    "leftover temporary files not all removed within the recovery budget; the rest at the next connection");
                break;
            }
            let path = file.file.path.as_str();
            let outcome = if is_temp_path(path, file.file.kind) {
                tokio::time::timeout(RECOVERY_STEP_TIMEOUT, remove_leftover(&sftp, path))
                    .await
                    .unwrap_or_else(|_| Err(Failure::Session("no answer in time".to_owned())))
            } else {
                log::error!(server = name, path = path;
                    "a temporary-file record names a path Pink-Page never creates; left alone");
                Ok(Recovered::LeftAlone)
            };
            match outcome {
                Ok(outcome) => {
                    if outcome == Recovered::LeftAlone {
                        log::warn!(server = name, path = path;
                            "a leftover temporary path is not a regular file any more; left alone");
                    }
                    let file = pending.files.pop_front().expect("the front file");
                    shared.settle(&file, outcome);
                }
                Err(Failure::File(e)) => {
                    let mut file = pending.files.pop_front().expect("the front file");
                    file.attempts += 1;
                    if file.attempts >= MAX_ATTEMPTS {
                        log::error!(server = name, path = file.file.path.as_str(), error = e;
                            "a leftover temporary file could not be removed; given up, remove it by hand");
                        shared.settle(&file, Recovered::GaveUp);
                    } else {
                        log::warn!(server = name, path = file.file.path.as_str(), error = e;
                            "the server refused to remove a leftover temporary file; trying again at the next connection");
                        refused.push(file);
                    }
                }
                Err(Failure::Session(e)) => {
                    log::warn!(server = name, path = path, error = e;
                        "cannot remove leftover temporary files now; trying again at the next connection");
                    break;
                }
            }
        }
        pending.files.extend(refused);
        let _ = sftp.close().await;
    }
}

/// The SSH layer runs this on every new session (registered in
/// `SshOptions::on_connect` by the daemon), so a server's leftovers are
/// removed before its next connection is used; the SSH layer itself knows
/// nothing of temporary files.
impl ConnectHook for TempFiles {
    fn connected<'a>(&'a self, server: &'a ServerSpec, session: &'a SshSession) -> BoxFuture<'a, ()> {
        Box::pin(self.recover(server, session))
    }
}

/// Leftovers a recovery took out of the map and has not dealt with yet;
/// they go back when it is dropped, however it ends.
struct PutBack {
    shared: Arc<Shared>,
    machine: Machine,
    files: VecDeque<RecordedTempFile>,
}

impl Drop for PutBack {
    fn drop(&mut self) {
        if !self.files.is_empty() {
            let files = std::mem::take(&mut self.files);
            self.shared
                .lock_left()
                .entry(self.machine.clone())
                .or_default()
                .extend(files);
        }
    }
}

/// Why a leftover was not removed.
enum Failure {
    /// The server refused this file; the others may still go.
    File(String),
    /// The session failed or stopped answering; nothing more now.
    Session(String),
}

impl Shared {
    fn lock_left(&self) -> std::sync::MutexGuard<'_, HashMap<Machine, Vec<RecordedTempFile>>> {
        // a panic elsewhere while holding it left a consistent map: every
        // change is one insert or remove
        self.left.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn leave(&self, file: RecordedTempFile) {
        self.lock_left()
            .entry(file.file.machine.clone())
            .or_default()
            .push(file);
    }

    /// Tells the store how a leftover ended, detached (the audit row is
    /// queued now; the record's deletion may land later).
    fn settle(&self, file: &RecordedTempFile, outcome: Recovered) {
        let done = self.store.recovered(file, outcome);
        let path = file.file.path.clone();
        spawn_detached(async move {
            if let Err(e) = done.await {
                log::warn!(path = path.as_str(), code = e.code.code(), error = e.to_string();
                    "a cleaned temporary file's record could not be dropped");
            }
        });
    }
}

/// Runs `work` on the current runtime without waiting for it (nothing
/// outside one: unit tests without a runtime, a daemon shutting down).
fn spawn_detached(work: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(work);
    }
}

/// Whether `path` has the name Pink-Page gives temporary files of `kind`;
/// recovery removes nothing else.
fn is_temp_path(path: &str, kind: TempKind) -> bool {
    match kind {
        TempKind::Upload | TempKind::Transfer => super::temp_names::is_temp_name(path),
        TempKind::Script => super::temp_names::is_script_path(path),
    }
}

/// Removes the regular file at `path`; a path with nothing or something
/// else there is not touched. The type is read with `file_type()`, which
/// compares the whole type field: russh-sftp's `is_regular()` only tests
/// the S_IFREG bit, which a symlink's (and a socket's) mode has too.
async fn remove_leftover(sftp: &russh_sftp::client::SftpSession, path: &str) -> Result<Recovered, Failure> {
    let failure = |e: SftpLibError| match e {
        SftpLibError::Status(s) => Failure::File(format!("{:?}: {}", s.status_code, s.error_message)),
        e => Failure::Session(e.to_string()),
    };
    match sftp.symlink_metadata(path).await {
        Err(SftpLibError::Status(s)) if s.status_code == StatusCode::NoSuchFile => Ok(Recovered::AlreadyGone),
        Err(e) => Err(failure(e)),
        Ok(attrs) if !attrs.file_type().is_file() => Ok(Recovered::LeftAlone),
        Ok(_) => match sftp.remove_file(path).await {
            Ok(()) => Ok(Recovered::Removed),
            Err(SftpLibError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {
                Ok(Recovered::AlreadyGone)
            }
            Err(e) => Err(failure(e)),
        },
    }
}

/// One server's side of [`TempFiles`], for a writer to it.
#[derive(Clone)]
pub struct ServerTempFiles {
    shared: Option<Arc<Shared>>,
    server: String,
    machine: Machine,
}

impl fmt::Debug for ServerTempFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTempFiles")
            .field("server", &self.server)
            .finish()
    }
}

impl ServerTempFiles {
    /// Records that a temporary file is about to be created at `path`; call
    /// it before creating the file. Never fails: a store that cannot take
    /// the record is logged (40000) and the file is made anyway.
    pub async fn record(&self, path: &str, kind: TempKind) -> TempRecord {
        let file = TempFile {
            server: self.server.clone(),
            machine: self.machine.clone(),
            path: path.to_owned(),
            kind,
        };
        let Some(shared) = &self.shared else {
            return TempRecord {
                shared: None,
                file: None,
                late: None,
            };
        };
        let unrecorded = |why: &str| {
            log::warn!(server = file.server.as_str(), path = path, code = crate::ErrorCode::Database.code(), why = why;
                "temporary file not recorded; a daemon killed before removing it would leave it");
        };
        let (mut id, mut late) = (None, None);
        if !shared.store.accepting() {
            unrecorded("the store fails");
        } else {
            // its own task, so a write that lands after the wait still has
            // its id, and done() can delete it
            let mut insert = tokio::spawn(shared.store.insert(&file));
            match tokio::time::timeout(RECORD_TIMEOUT, &mut insert).await {
                Ok(Ok(Ok(stored))) => id = Some(stored),
                Ok(Ok(Err(e))) => unrecorded(&e.to_string()),
                Ok(Err(e)) => unrecorded(&e.to_string()),
                Err(_) => {
                    unrecorded("no answer in time");
                    late = Some(insert);
                }
            }
        }
        TempRecord {
            shared: Some(shared.clone()),
            file: Some(RecordedTempFile {
                id,
                file,
                attempts: 0,
            }),
            late,
        }
    }
}

/// The record of one temporary file. [`TempRecord::done`] once the file is
/// renamed into place or removed; dropped without it, the file is taken to
/// be still there, and the next connection to its server removes it.
#[must_use = "call done() once the file is renamed or removed"]
pub struct TempRecord {
    shared: Option<Arc<Shared>>,
    file: Option<RecordedTempFile>,
    /// The insert still running when the record was handed out.
    late: Option<tokio::task::JoinHandle<Result<i64, AppError>>>,
}

impl fmt::Debug for TempRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempRecord")
            .field("path", &self.file.as_ref().map(|f| f.file.path.as_str()))
            .finish()
    }
}

impl TempRecord {
    /// The file is gone from its temporary path: drops the record (in the
    /// background; a record that outlives its file only costs the next
    /// daemon a look).
    pub fn done(mut self) {
        let (Some(shared), Some(file)) = (self.shared.take(), self.file.take()) else {
            return;
        };
        let late = self.late.take();
        spawn_detached(async move {
            let id = match (file.id, late) {
                (Some(id), _) => id,
                (None, Some(late)) => match late.await {
                    Ok(Ok(id)) => id,
                    _ => return,
                },
                (None, None) => return,
            };
            if let Err(e) = shared.store.delete(id).await {
                log::warn!(code = e.code.code(), error = e.to_string(); "a temporary file's record could not be dropped");
            }
        });
    }
}

impl Drop for TempRecord {
    fn drop(&mut self) {
        if let (Some(shared), Some(file)) = (self.shared.take(), self.file.take()) {
            shared.leave(file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in memory that can be told to fail.
    #[derive(Default)]
    struct MemoryStore {
        rows: Mutex<HashMap<i64, TempFile>>,
        next: Mutex<i64>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl TempFileStore for MemoryStore {
        fn accepting(&self) -> bool {
            true
        }
        fn insert(&self, file: &TempFile) -> BoxFuture<'static, Result<i64, AppError>> {
            let result = if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                Err(AppError::new(crate::ErrorCode::Database))
            } else {
                let mut next = self.next.lock().unwrap();
                *next += 1;
                self.rows.lock().unwrap().insert(*next, file.clone());
                Ok(*next)
            };
            Box::pin(async move { result })
        }
        fn delete(&self, id: i64) -> BoxFuture<'static, Result<(), AppError>> {
            self.rows.lock().unwrap().remove(&id);
            Box::pin(async { Ok(()) })
        }
        fn recovered(
            &self,
            file: &RecordedTempFile,
            _: Recovered,
        ) -> BoxFuture<'static, Result<(), AppError>> {
            if let Some(id) = file.id {
                self.rows.lock().unwrap().remove(&id);
            }
            Box::pin(async { Ok(()) })
        }
    }

    fn spec(name: &str, port: u16) -> ServerSpec {
        ServerSpec::for_tests(name, "Example.COM", port)
    }

    #[tokio::test]
    async fn a_done_record_is_dropped_and_a_forgotten_one_becomes_a_leftover_of_its_machine() {
        let store = Arc::new(MemoryStore::default());
        let files = TempFiles::new(store.clone(), Vec::new());
        let a = files.for_server(&spec("a", 22));
        let done = a
            .record("/srv/.x.pinkpage-0123456789ab.part", TempKind::Upload)
            .await;
        let dropped = a
            .record("/srv/.y.pinkpage-0123456789ab.part", TempKind::Transfer)
            .await;
        assert_eq!(
            store.rows.lock().unwrap().len(),
            2,
            "recorded before the files exist"
        );
        done.done();
        tokio::task::yield_now().await;
        assert_eq!(
            store.rows.lock().unwrap().len(),
            1,
            "the renamed file's record is gone"
        );
        drop(dropped);
        assert_eq!(files.leftovers(), 1);
        let left = files.0.as_ref().unwrap().lock_left();
        // the same account on the same machine, whatever the server's name
        // or the host's case
        let key = Machine::of(&spec("another name", 22));
        assert_eq!(left[&key][0].file.path, "/srv/.y.pinkpage-0123456789ab.part");
        assert!(!left.contains_key(&Machine::of(&spec("a", 2222))));
    }

    #[tokio::test]
    async fn a_failing_store_still_lets_the_write_happen_and_keeps_the_leftover_in_memory() {
        let store = Arc::new(MemoryStore::default());
        store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        let files = TempFiles::new(store.clone(), Vec::new());
        let record = files
            .for_server(&spec("a", 22))
            .record(
                "/tmp/.pinkpage-script-00000000000000000000000000000000",
                TempKind::Script,
            )
            .await;
        assert!(store.rows.lock().unwrap().is_empty());
        drop(record);
        assert_eq!(files.leftovers(), 1, "cleaned by this daemon's next connection");
    }

    #[tokio::test]
    async fn the_default_records_nothing() {
        let files = TempFiles::default();
        let record = files
            .for_server(&spec("a", 22))
            .record("/x", TempKind::Upload)
            .await;
        drop(record);
        assert_eq!(files.leftovers(), 0);
    }

    #[test]
    fn only_pinkpage_temporary_names_are_ever_removed() {
        for (path, kind, ok) in [
            (
                "/srv/.big.dat.pinkpage-0123456789ab.part",
                TempKind::Transfer,
                true,
            ),
            ("/srv/.big.dat.pinkpage-0123456789ab.part", TempKind::Upload, true),
            ("/srv/big.dat", TempKind::Transfer, false),
            (
                "/srv/.big.dat.pinkpage-0123456789ab.part/..",
                TempKind::Upload,
                false,
            ),
            ("/srv/.big.dat.pinkpage-XYZ.part", TempKind::Upload, false),
            ("/etc/passwd", TempKind::Script, false),
            (
                "/tmp/.pinkpage-script-0123456789abcdef0123456789abcdef",
                TempKind::Script,
                true,
            ),
            (
                "/tmp/.pinkpage-script-0123456789abcdef0123456789abcdef",
                TempKind::Upload,
                false,
            ),
            (
                "/tmp/../etc/.pinkpage-script-0123456789abcdef0123456789abcdef",
                TempKind::Script,
                false,
            ),
        ] {
            assert_eq!(is_temp_path(path, kind), ok, "{path} as {kind:?}");
        }
    }

    #[test]
    fn a_symlink_is_not_taken_for_a_regular_file() {
        use russh_sftp::protocol::FileAttributes;
        let symlink = FileAttributes {
            permissions: Some(0o120777),
            ..FileAttributes::empty()
        };
        // the library's bit test says yes; the type field says symlink
        assert!(symlink.is_regular());
        assert!(!symlink.file_type().is_file());
        assert!(symlink.file_type().is_symlink());
        let file = FileAttributes {
            permissions: Some(0o100644),
            ..FileAttributes::empty()
        };
        assert!(file.file_type().is_file());
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [TempKind::Upload, TempKind::Transfer, TempKind::Script] {
            assert_eq!(TempKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(TempKind::parse("other"), None);
    }
}
