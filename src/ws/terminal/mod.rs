//! The operator terminals' domain (`/ws/v1/terminal`): each operator's own
//! shells, outside the session lock, several over one WebSocket; attach
//! and detach by offset; shares; read-only watching of any PTY.
//!
//! - [`wire`]: the frames; `state`: what one connection keeps.
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
pub(crate) mod state;
mod watch;
pub mod wire;

use pinkpage_actors::terminal::operator::Detach;

pub use self::state::TerminalConn;
use self::wire::TerminalRequest;
use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::RequestId;

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
