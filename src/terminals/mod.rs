//! [`TerminalWarden`]: what happens to operator terminals outside any
//! connection: they outlive their connections, so the daemon itself
//! re-judges them when access changes, closes them when it stops, and
//! writes the audit row of each one's end.
//!
//! - Access changed (WAVE2, "Access that changes"): a terminal whose owner
//!   was disabled or removed, or may no longer use its server as an
//!   operator, closes with 10010 (attached or detached alike; a sign-out is
//!   not a change of the account, so the owner's terminals stay, detached);
//!   a share whose user may no longer have it ends, and that user's
//!   connections stop following and watching at once.
//! - The daemon stopping: every terminal closes with 30004 (its clients
//!   were told by their connections), and the shutdown waits for their
//!   remote shells to be closed ([`crate::in_flight`]).
//! - A terminal ended, however: a `terminal.end` audit row (its reason,
//!   bytes, error code).
//!
//! Owns nothing but addresses: the terminals are in the `TerminalBook`,
//! whose lock is taken for each read, never across an await.

pub mod access;

use std::sync::Arc;

use actix::{Actor, Addr, AsyncContext, Context, Handler};
use pinkpage_actors::access::Need;
use pinkpage_actors::broadcast::{BroadcastActor, Event, Join};
use pinkpage_actors::terminal::book::TerminalBook;
use pinkpage_actors::terminal::operator::{Close, CloseReason, DropUser, TerminalEnded};
use pinkpage_actors::{AppError, ConnectionId, ErrorCode};

use crate::auth::{rejudge, Identity};
use crate::journal::Journal;
use crate::records::{NewAuditEvent, Outcome};
use crate::settings::live::LiveSettings;

/// See the module docs.
pub struct TerminalWarden {
    terminals: TerminalBook,
    identity: Arc<Identity>,
    /// The settings now: a terminal is judged against the servers as a
    /// reload last left them.
    settings: Arc<LiveSettings>,
    journal: Journal,
    broadcast: Addr<BroadcastActor>,
    in_flight: Arc<crate::in_flight::InFlight>,
}

impl TerminalWarden {
    /// A warden of `terminals`.
    pub fn new(
        terminals: TerminalBook,
        identity: Arc<Identity>,
        settings: Arc<LiveSettings>,
        journal: Journal,
        broadcast: Addr<BroadcastActor>,
        in_flight: Arc<crate::in_flight::InFlight>,
    ) -> Self {
        TerminalWarden {
            terminals,
            identity,
            settings,
            journal,
            broadcast,
            in_flight,
        }
    }

    /// Judges every terminal and share again (see the module docs).
    fn rejudge(&self) {
        for entry in self.terminals.all() {
            let Some(addr) = entry.addr.clone() else {
                continue; // still opening: judged at its next change
            };
            let servers = [entry.server.as_str()];
            let owner = rejudge::account_by_name(&self.identity, &entry.owner).and_then(|now| {
                rejudge::judge(&*self.settings.current(), &now, Need::Operator, &servers).map(|_| now)
            });
            if let Err(why) = owner {
                log::warn!(
                    terminal_id = entry.terminal_id.to_string().as_str(),
                    user = &*entry.owner,
                    server = entry.server.as_str(),
                    reason = why.detail.as_deref().unwrap_or("");
                    "terminal closed: access changed"
                );
                let mut event = NewAuditEvent::new("system", "access.withdrawn")
                    .in_domain("terminal")
                    .on(entry.terminal_id.to_string())
                    .by(Some(&entry.owner), None);
                event.ended(Outcome::Refused, Some(why.code.code()));
                event.server = Some(entry.server.clone());
                event.detail = Some(serde_json::json!({
                    "what": "terminal",
                    "terminal_id": entry.terminal_id.to_string(),
                    "reason": why.detail,
                }));
                self.journal.audit(event);
                addr.do_send(Close {
                    reason: CloseReason::AccessChanged,
                    error: Some(why),
                    done: None,
                });
                continue;
            }
            // a share needs the user and the server in its scope; typing
            // also needs an operator, which each connection re-judges
            for user in entry.shares.keys() {
                let need = Need::Viewer;
                let verdict = rejudge::account_by_name(&self.identity, user)
                    .and_then(|now| rejudge::judge(&*self.settings.current(), &now, need, &servers));
                let Err(why) = verdict else {
                    continue;
                };
                self.terminals.unshare(entry.terminal_id, user);
                let mut event = NewAuditEvent::new("system", "terminal.unshare")
                    .on(entry.terminal_id.to_string())
                    .by(Some(user), None);
                event.ended(Outcome::Refused, Some(why.code.code()));
                event.server = Some(entry.server.clone());
                event.detail = Some(serde_json::json!({
                    "terminal_id": entry.terminal_id.to_string(),
                    "owner": &*entry.owner,
                    "reason": why.detail,
                }));
                self.journal.audit(event);
                addr.do_send(DropUser {
                    user: user.clone(),
                    error: why,
                });
            }
        }
    }

    /// The daemon stops: every terminal closes, and the shutdown waits for
    /// their remote shells (bounded by each one's cleanup timeout).
    fn close_all(&self) {
        let error = AppError::with_detail(
            ErrorCode::ShuttingDown,
            "the daemon is stopping; the terminal's remote shell was closed",
        );
        let mut waits = Vec::new();
        for entry in self.terminals.all() {
            let Some(addr) = entry.addr else { continue };
            let (tx, rx) = tokio::sync::oneshot::channel();
            addr.do_send(Close {
                reason: CloseReason::Shutdown,
                error: Some(error.clone()),
                done: Some(tx),
            });
            waits.push(rx);
        }
        if waits.is_empty() {
            return;
        }
        log::info!(terminals = waits.len(); "closing operator terminals for the shutdown");
        let guard = self.in_flight.enter();
        actix::spawn(async move {
            futures_util::future::join_all(waits).await;
            drop(guard);
        });
    }
}

impl Actor for TerminalWarden {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.broadcast.do_send(Join {
            id: ConnectionId::new(),
            recipient: ctx.address().recipient(),
        });
    }
}

impl Handler<Event> for TerminalWarden {
    type Result = ();

    fn handle(&mut self, event: Event, _: &mut Context<Self>) {
        // the shutdown asks directly ([`CloseForShutdown`]), so it knows
        // the closes are in flight before it waits for them
        if let Event::AccessChanged = event {
            self.rejudge();
        }
    }
}

/// The daemon stops: close every terminal. Answered once the closes are
/// sent and counted in flight, so the shutdown's wait for work in flight
/// cannot end before they do (the broadcast's `ShuttingDown` reached the
/// warden after that wait had already found nothing in flight, and the
/// terminal then stopped with the system, as `closed`).
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct CloseForShutdown;

impl Handler<CloseForShutdown> for TerminalWarden {
    type Result = ();

    fn handle(&mut self, _: CloseForShutdown, _: &mut Context<Self>) {
        self.close_all();
    }
}

impl Handler<TerminalEnded> for TerminalWarden {
    type Result = ();

    fn handle(&mut self, ended: TerminalEnded, _: &mut Context<Self>) {
        let mut event = NewAuditEvent::new("system", "terminal.end")
            .on(ended.terminal_id.to_string())
            .by(Some(&ended.owner), None);
        let code = ended.error.as_ref().map(|e| e.code.code());
        event.ended(
            match ended.reason {
                CloseReason::Exit | CloseReason::Closed => Outcome::Ok,
                CloseReason::Idle | CloseReason::DetachExpired | CloseReason::Shutdown => Outcome::Cancelled,
                CloseReason::AccessChanged => Outcome::Refused,
                CloseReason::Error => Outcome::Failed,
            },
            code,
        );
        event.server = Some(ended.server);
        event.bytes = Some(ended.bytes as i64);
        event.detail = Some(serde_json::json!({
            "terminal_id": ended.terminal_id.to_string(),
            "pty_id": ended.pty_id.to_string(),
            "reason": ended.reason.as_str(),
            "error": ended.error.map(|e| e.code.code()),
        }));
        self.journal.audit(event);
    }
}
