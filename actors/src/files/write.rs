//! The one way Pink-Page writes a file over SFTP, shared by BMX5 uploads
//! (REST streaming and inline `sftp_upload`, through
//! [`SftpConn::write_atomic`](crate::files::sftp::SftpConn::write_atomic))
//! and the transfer relay:
//!
//! 1. the bytes go to a hidden temporary sibling of the target
//!    (`temp_names::temp_name_for`: same directory, so the rename never crosses file
//!    systems; at most `NAME_MAX` bytes, so long names still work),
//!    created exclusively ([`create_temp`]);
//! 2. once complete, it is renamed over the target ([`replace`]):
//!    atomically with `posix-rename@openssh.com` when the server offers it
//!    ([`posix_rename_session`]), else by removing the target first, which
//!    leaves a moment with no file but never a partial one;
//! 3. on any failure the temporary file is removed ([`remove_temp`]); the
//!    callers run the whole write to completion (detached tasks, or the
//!    relay's cleanup in `stopped()`), so cancelling never leaves it.
//!
//! The mode of a file being replaced is read with `stat`, which follows a
//! symlink to the file it names ([`mode_to_keep`]): the symlink's own bits
//! (0777) would widen a private file.
//!
//! Errors are russh-sftp's; each caller words them in its own catalogue
//! code (52000 for BMX5, 24000 for transfers).

use russh_sftp::client::error::Error as SftpLibError;
use russh_sftp::client::fs::File;
use russh_sftp::client::{RawSftpSession, SftpSession};
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};

use crate::ssh::SshSession;

/// The OpenSSH extension that renames over an existing file atomically.
pub const POSIX_RENAME: &str = "posix-rename@openssh.com";
/// Opens a second, low-level SFTP channel on `session` for
/// `posix-rename@openssh.com` (russh-sftp's session has no call for it),
/// and keeps it only when the server offers the extension. `None` means
/// [`replace`] falls back to remove + rename.
pub async fn posix_rename_session(session: &SshSession) -> Option<RawSftpSession> {
    match session.sftp_raw().await {
        Ok((raw, version)) if version.extensions.get(POSIX_RENAME).is_some_and(|v| v == "1") => Some(raw),
        Ok((raw, _)) => {
            let _ = raw.close_session();
            None
        }
        Err(e) => {
            log::info!(error = e.to_string(); "no low-level sftp channel; replacing files without posix-rename");
            None
        }
    }
}

/// The permission bits a write to `path` keeps: those of the file there
/// now, read with `stat` (a symlink is followed to its file, whose bits
/// are the ones that matter), or `None` when there is nothing (or only a
/// dangling symlink); `Ok(Err(IsDir))` when it is a directory, which a
/// file cannot replace.
pub async fn mode_to_keep(
    sftp: &SftpSession,
    path: &str,
) -> Result<Result<Option<u32>, IsDir>, SftpLibError> {
    match sftp.metadata(path).await {
        Ok(attrs) if attrs.file_type().is_dir() => Ok(Err(IsDir)),
        Ok(attrs) => Ok(Ok(attrs.permissions.map(|p| p & 0o7777))),
        Err(SftpLibError::Status(s)) if s.status_code == StatusCode::NoSuchFile => Ok(Ok(None)),
        Err(e) => Err(e),
    }
}

/// The target of a write is a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsDir;

/// Creates `temp` exclusively (nothing, a symlink included, may be there)
/// for writing. With `mode`, the file gets exactly those bits: the server
/// applies its umask at creation, so they are set again on the open handle
/// before any byte is written.
pub async fn create_temp(sftp: &SftpSession, temp: &str, mode: Option<u32>) -> Result<File, SftpLibError> {
    let file = open_exclusive(sftp, temp, mode).await?;
    if let Some(mode) = mode {
        let exact = FileAttributes {
            permissions: Some(mode),
            ..FileAttributes::empty()
        };
        if let Err(e) = file.set_metadata(exact).await {
            drop(file);
            let _ = sftp.remove_file(temp).await;
            return Err(e);
        }
    }
    Ok(file)
}

/// Creates `temp` exclusively for writing with at most the bits of `mode`:
/// the server's umask may take some away, and nothing sets them again. For
/// a caller that sets the final bits itself before the rename (a transfer,
/// on the open handle after its last write): one request less than
/// [`create_temp`] with a mode, and the file is never wider than `mode`
/// while incomplete.
pub async fn create_temp_at_most(sftp: &SftpSession, temp: &str, mode: u32) -> Result<File, SftpLibError> {
    open_exclusive(sftp, temp, Some(mode)).await
}

/// The exclusive create both share: `mode` goes with the request, and the
/// server applies it with its umask.
async fn open_exclusive(sftp: &SftpSession, temp: &str, mode: Option<u32>) -> Result<File, SftpLibError> {
    let attrs = FileAttributes {
        permissions: mode,
        ..FileAttributes::empty()
    };
    sftp.open_with_flags_and_attributes(
        temp,
        OpenFlags::CREATE | OpenFlags::EXCLUDE | OpenFlags::WRITE,
        attrs,
    )
    .await
}

/// After [`create_temp`] failed with `error`: drops the file's record when
/// the server answered (an exclusive create it refused made no file, and a
/// file it made is removed again by `create_temp`), so a typo in a
/// directory does not send the next connection looking for it; otherwise
/// (the session failed: the file may exist) the record stays a leftover.
pub fn created_nothing(error: &SftpLibError, record: crate::files::temp_files::TempRecord) {
    if matches!(error, SftpLibError::Status(_)) {
        record.done();
    }
}

/// Renames the complete `temp` over `target`: atomically with `posix`
/// (the session from [`posix_rename_session`]); otherwise SFTP v3 rename,
/// which refuses an existing target, so the target is removed first.
pub async fn replace(
    sftp: &SftpSession,
    posix: Option<&RawSftpSession>,
    temp: &str,
    target: &str,
) -> Result<(), SftpLibError> {
    if let Some(raw) = posix {
        let mut data = Vec::with_capacity(8 + temp.len() + target.len());
        for s in [temp, target] {
            data.extend_from_slice(&(s.len() as u32).to_be_bytes());
            data.extend_from_slice(s.as_bytes());
        }
        return match raw.extended(POSIX_RENAME, data).await? {
            Packet::Status(s) if s.status_code == StatusCode::Ok => Ok(()),
            Packet::Status(s) => Err(s.into()),
            _ => Err(SftpLibError::UnexpectedPacket),
        };
    }
    match sftp.rename(temp, target).await {
        Ok(()) => return Ok(()),
        // refused because the target exists: remove it and rename again
        Err(first) => match sftp.symlink_metadata(target).await {
            Ok(_) => {}
            Err(_) => return Err(first),
        },
    }
    match sftp.remove_file(target).await {
        Ok(()) => {}
        Err(SftpLibError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {}
        Err(e) => return Err(e),
    }
    sftp.rename(temp, target).await
}

/// Removes a temporary file a failed or cancelled write leaves; a failure
/// is logged (there is nobody left to tell) and returned.
pub async fn remove_temp(sftp: &SftpSession, server: &str, temp: &str) -> Result<(), SftpLibError> {
    match sftp.remove_file(temp).await {
        Ok(()) => Ok(()),
        Err(SftpLibError::Status(s)) if s.status_code == StatusCode::NoSuchFile => Ok(()),
        Err(e) => {
            log::error!(server = server, temp = temp, error = e.to_string();
                "could not remove the temporary file of a failed write");
            Err(e)
        }
    }
}
