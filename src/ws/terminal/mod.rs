//! The operator terminals' domain (`/ws/v1/terminal`): each operator's own
//! shells, outside the session lock, several over one WebSocket; attach
//! and detach by offset; shares; read-only watching of any PTY.
//!
//! - [`wire`]: the frames.
//! - [`open`]: `terminal_open`, `_input`, `_resize`, `_close`, `_attach`,
//!   `_detach`, `_list`.
//! - [`watch`]: `terminal_share`, `_unshare`, `_watch`, `_unwatch`.
//! - [`events`]: what the terminals and the watched PTYs send this
//!   connection, as frames.
//! - [`access`]: who may do what with a terminal or a PTY, and what an
//!   access change withdraws from this connection.
//!
//! Who owns what: the terminals are actors of their own
//! (`pinkpage_actors::terminal::operator`), listed in the daemon's
//! `TerminalBook`; they outlive this connection. This connection owns
//! only [`TerminalConn`]: which terminals it follows and which PTYs it
//! watches. It handles one message at a time, so its maps change only
//! here; a terminal it follows learns that it left from `stopping` (a
//! `Detach` each), and a watched feed forgets it on `unwatch`.

mod access;
mod events;
mod open;
mod watch;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;

use actix::Addr;
use pinkpage_actors::pty::feed::{PtyFeed, WatchId};
use pinkpage_actors::terminal::operator::{Detach, OperatorTerminal};
use pinkpage_actors::{AppError, ErrorCode, PtyId, TerminalId};

use self::wire::TerminalRequest;
use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::RequestId;

/// A terminal this connection follows.
pub(super) struct Following {
    addr: Addr<OperatorTerminal>,
    server: String,
}

/// A PTY this connection watches.
pub(super) struct Watching {
    watch: WatchId,
    feed: Arc<PtyFeed>,
}

/// Per-connection state. Owned by the connection actor alone.
#[derive(Default)]
pub struct TerminalConn {
    /// Opens not answered yet: the request to answer.
    opening: HashMap<TerminalId, (RequestId, String, String)>,
    /// Attaches not answered yet.
    attaching: HashMap<TerminalId, RequestId>,
    /// Closes asked by this connection of terminals it follows.
    closing: HashMap<TerminalId, RequestId>,
    /// Terminals it follows.
    following: HashMap<TerminalId, Following>,
    /// PTYs it watches.
    watching: HashMap<PtyId, Watching>,
}

impl Domain for TerminalConn {
    type Request = TerminalRequest;
    const TYPES: &'static [&'static str] = wire::TYPES;
    const WELCOME: &'static str = "Connected to Terminal WebSocket";
    const NAME: &'static str = "terminal";
    const PATH: &'static str = "/ws/v1/terminal";

    fn handle(conn: &mut WsConnection<Self>, req: TerminalRequest, rid: RequestId, ctx: &mut WsCtx<Self>) {
        use TerminalRequest::*;
        let result = match req {
            TerminalOpen {
                server,
                cols,
                rows,
                command,
            } => open::open(conn, server, (cols, rows), command, &rid, ctx),
            TerminalInput { terminal_id, data } => open::input(conn, &terminal_id, data, &rid, ctx),
            TerminalResize {
                terminal_id,
                cols,
                rows,
            } => open::resize(conn, &terminal_id, cols, rows, &rid, ctx),
            TerminalClose { terminal_id } => open::close(conn, &terminal_id, &rid, ctx),
            TerminalAttach { terminal_id, since } => open::attach(conn, &terminal_id, since, &rid, ctx),
            TerminalDetach { terminal_id } => open::detach(conn, &terminal_id, &rid, ctx),
            TerminalList => open::list(conn, &rid, ctx),
            TerminalShare {
                terminal_id,
                user,
                mode,
            } => watch::share(conn, &terminal_id, &user, &mode, &rid, ctx),
            TerminalUnshare { terminal_id, user } => watch::unshare(conn, &terminal_id, &user, &rid, ctx),
            TerminalWatch { pty_id } => watch::watch(conn, &pty_id, &rid, ctx),
            TerminalUnwatch { pty_id } => watch::unwatch(conn, &pty_id, &rid, ctx),
        };
        if let Err(e) = result {
            conn.send_error(ctx, &e, &rid);
        }
    }

    fn access_changed(conn: &mut WsConnection<Self>, ctx: &mut WsCtx<Self>) {
        access::access_changed(conn, ctx);
    }

    fn shutting_down(conn: &mut WsConnection<Self>, ctx: &mut WsCtx<Self>) {
        events::shutting_down(conn, ctx);
    }

    /// The connection is gone: its terminals run on detached, its watches
    /// end. No task of this domain holds the session lock.
    fn stopping(conn: &mut WsConnection<Self>, _: &mut WsCtx<Self>) -> Vec<pinkpage_actors::task::Done> {
        for (_, f) in conn.domain.following.drain() {
            f.addr.do_send(Detach { conn: conn.id });
        }
        for (_, w) in conn.domain.watching.drain() {
            w.feed.unwatch(w.watch);
        }
        Vec::new()
    }
}

/// The terminal id in `text`: 10001 when it is not one.
fn terminal_id(text: &str) -> Result<TerminalId, AppError> {
    TerminalId::parse(text)
        .ok_or_else(|| AppError::with_detail(ErrorCode::Validation, "terminal_id is not a terminal id"))
}

/// The PTY id in `text`: 10001 when it is not one.
fn pty_id(text: &str) -> Result<PtyId, AppError> {
    PtyId::parse(text).ok_or_else(|| AppError::with_detail(ErrorCode::Validation, "pty_id is not a PTY id"))
}
