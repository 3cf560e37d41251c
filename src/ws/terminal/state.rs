//! The terminal connection's state ([`TerminalConn`]: what it opens,
//! follows and watches) and the id parsing every handler shares. A leaf:
//! the handlers import it, it imports none of them.

use std::collections::HashMap;
use std::sync::Arc;

use actix::Addr;
use pinkpage_actors::pty::feed::{PtyFeed, WatchId};
use pinkpage_actors::terminal::operator::OperatorTerminal;
use pinkpage_actors::{AppError, ErrorCode, PtyId, TerminalId};

use crate::ws::protocol::RequestId;

/// A terminal this connection follows.
pub(crate) struct Following {
    pub(crate) addr: Addr<OperatorTerminal>,
    pub(crate) server: String,
    /// The command rules as this connection's user meets them on the
    /// terminal's server: the lines this connection types are judged with
    /// them (a co-typist with the owner's terminal is judged as
    /// themselves). `None` when no rule can refuse anything.
    pub(crate) typed_lines: Option<pinkpage_actors::policy::line::LineJudge>,
}

/// A PTY this connection watches.
pub(crate) struct Watching {
    pub(crate) watch: WatchId,
    pub(crate) feed: Arc<PtyFeed>,
}

/// Per-connection state. Owned by the connection actor alone.
#[derive(Default)]
pub struct TerminalConn {
    /// Opens not answered yet: the request to answer.
    pub(crate) opening: HashMap<TerminalId, (RequestId, String, String)>,
    /// Attaches not answered yet.
    pub(crate) attaching: HashMap<TerminalId, RequestId>,
    /// Closes asked by this connection of terminals it follows.
    pub(crate) closing: HashMap<TerminalId, RequestId>,
    /// Terminals it follows.
    pub(crate) following: HashMap<TerminalId, Following>,
    /// PTYs it watches.
    pub(crate) watching: HashMap<PtyId, Watching>,
}

/// The terminal id in `text`: 10001 when it is not one.
pub(crate) fn terminal_id(text: &str) -> Result<TerminalId, AppError> {
    TerminalId::parse(text)
        .ok_or_else(|| AppError::with_detail(ErrorCode::Validation, "terminal_id is not a terminal id"))
}

/// The PTY id in `text`: 10001 when it is not one.
pub(crate) fn pty_id(text: &str) -> Result<PtyId, AppError> {
    PtyId::parse(text).ok_or_else(|| AppError::with_detail(ErrorCode::Validation, "pty_id is not a PTY id"))
}

/// A terminal dimension: `n`, or `default` when absent; 10001 outside
/// 1-1000.
pub(crate) fn size(n: Option<u32>, default: u32, what: &str) -> Result<u32, AppError> {
    let n = n.unwrap_or(default);
    if !(1..=1000).contains(&n) {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            format!("{what} must be between 1 and 1000"),
        ));
    }
    Ok(n)
}
