//! `WsConnection<D>`: the one connection actor every WebSocket domain uses.
//!
//! What it owns: the connection id, the heartbeat clock, and the domain's
//! own state `D` (for STUB: the running shell). Everything else (the lock,
//! the health map) it reaches through actor addresses in [`AppState`].
//! Its frames come whole from its [`FrameReader`](super::reader::FrameReader),
//! which bounds what a message still arriving may hold.
//!
//! Lifecycle:
//! - `started`: registers with the broadcast registry and, in the same
//!   handshake (`.wait`, so no frame is handled before it), sends the
//!   welcome message built from the registry's snapshot; starts the
//!   heartbeat.
//! - text messages: parsed once by [`parse_frame`] into `D::Request`
//!   (after their type's size is checked); `ping` is answered here, bad
//!   frames get their error and the connection stays open, requests go to
//!   [`Domain::handle`].
//! - heartbeat: a ping every `PINKPAGE_WS_HEARTBEAT_S`; a client silent for
//!   `PINKPAGE_WS_TIMEOUT_S` is dropped. A client that stopped reading
//!   stops this actor from being polled at all, so that case is the stall
//!   watchdog's (in `stall.rs`), which reaches the connection's tasks
//!   through its [`ConnWatch`](crate::connections::ConnWatch), not through
//!   this actor.
//! - `stopping`: [`Domain::stopping`] stops the domain's tasks and hands
//!   back their done signals; the registry is told at once, the lock only
//!   once every task is done (at most `REVOKE_TIMEOUT`), so a dropped
//!   client never keeps the lock and no command outlives it. Both messages
//!   are idempotent.

use std::time::Instant;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, ContextFutureSpawner, Handler, StreamHandler,
    WrapFuture,
};
use actix_web::web;
use actix_web_actors::ws;
use pinkpage_actors::access::Principal;
use pinkpage_actors::broadcast::{Event, Join, Leave};
use pinkpage_actors::lock::{ConnectionClosed, REVOKE_TIMEOUT};
use pinkpage_actors::task::Done;
use pinkpage_actors::{AppError, ConnectionId, ErrorCode};
use serde::de::DeserializeOwned;

use super::protocol::{parse_frame_checked, Common, ErrorFrame, Frame, Outgoing, RequestId};
use super::reader::Inbound;
use crate::state::AppState;

/// The WebSocket context of a connection of domain `D`.
pub type WsCtx<D> = ws::WebsocketContext<WsConnection<D>>;

/// A WebSocket domain (`stub`, `bmx4`, ...): its requests and how it
/// handles them. Implementations live in their own files.
pub trait Domain: Sized + Unpin + 'static {
    /// The typed requests, a `#[serde(tag = "type")]` enum.
    type Request: DeserializeOwned;
    /// The `type`s `Request` accepts (to tell 31001 from 31000).
    const TYPES: &'static [&'static str];
    /// The welcome message text.
    const WELCOME: &'static str;
    /// The domain's name in logs (`stub`, `bmx4`, ...).
    const NAME: &'static str;
    /// The endpoint's path, as the access table names it (`/ws/v1/stub`).
    const PATH: &'static str;

    /// Handles one parsed request.
    fn handle(conn: &mut WsConnection<Self>, req: Self::Request, rid: RequestId, ctx: &mut WsCtx<Self>);

    /// Access changed and this connection's credential is still good:
    /// `conn.principal` is the principal as it is now. Re-judges the
    /// domain's running work with [`crate::auth::rejudge`] and withdraws
    /// what it no longer covers ([`WsConnection::withdraw`]).
    fn access_changed(_conn: &mut WsConnection<Self>, _ctx: &mut WsCtx<Self>) {}

    /// The daemon is stopping: the domain's last frames before the
    /// `shutdown` frame and the close (operator terminals say they close).
    fn shutting_down(_conn: &mut WsConnection<Self>, _ctx: &mut WsCtx<Self>) {}

    /// Stops the domain's tasks; called once when the connection stops.
    /// Returns the done signals of the tasks that must end before the
    /// session lock is released (STUB's command or transfer).
    fn stopping(_conn: &mut WsConnection<Self>, _ctx: &mut WsCtx<Self>) -> Vec<Done> {
        Vec::new()
    }
}

/// One WebSocket connection. See the module docs.
pub struct WsConnection<D: Domain> {
    /// Made by the server when the client connected.
    pub id: ConnectionId,
    /// Shared handles (settings, store, actor addresses).
    pub state: web::Data<AppState>,
    /// Who is connected, re-checked whenever access changes (a revoked
    /// credential closes the connection); carries the current role.
    pub principal: Principal,
    /// The client's address, for audit rows.
    pub remote: Option<std::net::IpAddr>,
    /// The domain's own state.
    pub domain: D,
    /// What the daemon keeps about this connection outside the actor (its
    /// live tasks, operation count); shared with the stall watchdog.
    pub watch: std::sync::Arc<crate::connections::ConnWatch>,
    /// When the client last showed a sign of life: a whole message, or a
    /// control frame outside a message (see `ws::reader`).
    last_seen: Instant,
}

impl<D: Domain> WsConnection<D> {
    /// Connection `id` of `principal`, admitted with `watch`.
    pub fn new(
        id: ConnectionId,
        state: web::Data<AppState>,
        principal: Principal,
        remote: Option<std::net::IpAddr>,
        watch: std::sync::Arc<crate::connections::ConnWatch>,
        domain: D,
    ) -> Self {
        WsConnection {
            id,
            state,
            principal,
            remote,
            domain,
            watch,
            last_seen: Instant::now(),
        }
    }

    /// Sends a frame, answering `rid` when given.
    pub fn send(&self, ctx: &mut WsCtx<D>, frame: &impl Outgoing, rid: &RequestId) {
        ctx.text(frame.to_text(rid));
    }

    /// Whether this connection's principal, as it is now, may go on with
    /// work that needs what message type `kind` needs on `servers`; 10010
    /// saying why not ([`crate::auth::rejudge::judge`]).
    pub fn judge(&self, kind: &str, servers: &[&str]) -> Result<(), AppError> {
        let need = crate::auth::table::message_need(D::PATH, kind);
        crate::auth::rejudge::judge(&*self.state.settings(), &self.principal, need, servers)
    }

    /// Tells the client that the work its request `rid` started was
    /// withdrawn (`err`, 10010), logs it and writes its `access.withdrawn`
    /// audit row. The caller has sent the work its stop; the work's own end
    /// frames follow.
    pub fn withdraw(
        &self,
        ctx: &mut WsCtx<D>,
        err: &AppError,
        rid: &RequestId,
        what: &str,
        servers: &[&str],
    ) {
        log::warn!(
            connection_id = self.id.to_string().as_str(),
            domain = D::NAME,
            user = &*self.principal.user,
            code = err.code.code(),
            what = what;
            "running work withdrawn: access changed"
        );
        let mut event = self.audit_event("access.withdrawn");
        event.server = servers.first().map(|s| (*s).to_owned());
        event.ended(crate::records::Outcome::Refused, Some(err.code.code()));
        event.detail = Some(serde_json::json!({
            "what": what,
            "servers": servers,
            "reason": err.detail,
        }));
        self.state.journal.audit(event);
        self.send_error(ctx, err, rid);
    }

    /// The command rules as this connection's user meets them, its audit
    /// rows by this connection; holds are told to the user's connections.
    pub fn rules(&self) -> crate::reviews::check::PolicyCheck {
        self.state.policy_check(
            &self.principal,
            self.id.to_string(),
            self.remote.map(|ip| ip.to_string()),
        )
    }

    /// [`rules`](Self::rules), holds told on this connection as answers to
    /// `rid` (`command_held`, then `command_released`).
    pub fn rules_telling(&self, rid: &RequestId, ctx: &WsCtx<D>) -> crate::reviews::check::PolicyCheck {
        let me = ctx.address().recipient::<ToldHold>();
        let rid = rid.clone();
        self.rules().telling(std::sync::Arc::new(move |notice| {
            me.do_send(ToldHold {
                notice,
                rid: rid.clone(),
            })
        }))
    }

    /// A change in the review queue: approvers on `/ws/v1/stub` see it;
    /// the requester's connections hear of holds not tied to one
    /// connection.
    fn review_notice(&self, notice: pinkpage_actors::broadcast::ReviewNotice, ctx: &mut WsCtx<D>) {
        use pinkpage_actors::broadcast::ReviewNotice;
        if D::PATH != "/ws/v1/stub" {
            return;
        }
        // never the requester (the desk refuses self-approval too)
        let may_answer = |approvers: &[String], requester: &str| {
            requester != &*self.principal.user
                && pinkpage_actors::policy::rules::is_approver(
                    approvers,
                    &self.principal.user,
                    self.principal.role,
                )
        };
        match &notice {
            ReviewNotice::Requested {
                held_id,
                user,
                server,
                command,
                rule,
                message,
                expires_at,
                run_id,
                approvers,
                announce,
            } => {
                if may_answer(approvers, user) {
                    let frame = Common::CommandReviewRequested {
                        held_id,
                        user,
                        server,
                        command,
                        rule,
                        message,
                        expires_at,
                        approvers,
                    };
                    self.send(ctx, &frame, &None);
                }
                if *announce && **user == *self.principal.user {
                    let frame = Common::CommandHeld {
                        held_id,
                        rule,
                        message,
                        command,
                        server,
                        expires_at: Some(expires_at),
                        run_id: run_id.as_deref(),
                    };
                    self.send(ctx, &frame, &None);
                }
            }
            ReviewNotice::Ended {
                held_id,
                user,
                decision,
                by,
                approvers,
                announce,
            } => {
                let mine = **user == *self.principal.user;
                if may_answer(approvers, user) || mine {
                    let frame = Common::CommandReviewEnded {
                        held_id,
                        decision,
                        by: by.as_deref(),
                    };
                    self.send(ctx, &frame, &None);
                }
                if *announce && mine && decision == "approved" {
                    self.send(ctx, &Common::CommandReleased { held_id }, &None);
                }
            }
        }
    }

    /// Sends an error frame (and logs it).
    pub fn send_error(&self, ctx: &mut WsCtx<D>, err: &AppError, rid: &RequestId) {
        let level = if err.code.is_server_side() {
            log::Level::Error
        } else {
            log::Level::Debug
        };
        log::log!(
            level,
            connection_id = self.id.to_string().as_str(),
            code = err.code.code(),
            error = err.to_string();
            "request refused"
        );
        pinkpage_actors::metrics::error_answered(err.code);
        ctx.text(ErrorFrame::new(err).to_text(rid));
    }

    /// Starts one of this connection's concurrent operations (SFTP work, a
    /// diff, a script): 10008 once `PINKPAGE_WS_MAX_OPS_PER_CONNECTION` run.
    /// The operation counts until the guard is dropped.
    pub fn begin_operation(&self) -> Result<crate::connections::OperationGuard, AppError> {
        self.watch
            .begin_operation(self.state.settings().caps.ops_per_connection)
    }

    /// [`begin_operation`](Self::begin_operation), or `None` after
    /// answering `rid` with 10008: the one line a domain adds where an
    /// operation starts.
    pub fn operation_or_refuse(
        &self,
        rid: &RequestId,
        ctx: &mut WsCtx<D>,
    ) -> Option<crate::connections::OperationGuard> {
        self.begin_operation()
            .map_err(|e| self.send_error(ctx, &e, rid))
            .ok()
    }

    /// An audit event by this connection's user, from its address, in
    /// its endpoint's domain.
    pub fn audit_event(&self, action: &str) -> crate::records::NewAuditEvent {
        crate::records::NewAuditEvent::new(self.id.to_string(), action)
            .in_domain(D::NAME)
            .by(Some(&self.principal.user), self.remote.map(|ip| ip.to_string()))
    }

    fn on_text(&mut self, text: &str, ctx: &mut WsCtx<D>) {
        // A frame from the client keeps a sign-in session alive (its idle
        // lifetime); pongs to our pings do not, or an open tab would never
        // go idle.
        self.state.identity.touch(&self.principal);
        let principal = &self.principal;
        let journal = &self.state.journal;
        let allow = |kind: &str| {
            crate::auth::check_need(
                crate::auth::table::message_need(D::PATH, kind),
                Some(principal),
                false,
            )?;
            if crate::auth::table::message_starts_work(D::PATH, kind) {
                journal.admit_new_work(kind)?;
            }
            Ok(())
        };
        match parse_frame_checked::<D::Request>(text, D::TYPES, allow) {
            Frame::Ping(rid) => self.send(ctx, &Common::Pong, &rid),
            Frame::Invalid(err, rid) => self.send_error(ctx, &err, &rid),
            Frame::Request(req, rid) => D::handle(self, req, rid, ctx),
        }
    }

    fn start_heartbeat(&self, ctx: &mut WsCtx<D>) {
        let interval = self.state.settings().ws_heartbeat;
        let timeout = self.state.settings().ws_client_timeout;
        ctx.run_interval(interval, move |act, ctx| {
            if act.last_seen.elapsed() > timeout {
                log::info!(connection_id = act.id.to_string().as_str(); "websocket client silent past the timeout; dropping it");
                ctx.stop();
            } else {
                ctx.ping(b"");
            }
        });
    }
}

impl<D: Domain> Actor for WsConnection<D> {
    type Context = WsCtx<D>;

    fn started(&mut self, ctx: &mut Self::Context) {
        log::info!(
            connection_id = self.id.to_string().as_str(),
            domain = D::NAME,
            user = &*self.principal.user;
            "websocket connected"
        );
        self.start_heartbeat(ctx);
        let join = Join {
            id: self.id,
            recipient: ctx.address().recipient(),
        };
        self.state
            .broadcast
            .send(join)
            .into_actor(self)
            .map(|snapshot, act, ctx| match snapshot {
                Ok(snap) => {
                    let welcome = Common::Welcome {
                        message: D::WELCOME,
                        connection_id: act.id.to_string(),
                        session_status: &snap.session,
                        server_health: &snap.health,
                    };
                    act.send(ctx, &welcome, &None);
                }
                Err(e) => {
                    let err =
                        AppError::with_detail(ErrorCode::WsConnection, format!("registry unavailable: {e}"));
                    act.send_error(ctx, &err, &None);
                    ctx.stop();
                }
            })
            .wait(ctx);
    }

    fn stopping(&mut self, ctx: &mut Self::Context) -> actix::Running {
        let tasks = D::stopping(self, ctx);
        self.state.broadcast.do_send(Leave { id: self.id });
        release_when_done(&self.state, self.id, tasks);
        log::info!(connection_id = self.id.to_string().as_str(), domain = D::NAME; "websocket disconnected");
        actix::Running::Stop
    }
}

/// Tells the lock connection `id` is gone once its `tasks` are done
/// (bounded by `REVOKE_TIMEOUT`): WAVE2's rule, the lock is released after
/// the task stopped or was given up. Detached, since the connection itself
/// is gone; a shutdown waits for it too (the tasks' cleanup is in flight).
/// Used when the connection actor stops and when the daemon cuts a
/// connection off from outside it (a stalled client, a shutdown).
pub fn release_when_done(state: &web::Data<AppState>, id: ConnectionId, tasks: Vec<Done>) {
    let lock = state.session_lock.clone();
    if tasks.is_empty() {
        return lock.do_send(ConnectionClosed { id });
    }
    let in_flight = state.in_flight.enter();
    actix::spawn(async move {
        let all = futures_util::future::join_all(tasks.into_iter().map(Done::wait));
        let _ = tokio::time::timeout(REVOKE_TIMEOUT, all).await;
        lock.do_send(ConnectionClosed { id });
        drop(in_flight);
    });
}

impl<D: Domain> StreamHandler<Inbound> for WsConnection<D> {
    fn handle(&mut self, item: Inbound, ctx: &mut Self::Context) {
        match item {
            Inbound::Text(text) => {
                self.last_seen = Instant::now();
                self.on_text(&text, ctx);
            }
            Inbound::Refused(err) => {
                self.last_seen = Instant::now();
                self.send_error(ctx, &err, &None);
            }
            Inbound::Ping { data, mid_message } => {
                if !mid_message {
                    self.last_seen = Instant::now();
                }
                ctx.pong(&data);
            }
            Inbound::Pong { mid_message } => {
                if !mid_message {
                    self.last_seen = Instant::now();
                }
            }
            Inbound::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
            Inbound::Broken { code, reason } => {
                // The stream cannot continue (a protocol error, a frame over
                // the hard limit): close with the reason.
                log::info!(connection_id = self.id.to_string().as_str(), error = reason.as_str(); "websocket protocol error");
                ctx.close(Some(ws::CloseReason {
                    code,
                    description: Some(reason),
                }));
                ctx.stop();
            }
        }
    }
}

/// The context's own frame stream, which [`WebsocketContext`](ws::WebsocketContext)
/// requires a handler for, is given nothing to read (`ws::upgrade`): the
/// connection's frames come through its `FrameReader` as [`Inbound`].
impl<D: Domain> StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsConnection<D> {
    fn handle(&mut self, _: Result<ws::Message, ws::ProtocolError>, _: &mut Self::Context) {}
}

impl<D: Domain> Handler<Event> for WsConnection<D> {
    type Result = ();

    fn handle(&mut self, event: Event, ctx: &mut Self::Context) {
        match event {
            // rendered once per worker thread, shared by its connections
            Event::SessionStatus(s) => ctx.text(super::shared_frames::rendered(&s, |s| {
                Common::SessionStatus {
                    active: s.active,
                    owner: s.owner.map(|o| o.to_string()),
                    owner_user: s.owner_user.as_deref(),
                    since: s.since.as_deref(),
                    workflow_run: s.workflow_run.as_ref(),
                }
                .to_text(&None)
            })),
            Event::AccessChanged => match self.state.identity.recheck(&self.principal) {
                Ok(current) => {
                    self.principal = current;
                    D::access_changed(self, ctx);
                }
                Err(refusal) => {
                    log::info!(
                        connection_id = self.id.to_string().as_str(),
                        user = &*self.principal.user,
                        reason = refusal.reason();
                        "credentials no longer good; closing the websocket"
                    );
                    ctx.close(Some(ws::CloseReason {
                        code: ws::CloseCode::Policy,
                        description: Some(format!("{} (10002)", refusal.reason())),
                    }));
                    ctx.stop();
                }
            },
            Event::CommandReview(notice) => self.review_notice(notice, ctx),
            Event::RecordingStopped { user, pty_id, error } => {
                if user == self.principal.user {
                    self.send(
                        ctx,
                        &Common::RecordingStopped {
                            pty_id: pty_id.to_string(),
                            error: error.body(),
                        },
                        &None,
                    );
                }
            }
            Event::ShuttingDown { grace } => {
                D::shutting_down(self, ctx);
                let error = AppError::with_detail(
                    ErrorCode::ShuttingDown,
                    "the daemon is stopping or restarting; reconnect once it is back",
                );
                self.send(
                    ctx,
                    &Common::Shutdown {
                        error: error.body(),
                        grace_s: grace.as_secs_f64(),
                    },
                    &None,
                );
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Restart,
                    description: Some("the daemon is shutting down (30004)".into()),
                }));
                ctx.stop();
            }
            Event::ServerHealth(h) => ctx.text(super::shared_frames::rendered(&h, |h| {
                Common::ServerHealth {
                    server_name: &h.server_name,
                    is_healthy: h.is_healthy,
                    status: h,
                }
                .to_text(&None)
            })),
        }
    }
}

/// A hold of a command this connection asked to run, to tell its client.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct ToldHold {
    /// What happened.
    pub notice: crate::reviews::check::HoldNotice,
    /// The request that asked.
    pub rid: RequestId,
}

impl<D: Domain> Handler<ToldHold> for WsConnection<D> {
    type Result = ();

    fn handle(&mut self, msg: ToldHold, ctx: &mut WsCtx<D>) {
        use crate::reviews::check::HoldNotice;
        match &msg.notice {
            HoldNotice::Held(held) => {
                let expires_at = held.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let frame = Common::CommandHeld {
                    held_id: &held.held_id,
                    rule: &held.rule,
                    message: &held.message,
                    command: &held.command,
                    server: &held.server,
                    expires_at: Some(&expires_at),
                    run_id: None,
                };
                self.send(ctx, &frame, &msg.rid);
            }
            HoldNotice::Released(held_id) => self.send(ctx, &Common::CommandReleased { held_id }, &msg.rid),
        }
    }
}
