//! The copy itself: list the source over SFTP, then stream each matching
//! file from the source's SFTP session into a temporary file on the
//! destination's, verify it and rename it into place, the way every SFTP
//! write goes ([`crate::files::write`]: temporary sibling, posix-rename).
//!
//! Memory stays bounded: per file, a reader and a writer run concurrently
//! (joined in one future, so dropping the future cancels both) with at most
//! [`QUEUE_CHUNKS`] chunks of [`CHUNK`] bytes between them, on top of what
//! russh-sftp keeps in flight (16 reads, 16 writes). [`CONCURRENT_FILES`]
//! files are copied at once, which hides the per-file round trips that
//! dominate small files; files larger than a chunk have a queue of their
//! own, [`CONCURRENT_LARGE_FILES`] at once, which bounds the memory.
//!
//! Requests per file, kept few because each SFTP server takes its requests
//! one at a time (for 1,000 small files their count, not the bytes, is the
//! cost): on the source open and a stat (pipelined), the reads up to the
//! listed size (one for a small file; a large one's read-ahead may still
//! ask past the end) and close; on the destination an exclusive create at
//! 0600, the writes, the source's mode on the open handle, close and the
//! rename. Measured in docs/benchmarks.md
//! ("Transfers").
//!
//! Everything that must be undone if the copy stops half way (temporary
//! files, sessions) is registered in [`Resources`], which the actor cleans
//! up in `stopped()`; this module never has to clean up on its own paths.
//!
//! A little over 450 lines: one pipeline (connect, list, copy, verify,
//! rename) best read top to bottom; the write steps it shares with BMX5
//! are in [`crate::files::write`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use actix::ArbiterHandle;
use futures_util::{StreamExt, TryStreamExt};
use russh_sftp::client::fs::File;
use russh_sftp::client::{RawSftpSession, SftpSession};
use russh_sftp::protocol::FileAttributes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::glob::{join, Matcher, SourceGlob};
use super::plan::{FileDone, TransferProgress, TransferRequest, TransferSummary};
use super::progress::{Throttle, PROGRESS_INTERVAL};
use crate::error::{AppError, ErrorCode};
use crate::files::digest::{sha256_reader, Sha256Hex};
use crate::files::temp_files::{ServerTempFiles, TempKind, TempRecord};
use crate::files::write;
use crate::ssh::{self, SshSession};

/// The temporary name of a file being copied (see [`crate::files::temp_names::temp_name_for`]).
pub use crate::files::temp_names::temp_name_for as temp_name;

/// Bytes per chunk handed from reader to writer.
pub const CHUNK: usize = 256 * 1024;
/// Chunks that may wait between reader and writer, per file.
pub const QUEUE_CHUNKS: usize = 8;
/// Files of at most one [`CHUNK`] copied at once: for small files the
/// round trips, not the bytes, are the cost, and more at once hide more of
/// them (16 measured about 20 % faster than 8 for 1,000 small files, 32
/// no faster than 16).
pub const CONCURRENT_FILES: usize = 16;
/// Files larger than one [`CHUNK`] copied at once, beside the small ones:
/// each may hold its queue and russh-sftp's reads and writes in flight
/// (about 6.5 MiB), and a large file is bound by the two cores, not by
/// round trips, so a transfer holds about 26 MiB at most however many
/// large files it has.
pub const CONCURRENT_LARGE_FILES: usize = 4;

/// What a stopped transfer must clean up; filled in as the copy goes.
#[derive(Default)]
pub struct Resources {
    /// Sessions to disconnect.
    pub sessions: Vec<Arc<SshSession>>,
    /// The destination's SFTP session, for removing temporary files.
    pub destination: Option<Arc<SftpSession>>,
    /// SFTP sessions to close.
    pub sftps: Vec<Arc<SftpSession>>,
    /// The destination's posix-rename channel, when it has one, to close.
    pub raw: Option<Arc<RawSftpSession>>,
    /// Temporary files created and not yet renamed into place, with
    /// their crash-recovery records (done once removed).
    pub temps: HashMap<String, TempRecord>,
}

/// Shared between the copy and the actor's cleanup; never locked across an
/// await.
pub type SharedResources = Arc<Mutex<Resources>>;

/// A file the glob matched.
#[derive(Debug, Clone)]
pub(super) struct SourceFile {
    pub(super) name: String,
    pub(super) path: String,
    pub(super) size: u64,
    pub(super) permissions: u32,
}

/// Counters behind `scp_progress`, updated per chunk written.
struct Progress<F: Fn(TransferProgress)> {
    state: RefCell<ProgressState>,
    emit: F,
}

struct ProgressState {
    throttle: Throttle,
    bytes_done: u64,
    bytes_total: u64,
    files_done: usize,
    files_total: usize,
}

impl<F: Fn(TransferProgress)> Progress<F> {
    fn advance(&self, file: &str, bytes: u64, file_done: bool) {
        let snapshot = {
            let mut s = self.state.borrow_mut();
            s.bytes_done += bytes;
            if file_done {
                s.files_done += 1;
            }
            if !s.throttle.ready() {
                return;
            }
            TransferProgress {
                file: file.to_owned(),
                bytes_done: s.bytes_done,
                bytes_total: s.bytes_total,
                files_done: s.files_done,
                files_total: s.files_total,
            }
        };
        (self.emit)(snapshot);
    }
}

/// A 24000 with `detail`: every failure of a transfer (and of its dry run).
pub(super) fn failed(detail: impl Into<String>) -> AppError {
    AppError::with_detail(ErrorCode::TransferFailed, detail)
}

/// Runs `fut` on `arbiter` (another thread) and awaits its result there.
async fn on_arbiter<T, Fut>(arbiter: &ArbiterHandle, fut: Fut) -> Result<T, AppError>
where
    Fut: Future<Output = Result<T, AppError>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    if !arbiter.spawn(async move {
        let _ = tx.send(fut.await);
    }) {
        return Err(AppError::with_detail(
            ErrorCode::Internal,
            "transfer helper thread is gone",
        ));
    }
    rx.await
        .map_err(|_| AppError::with_detail(ErrorCode::Internal, "transfer helper thread stopped"))?
}

/// Connects to `server` and opens SFTP (and, for the destination, the
/// posix-rename channel when the server offers it), disconnecting again if
/// SFTP fails.
pub(super) async fn open_side(
    server: Arc<crate::server::ServerSpec>,
    options: Arc<ssh::SshOptions>,
    destination: bool,
) -> Result<(SshSession, SftpSession, Option<RawSftpSession>), AppError> {
    let session = ssh::connect(&server, &options).await?;
    match session.sftp().await {
        Ok(sftp) => {
            let posix = match destination {
                true => write::posix_rename_session(&session).await,
                false => None,
            };
            Ok((session, sftp, posix))
        }
        Err(e) => {
            let _ = session.disconnect().await;
            Err(e)
        }
    }
}

/// Runs the whole transfer. `helper` is a second thread: the source's SSH
/// session runs there, so decrypting the source and encrypting for the
/// destination use two cores.
pub async fn run(
    request: &TransferRequest,
    resources: SharedResources,
    helper: ArbiterHandle,
    emit: impl Fn(TransferProgress),
) -> Result<TransferSummary, AppError> {
    let started = std::time::Instant::now();
    let spec = &request.spec;
    let glob = SourceGlob::parse(&spec.source_glob).map_err(failed)?;
    let matcher = Matcher::new(&glob.pattern).map_err(failed)?;

    let source_side = on_arbiter(
        &helper,
        open_side(request.source.clone(), request.ssh.clone(), false),
    );
    let destination_side = open_side(request.destination.clone(), request.ssh.clone(), true);
    let (source, destination) = futures_util::join!(source_side, destination_side);
    // Register whatever connected, even when the other side failed, so the
    // actor's cleanup disconnects it.
    let source = source.map(|(session, sftp, _)| {
        let sftp = Arc::new(sftp);
        let mut res = resources.lock().expect("resources lock");
        res.sessions.push(Arc::new(session));
        res.sftps.push(sftp.clone());
        sftp
    });
    let destination = destination.map(|(session, sftp, posix)| {
        let sftp = Arc::new(sftp);
        let posix = posix.map(Arc::new);
        let mut res = resources.lock().expect("resources lock");
        res.sessions.push(Arc::new(session));
        res.sftps.push(sftp.clone());
        res.destination = Some(sftp.clone());
        res.raw = posix.clone();
        (sftp, posix)
    });
    let source = source.map_err(|e| wrap(e, "source", &spec.source_server))?;
    let (destination, posix) = destination.map_err(|e| wrap(e, "destination", &spec.destination_server))?;
    let sides = Sides {
        source,
        destination,
        posix,
    };
    copy_all(request, &resources, sides, &glob, &matcher, emit, started).await
}

/// The two connected ends.
struct Sides {
    source: Arc<SftpSession>,
    destination: Arc<SftpSession>,
    /// The destination's posix-rename channel, when it has one.
    posix: Option<Arc<RawSftpSession>>,
}

/// A connection failure as a 24000 that still names its own code.
fn wrap(e: AppError, side: &str, server: &str) -> AppError {
    failed(format!("{side} server '{server}': {e}"))
}

async fn copy_all(
    request: &TransferRequest,
    resources: &SharedResources,
    sides: Sides,
    glob: &SourceGlob,
    matcher: &Matcher,
    emit: impl Fn(TransferProgress),
    started: std::time::Instant,
) -> Result<TransferSummary, AppError> {
    let spec = &request.spec;
    let Sides {
        source,
        destination,
        posix,
    } = sides;
    let files = list(&source, glob, matcher, &spec.source_server).await?;
    if files.is_empty() {
        return Err(AppError::with_detail(
            ErrorCode::TransferNoSource,
            format!(
                "'{}' on server '{}' matched no file",
                spec.source_glob, spec.source_server
            ),
        ));
    }
    log::info!(
        transfer = spec.name.as_str(),
        files = files.len(),
        posix_rename = posix.is_some();
        "transfer copying"
    );
    let progress = Progress {
        state: RefCell::new(ProgressState {
            throttle: Throttle::new(PROGRESS_INTERVAL),
            bytes_done: 0,
            bytes_total: files.iter().map(|f| f.size).sum(),
            files_done: 0,
            files_total: files.len(),
        }),
        emit,
    };
    let ctx = CopyCtx {
        source: &source,
        destination: &destination,
        posix: posix.as_deref(),
        resources,
        temp_files: request.temp_files.for_server(&request.destination),
        dir: &spec.destination_dir,
        verify: spec.verify_sha256,
        progress: &progress,
    };
    // two queues, so small files never wait behind large ones for a place
    let (large, small): (Vec<&SourceFile>, Vec<&SourceFile>) =
        files.iter().partition(|f| f.size > CHUNK as u64);
    let small = futures_util::stream::iter(small)
        .map(|file| ctx.copy_one(file))
        .buffer_unordered(CONCURRENT_FILES)
        .try_collect::<Vec<FileDone>>();
    let large = futures_util::stream::iter(large)
        .map(|file| ctx.copy_one(file))
        .buffer_unordered(CONCURRENT_LARGE_FILES)
        .try_collect::<Vec<FileDone>>();
    let (mut done, large_done) = futures_util::try_join!(small, large)?;
    done.extend(large_done);
    done.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(TransferSummary {
        bytes: done.iter().map(|f| f.bytes).sum(),
        files: done,
        duration: started.elapsed(),
    })
}

/// Lists `glob.dir` on the source and keeps the regular files (or links to
/// them) whose names match, sorted by name.
pub(super) async fn list(
    sftp: &SftpSession,
    glob: &SourceGlob,
    matcher: &Matcher,
    server: &str,
) -> Result<Vec<SourceFile>, AppError> {
    let entries = sftp.read_dir(glob.dir.as_str()).await.map_err(|e| {
        failed(format!(
            "cannot list '{}' on source server '{server}': {e}",
            glob.dir
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let name = entry.file_name();
        if name == "." || name == ".." || !matcher.matches(&name) {
            continue;
        }
        let path = glob.path_of(&name);
        let mut meta = entry.metadata();
        if meta.is_symlink() {
            // follow it: a link to a file is copied as the file
            match sftp.metadata(path.as_str()).await {
                Ok(target) => meta = target,
                Err(_) => continue, // dangling
            }
        }
        if !meta.file_type().is_file() {
            continue;
        }
        files.push(SourceFile {
            name,
            path,
            size: meta.len(),
            permissions: meta.permissions.unwrap_or(0o644),
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// What every file copy shares.
struct CopyCtx<'a, F: Fn(TransferProgress)> {
    source: &'a SftpSession,
    destination: &'a SftpSession,
    posix: Option<&'a RawSftpSession>,
    resources: &'a SharedResources,
    /// Where the destination's temporary files are recorded.
    temp_files: ServerTempFiles,
    dir: &'a str,
    verify: bool,
    progress: &'a Progress<F>,
}

impl<F: Fn(TransferProgress)> CopyCtx<'_, F> {
    async fn copy_one(&self, file: &SourceFile) -> Result<FileDone, AppError> {
        let name = file.name.as_str();
        let fail = |what: &str, e: &dyn std::fmt::Display| failed(format!("file '{name}': {what}: {e}"));
        let target = join(self.dir, name);
        let temp = crate::files::temp_names::temp_name_for(&target);

        // The source is opened, and its size read again (the listing may
        // be minutes old; pipelined with the open, no round trip more),
        // while the record of the temporary file is stored (before the
        // file exists: crash recovery). The copy is private while
        // incomplete (0600 at most, the server's umask may narrow it) and
        // gets the source's mode before the rename.
        let (reader, now, record) = futures_util::join!(
            self.source.open(file.path.as_str()),
            self.source.metadata(file.path.as_str()),
            self.temp_files.record(&temp, TempKind::Transfer)
        );
        let opened = reader.and_then(|reader| now.map(|now| (reader, now.len())));
        let mut reader = match opened {
            Ok((reader, size)) if size == file.size => reader,
            Ok((_, size)) => {
                record.done();
                return Err(failed(format!(
                    "file '{name}': the source changed since it was listed (listed {} bytes, now {size})",
                    file.size
                )));
            }
            Err(e) => {
                record.done();
                return Err(fail("cannot open it on the source", &e));
            }
        };
        let mut writer = match write::create_temp_at_most(self.destination, &temp, 0o600).await {
            Ok(writer) => writer,
            Err(e) => {
                write::created_nothing(&e, record);
                return Err(fail(&format!("cannot create '{temp}' on the destination"), &e));
            }
        };
        self.resources
            .lock()
            .expect("resources lock")
            .temps
            .insert(temp.clone(), record);

        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(QUEUE_CHUNKS);
        let verify = self.verify;
        let size = file.size;
        // Reads the size the listing gave (checked again at the open), as
        // scp does, and does not ask for more: for a small file one read,
        // where reading to the end made russh-sftp send 16 reads past it
        // (most of a small file's work). A file that shrinks during the
        // copy ends early and fails below; one that grows during it is
        // copied as it was at the open.
        let read = async move {
            let mut hasher = verify.then(Sha256Hex::new);
            let mut total = 0u64;
            while total < size {
                let want = CHUNK.min(usize::try_from(size - total).unwrap_or(CHUNK));
                let buf = read_up_to(&mut reader, want)
                    .await
                    .map_err(|e| fail("reading the source failed", &e))?;
                let n = buf.len();
                if n == 0 {
                    break;
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(&buf);
                }
                total += n as u64;
                if tx.send(buf).await.is_err() {
                    // the writer stopped; its error is the one reported
                    break;
                }
            }
            drop(reader);
            Ok::<_, AppError>((total, hasher.map(Sha256Hex::finish)))
        };
        let mode = {
            let mut mode = FileAttributes::empty();
            mode.permissions = Some(file.permissions & 0o777);
            mode
        };
        // Verifying reads the copy back, so a mode the owner cannot read
        // (0200, 0044, ...) is set after that, by path; otherwise on the
        // open handle after the last write.
        let mode_on_handle = !(self.verify && file.permissions & 0o400 == 0);
        let write = async {
            let mut written = 0u64;
            while let Some(chunk) = rx.recv().await {
                writer
                    .write_all(&chunk)
                    .await
                    .map_err(|e| fail("writing the destination failed", &e))?;
                written += chunk.len() as u64;
                crate::metrics::transfer_bytes(chunk.len() as u64);
                self.progress.advance(name, chunk.len() as u64, false);
            }
            // the server takes requests in order, so this waits behind the
            // writes still in flight instead of adding a round trip after
            if mode_on_handle {
                writer
                    .set_metadata(mode.clone())
                    .await
                    .map_err(|e| fail("cannot set the copy's permissions", &e))?;
            }
            // completes the outstanding writes (each one's status checked:
            // a write the server did not take fails here) and closes
            writer
                .shutdown()
                .await
                .map_err(|e| fail("finishing the destination file failed", &e))?;
            Ok::<_, AppError>(written)
        };
        let ((read, source_sha), written) = futures_util::try_join!(read, write)?;

        if read != file.size || written != read {
            return Err(failed(format!(
                "file '{name}': the source changed during the copy (listed {} bytes, read {read}, wrote {written})",
                file.size
            )));
        }
        if let Some(source_sha) = &source_sha {
            let copy_sha = self
                .hash_destination(name, &temp)
                .await
                .map_err(|e| fail("re-reading the copy failed", &e))?;
            if &copy_sha != source_sha {
                return Err(failed(format!(
                    "file '{name}': sha256 mismatch (source {source_sha}, destination {copy_sha})"
                )));
            }
        }
        if !mode_on_handle {
            self.destination
                .set_metadata(temp.as_str(), mode)
                .await
                .map_err(|e| fail("cannot set the copy's permissions", &e))?;
        }
        write::replace(self.destination, self.posix, &temp, &target)
            .await
            .map_err(|e| fail(&format!("cannot rename the copy to '{target}'"), &e))?;
        let record = self.resources.lock().expect("resources lock").temps.remove(&temp);
        if let Some(record) = record {
            record.done();
        }
        self.progress.advance(name, 0, true);
        crate::metrics::transfer_file_done();
        Ok(FileDone {
            name: file.name.clone(),
            bytes: written,
            sha256: source_sha,
        })
    }

    /// SHA-256 of the temporary file as the destination stored it, read
    /// back over SFTP (there is no hashing extension in OpenSSH's server).
    async fn hash_destination(&self, name: &str, temp: &str) -> Result<String, std::io::Error> {
        let file = self.destination.open(temp).await.map_err(std::io::Error::other)?;
        // no new bytes, but a throttled sign of life while verifying
        let (hash, _) = sha256_reader(file, |_| self.progress.advance(name, 0, false)).await?;
        Ok(hash)
    }
}

/// Reads `want` bytes, or fewer where the file ends, into a new buffer
/// (filled from its spare capacity: not zeroed first, one write per byte).
async fn read_up_to(file: &mut File, want: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(want);
    // never past `want`, whatever capacity the allocator gave
    let mut limited = file.take(want as u64);
    while buf.len() < want {
        if limited.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(buf)
}
