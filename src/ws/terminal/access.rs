//! What an access change withdraws from one connection: the terminals it
//! follows and the PTYs it watches that it no longer may, judged by
//! `crate::terminals::access` (the one place that decides).
//!
//! A terminal's owner losing access, and a share's user losing it, are the
//! daemon's (`crate::terminals`): they close the terminal or end the
//! share for every connection at once. Here a connection withdraws what
//! it follows or watches that it no longer may.

use pinkpage_actors::terminal::operator::Detach;
use pinkpage_actors::ErrorCode;

use super::state::TerminalConn;
use super::wire::TerminalReply;
use crate::auth::rejudge;
use crate::terminals::access::{may_watch, terminal_right, Right};
use crate::ws::connection::{WsConnection, WsCtx};

/// Access changed: what this connection follows or watches and no longer
/// may is withdrawn (10010), each with its frame and audit row.
pub(super) fn access_changed(conn: &mut WsConnection<TerminalConn>, ctx: &mut WsCtx<TerminalConn>) {
    let settings = conn.state.settings().clone();
    let following: Vec<_> = conn.domain.following.keys().copied().collect();
    for id in following {
        let Some(entry) = conn.state.terminals.get(id) else {
            continue; // closed: its terminal_closed is on its way
        };
        if entry.owner == conn.principal.user {
            // the owner's own terminal: the daemon closes it for every
            // connection at once if the owner lost it (`crate::terminals`),
            // and its terminal_closed says why; meanwhile input is refused
            // by the same judgement at each keystroke
            continue;
        }
        let verdict = match terminal_right(&settings, &conn.principal, &entry) {
            Ok(Right::Watch) => Err(rejudge::withdrawn("the share no longer allows typing")),
            Ok(_) => Ok(()),
            Err(e) if e.code == ErrorCode::Forbidden => Err(rejudge::withdrawn("the share was revoked")),
            Err(e) => Err(e),
        };
        let Err(why) = verdict else {
            continue;
        };
        if let Some(f) = conn.domain.following.remove(&id) {
            f.addr.do_send(Detach { conn: conn.id });
        }
        conn.withdraw(ctx, &why, &None, "terminal", &[entry.server.as_str()]);
        let frame = TerminalReply::TerminalDetached {
            terminal_id: id.to_string(),
            error: Some(why.body()),
        };
        conn.send(ctx, &frame, &None);
    }
    let watching: Vec<_> = conn.domain.watching.keys().copied().collect();
    for pty_id in watching {
        let Some((info, _)) = conn.state.ptys.get(pty_id) else {
            continue;
        };
        let entry = info.terminal_id.and_then(|t| conn.state.terminals.get(t));
        let Err(why) = may_watch(&settings, &conn.principal, &info, entry.as_ref()) else {
            continue;
        };
        let why = if why.code == ErrorCode::Forbidden {
            rejudge::withdrawn("the PTY is no longer shared with you")
        } else {
            why
        };
        if let Some(w) = conn.domain.watching.remove(&pty_id) {
            w.feed.unwatch(w.watch);
        }
        conn.withdraw(ctx, &why, &None, "watch", &[info.server.as_str()]);
        let frame = TerminalReply::PtyWatchEnded {
            pty_id: pty_id.to_string(),
            reason: "withdrawn",
        };
        conn.send(ctx, &frame, &None);
    }
}
