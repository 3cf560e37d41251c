//! The BMX5 wire types: what a client sends ([`Bmx5Request`]) and what the
//! domain answers ([`Bmx5Reply`]), as `#[serde(tag = "type")]` enums, and
//! the limit inline files live within. Parsed once at the edge; handlers
//! see these, never JSON.

use pinkpage_actors::files::sftp::Entry;
use serde::{Deserialize, Serialize};

/// Largest file `sftp_download` / `sftp_upload` carry inline: its base64
/// (4/3 larger) plus the frame's other fields fit in a 64 KiB frame.
pub const INLINE_MAX_BYTES: u64 = 46 * 1024;

/// What a BMX5 client may send (besides `ping`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Bmx5Request {
    /// List a directory.
    SftpList {
        /// Server name.
        server: String,
        /// Directory; relative paths start at the login user's home.
        path: String,
    },
    /// Describe one file (following symlinks).
    SftpStat {
        /// Server name.
        server: String,
        /// The file.
        path: String,
    },
    /// Create a directory.
    SftpMkdir {
        /// Server name.
        server: String,
        /// The directory.
        path: String,
        /// Create missing parents too; an existing directory is then fine.
        #[serde(default)]
        parents: bool,
    },
    /// Remove a file, a symlink or a directory.
    SftpRemove {
        /// Server name.
        server: String,
        /// What to remove.
        path: String,
        /// Remove a directory with everything in it.
        #[serde(default)]
        recursive: bool,
    },
    /// Rename (move) a file or directory; the target must not exist.
    SftpRename {
        /// Server name.
        server: String,
        /// Current path.
        from: String,
        /// New path.
        to: String,
    },
    /// Write a small file, replacing it.
    SftpUpload {
        /// Server name.
        server: String,
        /// The file.
        path: String,
        /// Its bytes, base64 (standard alphabet, padded).
        data: String,
    },
    /// Read a small file.
    SftpDownload {
        /// Server name.
        server: String,
        /// The file.
        path: String,
    },
    /// Upload a script to a private temporary file, run it, remove it.
    ScriptExecute {
        /// Server name.
        server: String,
        /// The script's text; or
        script: Option<String>,
        /// the name of a file in `PINKPAGE_SCRIPTS_DIR`.
        script_name: Option<String>,
        /// Arguments, each passed to the script exactly.
        #[serde(default)]
        args: Vec<String>,
        /// Kill the script after this many seconds.
        timeout_s: Option<f64>,
        /// Output flush interval.
        throttle_ms: Option<u64>,
    },
    /// Stop the running script.
    ScriptCancel,
}

/// What the BMX5 domain sends (besides the common frames).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Bmx5Reply {
    /// A directory's entries, sorted by name.
    SftpListResult {
        /// Server name.
        server: String,
        /// The directory listed, absolute, as the server resolves it
        /// (SFTP `realpath`: `.` is the login directory).
        path: String,
        /// `{name, kind, size, mode, mtime}` each.
        entries: Vec<Entry>,
    },
    /// One file.
    SftpStatResult {
        /// Server name.
        server: String,
        /// The path, as asked.
        path: String,
        /// `{name, kind, size, mode, mtime}`.
        entry: Entry,
    },
    /// The directory exists now.
    SftpMkdirResult {
        /// Server name.
        server: String,
        /// The directory.
        path: String,
        /// Whether it was created (false: it was there already).
        created: bool,
    },
    /// Removed.
    SftpRemoveResult {
        /// Server name.
        server: String,
        /// What was removed.
        path: String,
        /// How many entries were removed.
        removed: u64,
    },
    /// Renamed.
    SftpRenameResult {
        /// Server name.
        server: String,
        /// Old path.
        from: String,
        /// New path.
        to: String,
    },
    /// Written.
    SftpUploadResult {
        /// Server name.
        server: String,
        /// The file.
        path: String,
        /// Bytes written.
        size: u64,
    },
    /// A file's bytes.
    SftpDownloadResult {
        /// Server name.
        server: String,
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// Its bytes, base64.
        data: String,
    },
    /// The script was uploaded and is starting.
    ScriptStarted {
        /// Server name.
        server: String,
        /// The private temporary file it runs from (removed at the end).
        remote_path: String,
    },
    /// Output of the script (stdout and stderr, as a terminal shows them).
    ScriptOutput {
        /// Server name.
        server: String,
        /// Decoded text.
        data: String,
    },
    /// The script is over and its temporary file removed.
    ScriptComplete {
        /// Server name.
        server: String,
        /// Its exit status, when it exited.
        exit_status: Option<u32>,
        /// `exit`, `timeout`, `cancelled` or `error`.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::protocol::MAX_FRAME_BYTES;
    use base64::Engine as _;

    #[test]
    fn an_inline_file_at_the_limit_fits_in_a_frame() {
        let data = base64::engine::general_purpose::STANDARD.encode(vec![0u8; INLINE_MAX_BYTES as usize]);
        let frame = serde_json::to_string(&Bmx5Reply::SftpDownloadResult {
            server: "s".repeat(64),
            path: "p".repeat(1024),
            size: INLINE_MAX_BYTES,
            data,
        })
        .unwrap();
        assert!(frame.len() < MAX_FRAME_BYTES, "{}", frame.len());
    }
}
