//! The operator terminals' wire types (`/ws/v1/terminal`): what a client
//! may send and what the domain sends back (besides the common frames).
//! The names are WAVE2's ("Watching and terminals"); `docs/protocol.md`
//! shows each, checked against the daemon by `tests/api/protocol_doc.rs`.

use pinkpage_actors::ErrorBody;
use serde::{Deserialize, Serialize};

/// What a terminal client may send (besides `ping`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TerminalRequest {
    /// Open a shell of one's own.
    TerminalOpen {
        /// Server name.
        server: String,
        /// Columns (1-1000, default 80).
        cols: Option<u32>,
        /// Rows (1-1000, default 24).
        rows: Option<u32>,
        /// A command to run on the PTY instead of a login shell.
        command: Option<String>,
    },
    /// Keystrokes or pasted text.
    TerminalInput {
        /// Which terminal.
        terminal_id: String,
        /// The text (`\u0003` is Ctrl-C).
        data: String,
    },
    /// The terminal's size changed.
    TerminalResize {
        /// Which terminal.
        terminal_id: String,
        /// Columns (1-1000).
        cols: u32,
        /// Rows (1-1000).
        rows: u32,
    },
    /// Close it: the remote shell ends.
    TerminalClose {
        /// Which terminal.
        terminal_id: String,
    },
    /// Follow it (again) from offset `since`.
    TerminalAttach {
        /// Which terminal.
        terminal_id: String,
        /// The first offset wanted; all the scrollback when absent.
        since: Option<u64>,
    },
    /// Stop following it on this connection; it runs on detached.
    TerminalDetach {
        /// Which terminal.
        terminal_id: String,
    },
    /// The caller's terminals and those shared with it.
    TerminalList,
    /// Let `user` watch or co-type.
    TerminalShare {
        /// Which terminal.
        terminal_id: String,
        /// Who.
        user: String,
        /// `watch` or `type`.
        mode: String,
    },
    /// End `user`'s share.
    TerminalUnshare {
        /// Which terminal.
        terminal_id: String,
        /// Who.
        user: String,
    },
    /// Watch any PTY read-only, from its scrollback on.
    TerminalWatch {
        /// Which PTY.
        pty_id: String,
    },
    /// Stop watching it.
    TerminalUnwatch {
        /// Which PTY.
        pty_id: String,
    },
}

/// Every request type, for 31001 and the access table.
pub const TYPES: &[&str] = &[
    "terminal_open",
    "terminal_input",
    "terminal_resize",
    "terminal_close",
    "terminal_attach",
    "terminal_detach",
    "terminal_list",
    "terminal_share",
    "terminal_unshare",
    "terminal_watch",
    "terminal_unwatch",
];

/// One terminal in `terminal_list`.
#[derive(Debug, Serialize)]
pub struct Listed {
    /// Its id.
    pub terminal_id: String,
    /// Its PTY.
    pub pty_id: String,
    /// Whose.
    pub owner: String,
    /// The server.
    pub server: String,
    /// The command (empty: a login shell).
    pub command: String,
    /// When it was opened (RFC 3339).
    pub started: String,
    /// `attached` or `detached`.
    pub state: &'static str,
    /// Connections attached now.
    pub attached: usize,
    /// Output bytes so far (the next offset).
    pub bytes: u64,
    /// Seconds since the last input or output.
    pub idle_s: f64,
    /// What the caller may do: `owner`, `type` or `watch`.
    pub access: &'static str,
    /// Who it is shared with (the owner sees them).
    pub shared_with: Vec<Share>,
}

/// A share, as listed.
#[derive(Debug, Serialize)]
pub struct Share {
    /// Who.
    pub user: String,
    /// `watch` or `type`.
    pub mode: &'static str,
}

/// What the terminal domain sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TerminalReply<'a> {
    /// The shell is open; output follows from offset 0.
    TerminalOpened {
        /// Its id.
        terminal_id: String,
        /// Its PTY (what watchers name).
        pty_id: String,
        /// The server.
        server: &'a str,
        /// The command, empty for a login shell.
        command: &'a str,
    },
    /// Output from `offset` on.
    TerminalOutput {
        /// Which terminal.
        terminal_id: String,
        /// Offset of `data`'s first byte (UTF-8 bytes from the start).
        offset: u64,
        /// The text, `\r` and escapes as they came.
        data: &'a str,
    },
    /// Attached; output from `from` on follows.
    TerminalAttached {
        /// Which terminal.
        terminal_id: String,
        /// The first offset that follows.
        from: u64,
        /// True when output before `from` that was asked for is gone.
        cut: bool,
        /// The output so far, where live output continues.
        end: u64,
    },
    /// This connection no longer follows the terminal: it asked
    /// (`terminal_detach`), or its share was withdrawn (`error`).
    TerminalDetached {
        /// Which terminal.
        terminal_id: String,
        /// Why it was detached, when it did not ask.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
    },
    /// The size was applied.
    TerminalResized {
        /// Which terminal.
        terminal_id: String,
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
    /// The terminal closed; nothing of it follows.
    TerminalClosed {
        /// Which terminal.
        terminal_id: String,
        /// `exit`, `closed`, `idle`, `detach_expired`, `access_changed`,
        /// `shutdown` or `error`.
        reason: &'a str,
        /// The error behind the reason (54005 idle, 54006 detached too
        /// long, 10010, 30004, a connection failure).
        error: Option<ErrorBody>,
        /// Output bytes in all.
        bytes: u64,
        /// The shell's (or the command's) exit status, for `exit`.
        exit_status: Option<u32>,
    },
    /// It closes for idleness in `closes_in_s` unless something happens.
    TerminalIdleWarning {
        /// Which terminal.
        terminal_id: String,
        /// Seconds left.
        closes_in_s: f64,
    },
    /// The caller's terminals and those shared with it.
    TerminalList {
        /// Oldest first.
        terminals: Vec<Listed>,
    },
    /// A share was made or changed.
    TerminalShared {
        /// Which terminal.
        terminal_id: String,
        /// With whom.
        user: &'a str,
        /// `watch` or `type`.
        mode: &'a str,
    },
    /// A share was ended.
    TerminalUnshared {
        /// Which terminal.
        terminal_id: String,
        /// Whose.
        user: &'a str,
    },
    /// Watching; the scrollback from `from` on follows as `pty_output`.
    TerminalWatching {
        /// Which PTY.
        pty_id: String,
        /// `command`, `script`, `workflow_step` or `terminal`.
        kind: &'a str,
        /// Whose it is.
        user: &'a str,
        /// The server.
        server: &'a str,
        /// The first offset that follows.
        from: u64,
        /// True when older output is gone from the scrollback.
        cut: bool,
    },
    /// Output of a watched PTY.
    PtyOutput {
        /// Which PTY.
        pty_id: String,
        /// Offset of `data`'s first byte.
        offset: u64,
        /// The text.
        data: &'a str,
    },
    /// A watch is over: `ended` (the PTY ended), `behind` (this connection
    /// fell behind and was dropped; watch again), `withdrawn` (a share
    /// revoked, access changed) or `unwatched` (it asked).
    PtyWatchEnded {
        /// Which PTY.
        pty_id: String,
        /// Why.
        reason: &'a str,
    },
}
