//! What an `OperatorTerminal` is opened with, the messages it takes and
//! the events it sends: the terminal's whole interface, apart from its
//! actor (`super::operator`), so readers find every message in one place.

use std::sync::Arc;
use std::time::Duration;

use actix::{Message, Recipient};
use tokio::sync::oneshot;

use super::seat::{TerminalSeat, TerminalStats};
use crate::error::AppError;
use crate::ids::{ConnectionId, PtyId, TerminalId};
use crate::pty::book::PtyRegistration;
use crate::server::ServerSpec;
use crate::ssh::{PtyRequest, SshOptions};

/// What to open, where, and the clocks it runs by.
pub struct TerminalRequest {
    /// The server.
    pub server: Arc<ServerSpec>,
    /// How to connect.
    pub ssh: Arc<SshOptions>,
    /// A command to run on the PTY; empty for an interactive login shell.
    pub command: String,
    /// Terminal size and type.
    pub pty: PtyRequest,
    /// Output flush interval.
    pub throttle: Duration,
    /// Its place in the terminal book (freed when the actor is dropped).
    pub seat: TerminalSeat,
    /// Its numbers in the book.
    pub stats: Arc<TerminalStats>,
    /// Its PTY in the PTY book, with the scrollback ring.
    pub registration: PtyRegistration,
    /// Its recording, when it is recorded (it records while detached too).
    pub recorder: Option<crate::pty::record::Recorder>,
    /// Under command rules: the judge of each typed line
    /// (`crate::policy::line`), the owner's; an [`Input`] may bring its
    /// typist's own.
    pub typed_lines: Option<crate::policy::line::LineJudge>,
    /// How long it stays detached before it closes.
    pub detach: Duration,
    /// How long it may be idle before it closes.
    pub idle: Duration,
    /// The connection that opened it: attached from offset 0, told
    /// [`TerminalEvent::Opened`] first.
    pub opener: Follow,
    /// Told once it ended, whoever was attached (the audit row of its end).
    pub on_ended: Option<Recipient<TerminalEnded>>,
}

/// A terminal ended (sent after its followers were told).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TerminalEnded {
    /// The terminal.
    pub terminal_id: TerminalId,
    /// Its PTY.
    pub pty_id: PtyId,
    /// Whose it was.
    pub owner: Arc<str>,
    /// The server.
    pub server: String,
    /// Why.
    pub reason: CloseReason,
    /// The error behind the reason.
    pub error: Option<AppError>,
    /// Output bytes in all.
    pub bytes: u64,
}

impl std::fmt::Debug for TerminalRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminalRequest")
            .field("server", &self.server.name)
            .field("terminal_id", &self.seat.terminal_id())
            .finish()
    }
}

/// Why a terminal closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The shell (or the command) exited.
    Exit,
    /// Its owner closed it.
    Closed,
    /// No input and no output for the idle time (54005).
    Idle,
    /// Detached for longer than the detach time (54006).
    DetachExpired,
    /// Its owner may no longer use the server, or was disabled (10010).
    AccessChanged,
    /// The daemon is stopping (30004).
    Shutdown,
    /// It could not open, or the connection failed.
    Error,
}

impl CloseReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Exit => "exit",
            CloseReason::Closed => "closed",
            CloseReason::Idle => "idle",
            CloseReason::DetachExpired => "detach_expired",
            CloseReason::AccessChanged => "access_changed",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Error => "error",
        }
    }
}

/// What a terminal tells an attached connection.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum TerminalEvent {
    /// The shell is open (to the opener, before any output).
    Opened {
        /// The terminal.
        terminal_id: TerminalId,
        /// Its PTY.
        pty_id: PtyId,
    },
    /// Output from `offset` on.
    Output {
        /// The terminal.
        terminal_id: TerminalId,
        /// Offset of the first byte of `data`.
        offset: u64,
        /// The text.
        data: String,
    },
    /// This connection is attached; output from `from` on follows (sent
    /// before that output, in the same mailbox).
    Attached {
        /// The terminal.
        terminal_id: TerminalId,
        /// Where it starts.
        at: Attached,
    },
    /// It will close for idleness in this long unless something happens.
    IdleWarning {
        /// The terminal.
        terminal_id: TerminalId,
        /// How long is left.
        closes_in: Duration,
    },
    /// This connection is no longer attached (its share was revoked or
    /// its access withdrawn); the terminal runs on.
    Detached {
        /// The terminal.
        terminal_id: TerminalId,
        /// Why (10010 or the revoked share).
        error: AppError,
    },
    /// The terminal closed; nothing of it follows.
    Closed {
        /// The terminal.
        terminal_id: TerminalId,
        /// Why.
        reason: CloseReason,
        /// The error behind the reason, if any.
        error: Option<AppError>,
        /// Output bytes in all.
        bytes: u64,
        /// The shell's (or the command's) exit status, when it exited.
        exit_status: Option<u32>,
    },
}

/// A connection that attaches.
#[derive(Debug, Clone)]
pub struct Follow {
    /// The connection.
    pub conn: ConnectionId,
    /// Its user.
    pub user: Arc<str>,
    /// Where its events go.
    pub sink: Recipient<TerminalEvent>,
    /// Whether it may type (the owner, a co-typist).
    pub can_type: bool,
}

/// Attach connection `follow.conn` (again, if it already is), sending it
/// the output from `since` on (all the scrollback when `None`).
#[derive(Debug, Message)]
#[rtype(result = "Result<Attached, AppError>")]
pub struct Attach {
    /// Who.
    pub follow: Follow,
    /// The first offset wanted.
    pub since: Option<u64>,
}

/// Where an attach starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attached {
    /// The first offset the connection will get.
    pub from: u64,
    /// True when output before `from` that was asked for is gone.
    pub cut: bool,
    /// The output so far (where live output continues).
    pub end: u64,
}

/// Connection `conn` no longer follows (its socket dropped, or it asked).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Detach {
    /// Who.
    pub conn: ConnectionId,
}

/// Keystrokes from connection `conn`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct Input {
    /// Who types (must be attached and allowed to).
    pub conn: ConnectionId,
    /// What.
    pub data: String,
    /// The command rules as the typist meets them: an Enter of theirs is
    /// judged with these (else with the terminal's own, its owner's).
    pub typed_lines: Option<crate::policy::line::LineJudge>,
}

/// A new terminal size from connection `conn`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct Resize {
    /// Who (must be attached and allowed to type).
    pub conn: ConnectionId,
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
}

/// Close now. `done` is told once the remote shell's channel and session
/// were closed (or the cleanup gave up).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Close {
    /// Why.
    pub reason: CloseReason,
    /// The error behind it, sent with `Closed`.
    pub error: Option<AppError>,
    /// Told after the cleanup.
    pub done: Option<oneshot::Sender<()>>,
}

/// Detach every connection of `user` and end their watches: their share
/// was revoked or their access withdrawn (`error` says which).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DropUser {
    /// Whose connections.
    pub user: String,
    /// Why, sent to each.
    pub error: AppError,
}
