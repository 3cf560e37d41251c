//! Who may do what with an operator terminal or any PTY: the second
//! question after the access table's role (`crate::auth::table`), about
//! one terminal or PTY, asked with the same rule as every server
//! ([`crate::auth::rejudge::judge`]: the role, then the server's tags).
//! One place for the WebSocket domain (`ws::terminal`), the PTY list
//! (`GET /api/v1/ptys`) and the re-judging of connections:
//! - the owner may do everything with its terminal while it may still use
//!   the server as an operator;
//! - a user it is shared with may co-type (`type`, an operator now) or
//!   watch (`watch`, or `type` held by less than an operator), while the
//!   server is in its scope;
//! - admins may watch any PTY; anyone may watch their own PTYs.

use pinkpage_actors::access::{Need, Principal, Role};
use pinkpage_actors::pty::book::PtyInfo;
use pinkpage_actors::terminal::book::{ShareMode, TerminalEntry};
use pinkpage_actors::{AppError, ErrorCode};

use crate::auth::rejudge;
use crate::settings::Settings;

/// What a user may do with one terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    /// Its owner: everything.
    Owner,
    /// A co-typist: attach, type, resize.
    Type,
    /// A watcher: `terminal_watch` only.
    Watch,
}

impl Right {
    pub fn as_str(self) -> &'static str {
        match self {
            Right::Owner => "owner",
            Right::Type => "type",
            Right::Watch => "watch",
        }
    }
}

/// 10003 with `why`.
pub fn forbidden(why: impl Into<String>) -> AppError {
    AppError::with_detail(ErrorCode::Forbidden, why.into())
}

/// What `who`, as it is now, may do with `entry`; 10003 (at a request) or
/// 10010 (re-judged: `judged`) saying why not.
pub fn terminal_right(
    settings: &Settings,
    who: &Principal,
    entry: &TerminalEntry,
) -> Result<Right, AppError> {
    let servers = [entry.server.as_str()];
    if entry.owner == who.user {
        rejudge::judge(settings, who, Need::Operator, &servers)?;
        return Ok(Right::Owner);
    }
    match entry.share_of(&who.user) {
        Some(mode) => {
            rejudge::judge(settings, who, Need::Viewer, &servers)?;
            let types = mode == ShareMode::Type && who.meets(Need::Operator);
            Ok(if types { Right::Type } else { Right::Watch })
        }
        None => Err(forbidden(format!(
            "terminal belongs to {} and is not shared with {}",
            entry.owner, who.user
        ))),
    }
}

/// Whether `who`, as it is now, may watch PTY `info` (`entry`: the
/// operator terminal it is, if one).
pub fn may_watch(
    settings: &Settings,
    who: &Principal,
    info: &PtyInfo,
    entry: Option<&TerminalEntry>,
) -> Result<(), AppError> {
    let servers = [info.server.as_str()];
    if who.role == Role::Admin {
        return rejudge::judge(settings, who, Need::Admin, &servers);
    }
    if info.user == who.user {
        return rejudge::judge(settings, who, Need::Viewer, &servers);
    }
    match entry {
        Some(entry) => terminal_right(settings, who, entry).map(|_| ()),
        None => Err(forbidden(format!(
            "this PTY is {}'s; only admins may watch other users' commands",
            info.user
        ))),
    }
}

/// A refusal at a request: what re-judging calls 10010 is 10003 here
/// (the caller asks for something it may not have, nothing was taken away).
pub fn at_request(e: AppError) -> AppError {
    if e.code == ErrorCode::AccessChanged {
        forbidden(e.detail.unwrap_or_default())
    } else {
        e
    }
}
