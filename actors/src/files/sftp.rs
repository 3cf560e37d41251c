//! SFTP file operations (BMX5): [`SftpConn`], one SSH session with one SFTP
//! channel on it, and what operators do with files through it.
//!
//! Over 450 lines for one reason to change: it is `SftpConn`'s operations
//! (list, stat, mkdir, remove, rename, read, hash, write, stream), each
//! short; their errors ([`crate::files::sftp_error`]) and the write path
//! ([`crate::files::write`]) live apart.
//!
//! Nothing here runs a shell: every operation is an SFTP request. Every
//! failure is an [`SftpError`]: the 52000 error clients see, with the
//! SFTP status (`no such file`, `permission denied`, ...) at the start of
//! its detail, and the status itself so the web side can choose how to
//! answer (the engine knows nothing of HTTP).
//!
//! Writes never leave a partial file under the target name: they go
//! through [`crate::files::write`] ([`SftpConn::write_atomic`]). Callers
//! that must survive their own cancellation run these futures in a
//! detached task, so the cleanup always runs.

use std::fmt;
use std::io::SeekFrom;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use russh_sftp::client::error::Error as SftpLibError;
use russh_sftp::client::fs::File;
use russh_sftp::client::{RawSftpSession, SftpSession};
use russh_sftp::protocol::{FileAttributes, FileType, StatusCode};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::OnceCell;

pub use crate::files::sftp_error::{SftpError, SftpStatus};
use crate::files::temp_files::{ServerTempFiles, TempFiles, TempKind};
use crate::files::{digest, write};
use crate::server::ServerSpec;
use crate::ssh::{self, SshOptions, SshSession};

/// Bytes read from the remote file per chunk of a streamed download.
const READ_CHUNK: usize = 64 * 1024;

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed when listing).
    Symlink,
    /// A device, fifo or socket.
    Other,
}

/// One file as `sftp_list` and `sftp_stat` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The file name (the last path component).
    pub name: String,
    /// File, directory, symlink or other.
    pub kind: EntryKind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`0o644` is 420), without the file type bits.
    pub mode: u32,
    /// Last modification, seconds since the Unix epoch.
    pub mtime: Option<u32>,
}

impl Entry {
    fn from_attrs(name: String, attrs: &FileAttributes) -> Self {
        Entry {
            name,
            kind: match attrs.file_type() {
                FileType::File => EntryKind::File,
                FileType::Dir => EntryKind::Dir,
                FileType::Symlink => EntryKind::Symlink,
                FileType::Other => EntryKind::Other,
            },
            size: attrs.size.unwrap_or(0),
            mode: attrs.permissions.unwrap_or(0) & 0o7777,
            mtime: attrs.mtime,
        }
    }
}

/// The last component of `path` (`/a/b` -> `b`; `/` -> `/`).
fn base_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// One SSH session with one SFTP channel; the unit the BMX5 domain caches
/// per (connection, server) and REST opens per request.
///
/// Dropping it ends the connection ([`Drop`] disconnects in the
/// background: russh-sftp keeps the channel in a task of its own, so
/// dropping the handle alone would leave the session open);
/// [`SftpConn::close`] does the same and waits for it.
pub struct SftpConn {
    /// Shared with the disconnect [`Drop`] starts.
    session: Arc<SshSession>,
    sftp: SftpSession,
    server: String,
    /// The channel for `posix-rename@openssh.com`, opened at the first
    /// write (reads never need it); holds `None` when the server lacks it.
    posix: OnceCell<Option<RawSftpSession>>,
    /// Where uploads record their temporary files (crash recovery).
    temp_files: ServerTempFiles,
}

impl fmt::Debug for SftpConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SftpConn").field("server", &self.server).finish()
    }
}

impl SftpConn {
    /// Connects to `server` and opens the SFTP subsystem; uploads record
    /// their temporary files in `temp_files`.
    pub async fn open(
        server: &ServerSpec,
        opts: &SshOptions,
        temp_files: &TempFiles,
    ) -> Result<SftpConn, SftpError> {
        let not_connected = |error| SftpError {
            status: SftpStatus::NotConnected,
            error,
        };
        let session = ssh::connect(server, opts).await.map_err(not_connected)?;
        match session.sftp().await {
            Ok(sftp) => Ok(SftpConn {
                session: Arc::new(session),
                sftp,
                server: server.name.clone(),
                posix: OnceCell::new(),
                temp_files: temp_files.for_server(server),
            }),
            Err(e) => {
                let _ = session.disconnect().await;
                Err(not_connected(e))
            }
        }
    }

    /// The server's name.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// Closes the SFTP channel and the session.
    pub async fn close(&self) {
        if let Some(Some(raw)) = self.posix.get() {
            let _ = raw.close_session();
        }
        let _ = self.sftp.close().await;
        let _ = self.session.disconnect().await;
    }

    fn fail(&self, what: impl fmt::Display) -> impl FnOnce(SftpLibError) -> SftpError + '_ {
        let what = what.to_string();
        move |e| SftpError::from_lib(&self.server, what, e)
    }

    /// `path` as the server resolves it (SFTP `realpath`): absolute, with
    /// `.`, `..` and a relative start (the login directory) worked out, so
    /// an operator sees where it is ("." means nothing on a screen).
    pub async fn resolve(&self, path: &str) -> Result<String, SftpError> {
        self.sftp
            .canonicalize(path)
            .await
            .map_err(self.fail(format_args!("resolve '{path}'")))
    }

    /// The entries of directory `path` (without `.` and `..`), sorted by
    /// name. Symlinks are reported as such, not followed.
    pub async fn list(&self, path: &str) -> Result<Vec<Entry>, SftpError> {
        let dir = self
            .sftp
            .read_dir(path)
            .await
            .map_err(self.fail(format_args!("list '{path}'")))?;
        let mut entries: Vec<Entry> = dir
            .map(|e| Entry::from_attrs(e.file_name(), &e.metadata()))
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// What `path` is (following a symlink, as `stat` does).
    pub async fn stat(&self, path: &str) -> Result<Entry, SftpError> {
        let attrs = self
            .sftp
            .metadata(path)
            .await
            .map_err(self.fail(format_args!("stat '{path}'")))?;
        Ok(Entry::from_attrs(base_name(path).to_owned(), &attrs))
    }

    async fn lstat(&self, path: &str) -> Result<Option<FileAttributes>, SftpError> {
        match self.sftp.symlink_metadata(path).await {
            Ok(attrs) => Ok(Some(attrs)),
            Err(SftpLibError::Status(s)) if s.status_code == StatusCode::NoSuchFile => Ok(None),
            Err(e) => Err(SftpError::from_lib(
                &self.server,
                format_args!("stat '{path}'"),
                e,
            )),
        }
    }

    /// Creates directory `path`; with `parents`, also the missing ones above
    /// it, and an existing directory is fine (like `mkdir -p`). Says whether
    /// `path` itself was created.
    pub async fn mkdir(&self, path: &str, parents: bool) -> Result<bool, SftpError> {
        if !parents {
            self.sftp
                .create_dir(path)
                .await
                .map_err(self.fail(format_args!("mkdir '{path}'")))?;
            return Ok(true);
        }
        let mut prefix = if path.starts_with('/') {
            "/".to_owned()
        } else {
            String::new()
        };
        let mut created = false;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            prefix.push_str(part);
            created = match self.lstat(&prefix).await? {
                Some(attrs) if attrs.file_type().is_dir() => false,
                Some(_) => {
                    // a symlink to a directory is fine too, as for mkdir -p
                    let target = self.sftp.metadata(prefix.as_str()).await.ok();
                    if !target.is_some_and(|a| a.file_type().is_dir()) {
                        return Err(SftpError::new(
                            SftpStatus::Unsuitable,
                            &self.server,
                            format_args!("mkdir '{path}': '{prefix}' exists and is not a directory"),
                        ));
                    }
                    false
                }
                None => match self.sftp.create_dir(prefix.as_str()).await {
                    Ok(()) => true,
                    // somebody else made it in between
                    Err(_) if self.lstat(&prefix).await?.is_some_and(|a| a.file_type().is_dir()) => false,
                    Err(e) => {
                        return Err(SftpError::from_lib(
                            &self.server,
                            format_args!("mkdir '{prefix}'"),
                            e,
                        ))
                    }
                },
            };
            prefix.push('/');
        }
        Ok(created)
    }

    /// Removes `path`: a file or symlink, an empty directory, or with
    /// `recursive` a directory and everything in it (symlinks inside are
    /// removed, never followed). Returns how many entries were removed.
    pub async fn remove(&self, path: &str, recursive: bool) -> Result<u64, SftpError> {
        let Some(attrs) = self.lstat(path).await? else {
            return Err(SftpError::new(
                SftpStatus::NoSuchFile,
                &self.server,
                format_args!("remove '{path}'"),
            ));
        };
        if !attrs.file_type().is_dir() {
            self.sftp
                .remove_file(path)
                .await
                .map_err(self.fail(format_args!("remove '{path}'")))?;
            return Ok(1);
        }
        if !recursive {
            self.sftp
                .remove_dir(path)
                .await
                .map_err(self.fail(format_args!("rmdir '{path}' (not empty? use recursive)")))?;
            return Ok(1);
        }
        // Depth first without recursion: a directory is removed once its
        // entries are (it is pushed back behind them).
        let mut removed = 0;
        let mut stack = vec![(path.trim_end_matches('/').to_owned(), false)];
        while let Some((dir, listed)) = stack.pop() {
            if listed {
                self.sftp
                    .remove_dir(dir.as_str())
                    .await
                    .map_err(self.fail(format_args!("rmdir '{dir}'")))?;
                removed += 1;
                continue;
            }
            stack.push((dir.clone(), true));
            let entries = self
                .sftp
                .read_dir(dir.as_str())
                .await
                .map_err(self.fail(format_args!("list '{dir}'")))?;
            for entry in entries {
                let child = format!("{dir}/{}", entry.file_name());
                if entry.metadata().file_type().is_dir() {
                    stack.push((child, false));
                } else {
                    self.sftp
                        .remove_file(child.as_str())
                        .await
                        .map_err(self.fail(format_args!("remove '{child}'")))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Renames `from` to `to`; refused when `to` exists (SFTP v3 rename).
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), SftpError> {
        if self.lstat(to).await?.is_some() {
            return Err(SftpError::new(
                SftpStatus::Failure,
                &self.server,
                format_args!("rename '{from}' to '{to}': the target exists"),
            ));
        }
        self.sftp
            .rename(from, to)
            .await
            .map_err(self.fail(format_args!("rename '{from}' to '{to}'")))
    }

    /// Reads all of file `path`, refusing files larger than `max` bytes
    /// (also one that grows past `max` while being read).
    pub async fn read_small(&self, path: &str, max: u64) -> Result<Vec<u8>, SftpError> {
        self.read_capped(path, max).await?.map_err(|size| {
            SftpError::new(
                SftpStatus::Unsuitable,
                &self.server,
                format_args!(
                    "'{path}' is at least {size} bytes; inline downloads are limited to {max} bytes \
                     (64 KiB frames): use GET /api/v1/bmx5/files"
                ),
            )
        })
    }

    /// Reads all of file `path` when it has at most `max` bytes; a larger
    /// file (or one that grows past `max` while being read) is
    /// `Ok(Err(size))` and only `max + 1` bytes of it are ever held.
    pub async fn read_capped(&self, path: &str, max: u64) -> Result<Result<Vec<u8>, u64>, SftpError> {
        let (file, size) = self.open_file(path).await?;
        if size > max {
            return Ok(Err(size));
        }
        let mut data = Vec::with_capacity(size as usize);
        file.take(max + 1)
            .read_to_end(&mut data)
            .await
            .map_err(|e| SftpError::from_io(&self.server, format_args!("read '{path}'"), e))?;
        if data.len() as u64 > max {
            return Ok(Err(data.len() as u64));
        }
        Ok(Ok(data))
    }

    /// SHA-256 (lowercase hex) and length of file `path`, read in 64 KiB
    /// chunks: memory stays bounded whatever the file's size.
    pub async fn sha256(&self, path: &str) -> Result<(String, u64), SftpError> {
        let (file, _) = self.open_file(path).await?;
        digest::sha256_reader(file, |_| {})
            .await
            .map_err(|e| SftpError::from_io(&self.server, format_args!("read '{path}'"), e))
    }

    /// Opens regular file `path` for reading; returns it and its size.
    async fn open_file(&self, path: &str) -> Result<(File, u64), SftpError> {
        let file = self
            .sftp
            .open(path)
            .await
            .map_err(self.fail(format_args!("open '{path}'")))?;
        let attrs = file
            .metadata()
            .await
            .map_err(self.fail(format_args!("stat '{path}'")))?;
        if attrs.file_type().is_dir() {
            return Err(SftpError::new(
                SftpStatus::Unsuitable,
                &self.server,
                format_args!("'{path}' is a directory"),
            ));
        }
        Ok((file, attrs.size.unwrap_or(0)))
    }

    /// Opens file `path` for a streamed download. The returned
    /// [`RemoteFile`] keeps the connection alive until it is dropped.
    pub async fn open_read(self: Arc<Self>, path: &str) -> Result<RemoteFile, SftpError> {
        let (file, size) = self.open_file(path).await?;
        Ok(RemoteFile {
            conn: self,
            file,
            size,
            path: path.to_owned(),
        })
    }

    /// Writes what `body` yields to `path`, replacing it, without ever
    /// leaving a partial file (see [`crate::files::write`]): the bytes go to
    /// a temporary sibling, which is renamed over `path` once `body` ended
    /// cleanly and every write was acknowledged (atomically when the server
    /// has posix-rename), and removed on any failure (an error from `body`
    /// included). A replaced file keeps its permission bits, those of the
    /// file a symlink at `path` points to. Returns the bytes written.
    ///
    /// Run it to completion (in a detached task when the caller may be
    /// cancelled): a future dropped half-way cannot remove its temporary
    /// file.
    pub async fn write_atomic<S, E>(&self, path: &str, mut body: S) -> Result<u64, SftpError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        let mode = write::mode_to_keep(&self.sftp, path)
            .await
            .map_err(self.fail(format_args!("stat '{path}'")))?
            .map_err(|write::IsDir| {
                SftpError::new(
                    SftpStatus::Unsuitable,
                    &self.server,
                    format_args!("'{path}' is a directory"),
                )
            })?;
        let temp = crate::files::temp_names::temp_name_for(path);
        // recorded before it exists: a daemon killed from here on leaves a
        // record, and the next connection removes the file
        let record = self.temp_files.record(&temp, TempKind::Upload).await;
        let mut file = match write::create_temp(&self.sftp, &temp, mode).await {
            Ok(file) => file,
            Err(e) => {
                write::created_nothing(&e, record);
                return Err(self.fail(format_args!("create '{path}'"))(e));
            }
        };

        let written = async {
            let mut written = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    SftpError::new(
                        SftpStatus::Interrupted,
                        &self.server,
                        format_args!("upload of '{path}' ended after {written} bytes: {e}"),
                    )
                })?;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| SftpError::from_io(&self.server, format_args!("write '{path}'"), e))?;
                written += chunk.len() as u64;
            }
            // completes every pending write, then closes the handle
            file.shutdown()
                .await
                .map_err(|e| SftpError::from_io(&self.server, format_args!("write '{path}'"), e))?;
            let posix = self
                .posix
                .get_or_init(|| write::posix_rename_session(&self.session))
                .await;
            write::replace(&self.sftp, posix.as_ref(), &temp, path)
                .await
                .map_err(self.fail(format_args!("rename into '{path}'")))?;
            Ok(written)
        }
        .await;
        match written {
            Ok(_) => record.done(),
            Err(_) => {
                // close the handle (if still open) first so the server lets
                // go of the file
                drop(file);
                if write::remove_temp(&self.sftp, &self.server, &temp).await.is_ok() {
                    record.done();
                }
            }
        }
        written
    }

    /// Creates `path` exclusively (fails if anything, a symlink included,
    /// is there: O_EXCL), with permission bits `mode`, and writes `content`.
    /// Used for scripts: `mode` 0700 keeps other users out.
    pub async fn create_private(&self, path: &str, content: &[u8], mode: u32) -> Result<(), SftpError> {
        // exactly `mode`, never wider: create_temp sets the bits again after
        // the server's umask
        let mut file = write::create_temp(&self.sftp, path, Some(mode))
            .await
            .map_err(self.fail(format_args!("create '{path}'")))?;
        let result = async {
            file.write_all(content)
                .await
                .map_err(|e| SftpError::from_io(&self.server, format_args!("write '{path}'"), e))?;
            file.shutdown()
                .await
                .map_err(|e| SftpError::from_io(&self.server, format_args!("write '{path}'"), e))
        }
        .await;
        if result.is_err() {
            drop(file);
            let _ = self.sftp.remove_file(path).await;
        }
        result
    }

    /// Removes file `path`; a file that is already gone is not an error.
    pub async fn remove_file_if_exists(&self, path: &str) -> Result<(), SftpError> {
        match self.sftp.remove_file(path).await {
            Ok(()) => Ok(()),
            Err(SftpLibError::Status(s)) if s.status_code == StatusCode::NoSuchFile => Ok(()),
            Err(e) => Err(SftpError::from_lib(
                &self.server,
                format_args!("remove '{path}'"),
                e,
            )),
        }
    }
}

impl Drop for SftpConn {
    fn drop(&mut self) {
        if self.session.is_closed() {
            return;
        }
        // No runtime means the process is ending, and the socket with it.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let session = self.session.clone();
            rt.spawn(async move {
                let _ = session.disconnect().await;
            });
        }
    }
}

/// A remote file open for a streamed download; holds its connection.
pub struct RemoteFile {
    conn: Arc<SftpConn>,
    file: File,
    size: u64,
    path: String,
}

impl RemoteFile {
    /// The file's size when it was opened.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Streams `len` bytes from offset `start` in chunks of at most 64 KiB.
    /// Memory stays bounded: a chunk is read only when the consumer asks
    /// for the next one. The stream ends early with an error if the file
    /// shrank; dropping it ends the connection.
    pub async fn into_stream(
        mut self,
        start: u64,
        len: u64,
    ) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + 'static, SftpError> {
        if start > 0 {
            self.file.seek(SeekFrom::Start(start)).await.map_err(|e| {
                SftpError::from_io(&self.conn.server, format_args!("seek '{}'", self.path), e)
            })?;
        }
        Ok(futures_util::stream::try_unfold(
            (self, len),
            |(mut this, remaining)| async move {
                if remaining == 0 {
                    return Ok(None);
                }
                let want = remaining.min(READ_CHUNK as u64) as usize;
                let mut buf = BytesMut::zeroed(want);
                let n = this.file.read(&mut buf).await?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("'{}' ended {remaining} bytes early", this.path),
                    ));
                }
                buf.truncate(n);
                Ok(Some((buf.freeze(), (this, remaining - n as u64))))
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_are_the_last_component() {
        assert_eq!(base_name("/a/b/c.txt"), "c.txt");
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(base_name("c"), "c");
        assert_eq!(base_name("/"), "/");
    }
}
