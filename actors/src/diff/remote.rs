//! The DIFF engine's network part: fetch what is compared from two servers
//! at once, then hand it to the pure comparison in [`crate::diff`].
//!
//! (Over 450 lines with its tests: the three fetches share their limits and
//! error wording, which read best in one place.)
//!
//! - files: both read over SFTP concurrently (at most `max_bytes` each),
//!   diffed on a blocking thread;
//! - directories: both walked over SFTP concurrently (symlinks are not
//!   followed), at most `max_entries` per side; contents hashed over SFTP
//!   in 64 KiB chunks when asked, never held whole;
//! - commands: run on both servers in parallel without a PTY, output
//!   capped, stopped (TERM, then KILL) when the caller's cancel fires; on a
//!   server in shell mode, typed into its login shell on a PTY instead
//!   (stdout and stderr merged into the compared output, closed on cancel).
//!
//! SFTP connections come from the caller's [`SftpPool`] (the WebSocket
//! client's own, or one made for a REST request). Every failure is a
//! [`DiffError`] naming the side it happened on.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::sync::watch;

use crate::batch::group::own_group;
use crate::diff::compare::{self, CompareBy, DirDiff, FileDiff, Input, Side, Tree};
use crate::error::{AppError, ErrorCode};
use crate::files::pool::SftpPool;
use crate::files::sftp::{EntryKind, SftpConn, SftpError, SftpStatus};
use crate::server::{CommandMode, ServerSpec};
use crate::shell_mode::capture::run_captured;
use crate::ssh::{self, ExecLimits, SshOptions};

/// Files hashed at the same time per side in a `sha256` directory diff.
const HASH_CONCURRENCY: usize = 4;
/// Bytes of each command's stderr kept.
pub const COMMAND_STDERR_MAX: usize = 64 * 1024;

/// A failed diff: the error clients see, the side it happened on, and the
/// SFTP status when it was an SFTP failure (what the web side needs to
/// choose its answer: the engine knows nothing of HTTP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct DiffError {
    /// Which side failed; `None` for failures of the comparison itself.
    pub side: Option<Side>,
    /// The SFTP status, for SFTP failures.
    pub status: Option<SftpStatus>,
    /// Whether the cause is a limit (file size, entry count).
    pub too_large: bool,
    /// 53000 with `left: ...` / `right: ...` at the start of the detail;
    /// connection and command errors keep their own codes (2xxxx) with the
    /// side added to their detail.
    pub error: AppError,
}

impl DiffError {
    /// A 53000 on `side` saying `what`.
    pub fn on(side: Side, what: impl fmt::Display) -> Self {
        DiffError {
            side: Some(side),
            status: None,
            too_large: false,
            error: AppError::with_detail(ErrorCode::DiffFailed, format!("{}: {what}", side.as_str())),
        }
    }

    /// `err` (an SSH or SFTP failure) on `side`: the side goes in front of
    /// its detail; SFTP failures become 53000, connection failures keep
    /// their code.
    fn wrap(side: Side, err: AppError, status: Option<SftpStatus>) -> Self {
        let code = match status {
            Some(SftpStatus::NotConnected) | None => err.code,
            Some(_) => ErrorCode::DiffFailed,
        };
        let detail = match err.detail {
            Some(d) => format!("{}: {d}", side.as_str()),
            None => format!("{}: {}", side.as_str(), err.code.message()),
        };
        DiffError {
            side: Some(side),
            status,
            too_large: false,
            error: AppError::with_detail(code, detail),
        }
    }

    fn sftp(side: Side, e: SftpError) -> Self {
        DiffError::wrap(side, e.error, Some(e.status))
    }

    fn limit(side: Side, what: impl fmt::Display) -> Self {
        DiffError {
            too_large: true,
            ..DiffError::on(side, what)
        }
    }

    fn internal(what: impl fmt::Display) -> Self {
        DiffError {
            side: None,
            status: None,
            too_large: false,
            error: AppError::with_detail(ErrorCode::Internal, what.to_string()),
        }
    }
}

impl From<DiffError> for AppError {
    fn from(e: DiffError) -> Self {
        e.error
    }
}

/// A path on a server: one side of a file or directory comparison.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server.
    pub server: Arc<ServerSpec>,
    /// The path; relative paths start at the login user's home.
    pub path: String,
}

impl Target {
    /// `server:path`, the label of this side in a unified diff.
    pub fn label(&self) -> String {
        format!("{}:{}", self.server.name, self.path)
    }
}

async fn conn(
    cache: &SftpPool,
    opts: &SshOptions,
    side: Side,
    t: &Target,
) -> Result<Arc<SftpConn>, DiffError> {
    cache
        .get(&t.server, opts)
        .await
        .map_err(|e| DiffError::sftp(side, e))
}

async fn read_side(
    cache: &SftpPool,
    opts: &SshOptions,
    side: Side,
    t: &Target,
    max_bytes: u64,
) -> Result<Vec<u8>, DiffError> {
    let c = conn(cache, opts, side, t).await?;
    match c.read_capped(&t.path, max_bytes).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(size)) => Err(DiffError::limit(
            side,
            format_args!(
                "server '{}': '{}' is {size} bytes; files are compared up to {max_bytes} bytes \
                 (PINKPAGE_DIFF_MAX_BYTES)",
                t.server.name, t.path
            ),
        )),
        Err(e) => Err(DiffError::sftp(side, e)),
    }
}

/// Compares file `left` with file `right` (see [`compare::diff_bytes`]); each
/// may have at most `max_bytes`. Both are read at once; when both fail, the
/// left side's error is the one reported.
pub async fn diff_files(
    cache: &SftpPool,
    opts: &SshOptions,
    left: &Target,
    right: &Target,
    context: usize,
    max_bytes: u64,
) -> Result<FileDiff, DiffError> {
    let (l, r) = futures_util::join!(
        read_side(cache, opts, Side::Left, left, max_bytes),
        read_side(cache, opts, Side::Right, right, max_bytes),
    );
    let (l, r) = (l?, r?);
    let (ll, rl) = (left.label(), right.label());
    let (le, re) = (left.server.encoding, right.server.encoding);
    // up to seconds of CPU for 10 MiB files: off the event loop
    tokio::task::spawn_blocking(move || {
        compare::diff_bytes(
            Input {
                label: &ll,
                bytes: &l,
                encoding: le,
            },
            Input {
                label: &rl,
                bytes: &r,
                encoding: re,
            },
            context,
        )
    })
    .await
    .map_err(|e| DiffError::internal(format_args!("diff task: {e}")))
}

/// How `diff_dirs` walks and compares.
#[derive(Debug, Clone, Copy)]
pub struct DirOptions {
    /// Descend into subdirectories.
    pub recursive: bool,
    /// With `recursive`, how deep: 1 is the top level only; `None` is all.
    pub max_depth: Option<u32>,
    /// What files are compared by.
    pub compare: CompareBy,
    /// Most entries walked per side.
    pub max_entries: usize,
}

/// `root` joined with the relative `rel`.
fn join(root: &str, rel: &str) -> String {
    if rel.is_empty() {
        return root.to_owned();
    }
    format!("{}/{rel}", root.trim_end_matches('/'))
}

/// Walks directory `t.path`: every entry (relative path -> entry) down to
/// the depth asked, breadth first, symlinks not followed.
async fn walk(
    cache: &SftpPool,
    sshopts: &SshOptions,
    side: Side,
    t: &Target,
    o: DirOptions,
) -> Result<Tree, DiffError> {
    let c = conn(cache, sshopts, side, t).await?;
    let root = c.stat(&t.path).await.map_err(|e| DiffError::sftp(side, e))?;
    if root.kind != EntryKind::Dir {
        return Err(DiffError {
            status: Some(SftpStatus::Unsuitable),
            ..DiffError::on(
                side,
                format_args!("server '{}': '{}' is not a directory", t.server.name, t.path),
            )
        });
    }
    let mut tree = Tree::new();
    let mut queue = std::collections::VecDeque::from([(String::new(), 1u32)]);
    while let Some((rel, depth)) = queue.pop_front() {
        let entries = c
            .list(&join(&t.path, &rel))
            .await
            .map_err(|e| DiffError::sftp(side, e))?;
        for e in entries {
            let child = if rel.is_empty() {
                e.name.clone()
            } else {
                format!("{rel}/{}", e.name)
            };
            let deeper = o.recursive && o.max_depth.is_none_or(|m| depth < m);
            if e.kind == EntryKind::Dir && deeper {
                queue.push_back((child.clone(), depth + 1));
            }
            tree.insert(child, e);
            if tree.len() > o.max_entries {
                return Err(DiffError::limit(
                    side,
                    format_args!(
                        "server '{}': more than {} entries under '{}'; compare a smaller tree \
                         or set max_depth",
                        t.server.name, o.max_entries, t.path
                    ),
                ));
            }
        }
    }
    Ok(tree)
}

/// Compares directory `left` with directory `right`.
pub async fn diff_dirs(
    cache: &SftpPool,
    opts: &SshOptions,
    left: &Target,
    right: &Target,
    o: DirOptions,
) -> Result<DirDiff, DiffError> {
    let (l, r) = futures_util::join!(
        walk(cache, opts, Side::Left, left, o),
        walk(cache, opts, Side::Right, right, o),
    );
    let (l, r) = (l?, r?);
    let to_hash: Vec<String> = l
        .iter()
        .filter(|(p, le)| r.get(*p).is_some_and(|re| compare::needs_hash(le, re, o.compare)))
        .map(|(p, _)| p.clone())
        .collect();
    let hashes: BTreeMap<String, (String, String)> = if to_hash.is_empty() {
        BTreeMap::new()
    } else {
        let (lc, rc) = (
            conn(cache, opts, Side::Left, left).await?,
            conn(cache, opts, Side::Right, right).await?,
        );
        futures_util::stream::iter(to_hash)
            .map(|rel| {
                let (lc, rc) = (lc.clone(), rc.clone());
                let (lp, rp) = (join(&left.path, &rel), join(&right.path, &rel));
                async move {
                    let (lh, rh) = futures_util::join!(lc.sha256(&lp), rc.sha256(&rp));
                    let lh = lh.map_err(|e| DiffError::sftp(Side::Left, e))?.0;
                    let rh = rh.map_err(|e| DiffError::sftp(Side::Right, e))?.0;
                    Ok::<_, DiffError>((rel, (lh, rh)))
                }
            })
            .buffer_unordered(HASH_CONCURRENCY)
            .try_collect()
            .await?
    };
    Ok(compare::compare_trees(&l, &r, o.compare, &hashes))
}

/// What `diff_command` answers: the diff of the two stdouts (labels
/// `server:stdout`) and how each run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandDiff {
    /// The command, as run on both.
    pub command: String,
    /// Comparison of the two stdouts.
    #[serde(flatten)]
    pub output: FileDiff,
    /// Left exit status (absent when a signal ended it).
    pub left_exit_status: Option<u32>,
    /// Right exit status.
    pub right_exit_status: Option<u32>,
    /// The signal that ended the left command, if any.
    pub left_exit_signal: Option<String>,
    /// The signal that ended the right command, if any.
    pub right_exit_signal: Option<String>,
    /// Left stderr, decoded (at most 64 KiB).
    pub left_stderr: String,
    /// Right stderr, decoded (at most 64 KiB).
    pub right_stderr: String,
    /// Left stdout or stderr was longer than its cap (the diff covers the
    /// kept part only).
    pub left_truncated: bool,
    /// Right stdout or stderr was longer than its cap.
    pub right_truncated: bool,
}

/// Bounds of `diff_command`.
#[derive(Debug, Clone, Copy)]
pub struct CommandOptions {
    /// Bytes of stdout kept per side.
    pub max_stdout: usize,
    /// Run time per side.
    pub timeout: Duration,
}

async fn run_side(
    server: &ServerSpec,
    opts: &SshOptions,
    side: Side,
    command: &str,
    o: CommandOptions,
    mut cancel: watch::Receiver<()>,
) -> Result<ssh::ExecOutput, DiffError> {
    let session = ssh::connect(server, opts)
        .await
        .map_err(|e| DiffError::wrap(side, e, None))?;
    let limits = ExecLimits {
        max_stdout: o.max_stdout,
        max_stderr: COMMAND_STDERR_MAX,
        timeout: Some(o.timeout),
    };
    // fires when the caller sends or drops its sender
    let cancelled = async move { while cancel.changed().await.is_ok() {} };
    let out = match server.command_mode {
        // its own process group, killed whole on cancel or when the channel
        // closes (crate::batch::group)
        CommandMode::Exec => session.exec_until(&own_group(command), limits, cancelled).await,
        CommandMode::Shell => run_captured(&session, command, limits, cancelled).await,
    };
    let _ = session.disconnect().await;
    out.map_err(|e| DiffError::wrap(side, e, None))
}

/// Runs `command` on `left` and `right` in parallel (no PTY, through the
/// login shell) and compares their stdouts. Both commands are stopped
/// (TERM, then KILL) when `cancel`'s sender is dropped or sends.
pub async fn diff_command(
    opts: &SshOptions,
    command: &str,
    left: &Arc<ServerSpec>,
    right: &Arc<ServerSpec>,
    o: CommandOptions,
    cancel: watch::Receiver<()>,
) -> Result<CommandDiff, DiffError> {
    let (l, r) = futures_util::join!(
        run_side(left, opts, Side::Left, command, o, cancel.clone()),
        run_side(right, opts, Side::Right, command, o, cancel),
    );
    let (l, r) = (l?, r?);
    let (ll, rl) = (format!("{}:stdout", left.name), format!("{}:stdout", right.name));
    let (le, re) = (left.encoding, right.encoding);
    let (lo, ro) = (l.stdout.clone(), r.stdout.clone());
    let output = tokio::task::spawn_blocking(move || {
        compare::diff_bytes(
            Input {
                label: &ll,
                bytes: &lo,
                encoding: le,
            },
            Input {
                label: &rl,
                bytes: &ro,
                encoding: re,
            },
            compare::DEFAULT_CONTEXT,
        )
    })
    .await
    .map_err(|e| DiffError::internal(format_args!("diff task: {e}")))?;
    Ok(CommandDiff {
        command: command.to_owned(),
        output,
        left_exit_status: l.exit_status,
        right_exit_status: r.exit_status,
        left_exit_signal: l.exit_signal,
        right_exit_signal: r.exit_signal,
        left_stderr: le.decode_without_bom_handling(&l.stderr).0.into_owned(),
        right_stderr: re.decode_without_bom_handling(&r.stderr).0.into_owned(),
        left_truncated: l.stdout_truncated || l.stderr_truncated,
        right_truncated: r.stdout_truncated || r.stderr_truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_their_side_and_keep_connection_codes() {
        let missing = DiffError::sftp(
            Side::Right,
            SftpError::new(SftpStatus::NoSuchFile, "mypap1d", "open '/x'"),
        );
        assert_eq!(missing.error.code, ErrorCode::DiffFailed);
        assert_eq!(
            missing.error.detail.as_deref(),
            Some("right: no such file: server 'mypap1d': open '/x'")
        );
        assert_eq!(missing.status, Some(SftpStatus::NoSuchFile));

        let refused = DiffError::sftp(
            Side::Left,
            SftpError {
                status: SftpStatus::NotConnected,
                error: AppError::with_detail(ErrorCode::SshConnectionFailed, "server 'a': refused"),
            },
        );
        assert_eq!(refused.error.code, ErrorCode::SshConnectionFailed);
        assert!(refused.error.detail.unwrap().starts_with("left: "));

        let big = DiffError::limit(Side::Left, "too big");
        assert_eq!(big.error.code, ErrorCode::DiffFailed);
        assert!(big.too_large);
    }

    #[test]
    fn paths_join_under_the_root() {
        assert_eq!(join("/data/", "a/b"), "/data/a/b");
        assert_eq!(join("/", "etc"), "/etc");
        assert_eq!(join("rel", "x"), "rel/x");
        assert_eq!(join("/data", ""), "/data");
    }
}
