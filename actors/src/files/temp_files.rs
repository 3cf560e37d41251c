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
use crate::ssh::SshSession;

/// How long a record may take to be stored before the file is created
/// without one (a hung store must not hold every copy up).
const RECORD_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one step of a recovery (opening SFTP, one file) may take; past
/// it the connection is used as it is and the rest waits for the next one.
const RECOVERY_STEP_TIMEOUT: Duration = Duration::from_secs(5);

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
}

/// Where the records live: the daemon's store. Calls must not block the
/// caller's thread (the store runs on its own).
pub trait TempFileStore: Send + Sync + 'static {
    /// Stores a record before its file is created; its id.
    fn insert(&self, file: &TempFile) -> BoxFuture<'static, Result<i64, AppError>>;
    /// Drops a record whose file was renamed into place or removed.
    fn delete(&self, id: i64) -> BoxFuture<'static, Result<(), AppError>>;
    /// Drops a leftover's record after a connection dealt with it, and
    /// audits a removal.
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
        let mut pending: VecDeque<RecordedTempFile> = files.into();
        log::info!(server = server.name.as_str(), files = pending.len();
            "removing temporary files an earlier write left on this server");
        let sftp = match tokio::time::timeout(RECOVERY_STEP_TIMEOUT, session.sftp()).await {
            Ok(Ok(sftp)) => Some(sftp),
            Ok(Err(e)) => {
                log::warn!(server = server.name.as_str(), error = e.to_string();
                    "cannot open sftp to remove leftover temporary files; trying again at the next connection");
                None
            }
            Err(_) => {
                log::warn!(server = server.name.as_str();
                    "sftp did not open in time to remove leftover temporary files; trying again at the next connection");
                None
            }
        };
        if let Some(sftp) = &sftp {
            while let Some(file) = pending.pop_front() {
                let outcome = match is_temp_path(&file.file.path, file.file.kind) {
                    false => {
                        log::error!(server = server.name.as_str(), path = file.file.path.as_str();
                            "a temporary-file record names a path Pink-Page never creates; left alone");
                        Ok(Recovered::LeftAlone)
                    }
                    true => {
                        tokio::time::timeout(RECOVERY_STEP_TIMEOUT, remove_leftover(sftp, &file.file.path))
                            .await
                            .unwrap_or_else(|_| Err("no answer in time".to_owned()))
                    }
                };
                match outcome {
                    Ok(outcome) => {
                        if outcome == Recovered::LeftAlone {
                            log::warn!(server = server.name.as_str(), path = file.file.path.as_str();
                                "a leftover temporary path is not a regular file any more; left alone");
                        }
                        if let Err(e) = shared.store.recovered(&file, outcome).await {
                            log::warn!(server = server.name.as_str(), path = file.file.path.as_str(),
                                code = e.code.code(), error = e.to_string();
                                "a cleaned temporary file's record could not be dropped");
                        }
                    }
                    Err(e) => {
                        log::warn!(server = server.name.as_str(), path = file.file.path.as_str(), error = e;
                            "cannot remove a leftover temporary file; trying again at the next connection");
                        pending.push_front(file);
                        break;
                    }
                }
            }
            let _ = sftp.close().await;
        }
        if !pending.is_empty() {
            shared.lock_left().entry(machine).or_default().extend(pending);
        }
    }
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
}

/// Whether `path` has the name Pink-Page gives temporary files of `kind`;
/// recovery removes nothing else.
fn is_temp_path(path: &str, kind: TempKind) -> bool {
    match kind {
        TempKind::Upload | TempKind::Transfer => crate::files::write::is_temp_name(path),
        TempKind::Script => crate::files::script::is_script_path(path),
    }
}

/// Removes the regular file at `path`; a path with nothing or something
/// else there is not touched.
async fn remove_leftover(sftp: &russh_sftp::client::SftpSession, path: &str) -> Result<Recovered, String> {
    match sftp.symlink_metadata(path).await {
        Err(SftpLibError::Status(s)) if s.status_code == StatusCode::NoSuchFile => Ok(Recovered::AlreadyGone),
        Err(e) => Err(e.to_string()),
        Ok(attrs) if !attrs.is_regular() => Ok(Recovered::LeftAlone),
        Ok(_) => match sftp.remove_file(path).await {
            Ok(()) => Ok(Recovered::Removed),
            Err(SftpLibError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {
                Ok(Recovered::AlreadyGone)
            }
            Err(e) => Err(e.to_string()),
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
            };
        };
        let id = match tokio::time::timeout(RECORD_TIMEOUT, shared.store.insert(&file)).await {
            Ok(Ok(id)) => Some(id),
            Ok(Err(e)) => {
                log::warn!(server = file.server.as_str(), path = path, code = e.code.code(), error = e.to_string();
                    "temporary file not recorded; a daemon killed before removing it would leave it");
                None
            }
            Err(_) => {
                log::warn!(server = file.server.as_str(), path = path, code = crate::ErrorCode::Database.code();
                    "temporary file not recorded in time; a daemon killed before removing it would leave it");
                None
            }
        };
        TempRecord {
            shared: Some(shared.clone()),
            file: Some(RecordedTempFile { id, file }),
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
        let Some(id) = file.id else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let delete = shared.store.delete(id);
            runtime.spawn(async move {
                if let Err(e) = delete.await {
                    log::warn!(code = e.code.code(), error = e.to_string(); "a temporary file's record could not be dropped");
                }
            });
        }
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
        ServerSpec {
            name: name.into(),
            host: "Example.COM".into(),
            port,
            username: "deploy".into(),
            auth: crate::server::Auth::Password(crate::Secret::new("unused")),
            host_key_fingerprint: None,
            encoding: encoding_rs::UTF_8,
            tags: Vec::new(),
        }
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
    fn kinds_round_trip() {
        for kind in [TempKind::Upload, TempKind::Transfer, TempKind::Script] {
            assert_eq!(TempKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(TempKind::parse("other"), None);
    }
}
