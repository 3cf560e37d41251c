//! What terminals and watched PTYs send this connection, written as
//! frames. A terminal sends its events to the connections that follow it
//! in order (`Opened` or `Attached` before any output), so the frames keep
//! that order.

use actix::Handler;
use pinkpage_actors::pty::feed::PtyEvent;
use pinkpage_actors::terminal::operator::{CloseReason, TerminalEvent};
use pinkpage_actors::{AppError, ErrorCode};

use super::state::TerminalConn;
use super::wire::TerminalReply;
use crate::ws::connection::{WsConnection, WsCtx};

impl Handler<TerminalEvent> for WsConnection<TerminalConn> {
    type Result = ();

    fn handle(&mut self, event: TerminalEvent, ctx: &mut WsCtx<TerminalConn>) {
        match event {
            TerminalEvent::Opened { terminal_id, pty_id } => {
                let Some((rid, server, command)) = self.domain.opening.remove(&terminal_id) else {
                    return;
                };
                if let Some(entry) = self.state.terminals.get(terminal_id) {
                    if let Some(addr) = entry.addr {
                        let typed_lines = super::open::typed_lines(self, &server);
                        self.domain.following.insert(
                            terminal_id,
                            super::state::Following {
                                addr,
                                server: server.clone(),
                                typed_lines,
                            },
                        );
                    }
                }
                let frame = TerminalReply::TerminalOpened {
                    terminal_id: terminal_id.to_string(),
                    pty_id: pty_id.to_string(),
                    server: &server,
                    command: &command,
                };
                self.send(ctx, &frame, &rid);
            }
            TerminalEvent::Attached { terminal_id, at } => {
                let rid = self.domain.attaching.remove(&terminal_id).unwrap_or(None);
                let frame = TerminalReply::TerminalAttached {
                    terminal_id: terminal_id.to_string(),
                    from: at.from,
                    cut: at.cut,
                    end: at.end,
                };
                self.send(ctx, &frame, &rid);
            }
            TerminalEvent::Output {
                terminal_id,
                offset,
                data,
            } => {
                if !self.domain.following.contains_key(&terminal_id) {
                    return; // detached meanwhile
                }
                let frame = TerminalReply::TerminalOutput {
                    terminal_id: terminal_id.to_string(),
                    offset,
                    data: &data,
                };
                self.send(ctx, &frame, &None);
            }
            TerminalEvent::IdleWarning {
                terminal_id,
                closes_in,
            } => {
                let frame = TerminalReply::TerminalIdleWarning {
                    terminal_id: terminal_id.to_string(),
                    closes_in_s: closes_in.as_secs_f64(),
                };
                self.send(ctx, &frame, &None);
            }
            TerminalEvent::Detached { terminal_id, error } => {
                if self.domain.following.remove(&terminal_id).is_none() {
                    return;
                }
                let frame = TerminalReply::TerminalDetached {
                    terminal_id: terminal_id.to_string(),
                    error: Some(error.body()),
                };
                self.send(ctx, &frame, &None);
            }
            TerminalEvent::Closed {
                terminal_id,
                reason,
                error,
                bytes,
                exit_status,
            } => {
                if let Some((rid, _, _)) = self.domain.opening.remove(&terminal_id) {
                    // it never opened: the error answers the open
                    let e = error.unwrap_or_else(|| {
                        AppError::with_detail(ErrorCode::SshCommandFailed, "the terminal did not open")
                    });
                    return self.send_error(ctx, &e, &rid);
                }
                self.domain.following.remove(&terminal_id);
                self.domain.attaching.remove(&terminal_id);
                let rid = self.domain.closing.remove(&terminal_id).unwrap_or(None);
                let frame = TerminalReply::TerminalClosed {
                    terminal_id: terminal_id.to_string(),
                    reason: reason.as_str(),
                    error: error.map(|e| e.body()),
                    bytes,
                    exit_status,
                };
                self.send(ctx, &frame, &rid);
            }
        }
    }
}

impl Handler<PtyEvent> for WsConnection<TerminalConn> {
    type Result = ();

    fn handle(&mut self, event: PtyEvent, ctx: &mut WsCtx<TerminalConn>) {
        match event {
            PtyEvent::Output { pty_id, offset, data } => {
                if !self.domain.watching.contains_key(&pty_id) {
                    return; // unwatched meanwhile
                }
                let frame = TerminalReply::PtyOutput {
                    pty_id: pty_id.to_string(),
                    offset,
                    data: &data,
                };
                self.send(ctx, &frame, &None);
            }
            PtyEvent::Ended {
                pty_id,
                watch,
                reason,
            } => {
                match self.domain.watching.get(&pty_id) {
                    Some(w) if w.watch == watch => {}
                    _ => return, // an earlier watch of it
                }
                self.domain.watching.remove(&pty_id);
                let frame = TerminalReply::PtyWatchEnded {
                    pty_id: pty_id.to_string(),
                    reason: reason.as_str(),
                };
                self.send(ctx, &frame, &None);
            }
        }
    }
}

/// The daemon is stopping: each terminal this connection follows is
/// closing (the daemon closes them all); the client is told why before its
/// socket closes.
pub(super) fn shutting_down(conn: &mut WsConnection<TerminalConn>, ctx: &mut WsCtx<TerminalConn>) {
    let error = AppError::with_detail(
        ErrorCode::ShuttingDown,
        "the daemon is stopping; the terminal's remote shell was closed",
    );
    let following: Vec<_> = conn.domain.following.drain().map(|(id, _)| id).collect();
    for id in following {
        let frame = TerminalReply::TerminalClosed {
            terminal_id: id.to_string(),
            reason: CloseReason::Shutdown.as_str(),
            error: Some(error.body()),
            bytes: conn.state.terminals.get(id).map_or(0, |e| e.bytes()),
            exit_status: None,
        };
        conn.send(ctx, &frame, &None);
    }
}
