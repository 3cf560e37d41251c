//! `BroadcastActor`: the registry of every WebSocket connection, of every
//! domain, and the fan-out of events that all of them must see.
//!
//! - Connections send [`Join`] when they start and [`Leave`] when they stop
//!   (idempotent: it may arrive twice, or for a connection never joined).
//! - The session lock and the health monitor [`Publish`] events.
//! - The registry also keeps the latest session status and health map, and
//!   hands them back in the [`Join`] reply. Joining and taking the snapshot
//!   are one message, so a connection can never miss an event that happened
//!   between reading the state and registering.
//!
//! A recipient whose actor has stopped is dropped and logged with 33000; the
//! others are not disturbed.
//!
//! Owner of state: this actor alone owns `members`, `session` and `health`.

use std::collections::{BTreeMap, HashMap};

use actix::{Actor, Context, Handler, Message, MessageResult, Recipient};
use serde::Serialize;

use crate::error::ErrorCode;
use crate::health::{HealthNews, ServerHealthStatus};
use crate::ids::{ConnectionId, OwnerId, RunId};

/// The session lock's state, as broadcast and shown in welcome messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SessionStatus {
    /// Whether someone holds the lock.
    pub active: bool,
    /// The holder: its connection id, or the id of the workflow run that
    /// took the lock itself.
    pub owner: Option<OwnerId>,
    /// The holder's user name.
    pub owner_user: Option<String>,
    /// When the holder took the lock (RFC 3339, UTC).
    pub since: Option<String>,
    /// The workflow run holding the lock, when one does.
    pub workflow_run: Option<WorkflowRunRef>,
}

/// A workflow run, as `session_status` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowRunRef {
    /// The run's id.
    pub run_id: RunId,
    /// The workflow's name.
    pub workflow: String,
}

/// Something every connection must be told.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum Event {
    /// The session lock changed hands. Shared, not copied, by the
    /// connections it goes to (one allocation for ten thousand of them;
    /// the daemon renders its frame once per thread, by this `Arc`).
    SessionStatus(std::sync::Arc<SessionStatus>),
    /// A server's health changed (`is_healthy` flipped). Shared as
    /// `SessionStatus` is.
    ServerHealth(std::sync::Arc<ServerHealthStatus>),
    /// Accounts, tokens or sign-in sessions changed (a revocation, a
    /// disabled user, a sign-out, an expiry): every connection re-checks
    /// its principal and closes if it is no longer good. Never sent to
    /// clients as a frame.
    AccessChanged,
    /// A user's PTY is no longer recorded (its recording failed: a full or
    /// failing disk); it goes on. Every connection of that user tells its
    /// client (`recording_stopped`).
    RecordingStopped {
        /// Whose PTY.
        user: std::sync::Arc<str>,
        /// Which PTY.
        pty_id: crate::ids::PtyId,
        /// Why (56002, with the cause).
        error: crate::error::AppError,
    },
    /// A command held for review, or the end of its hold: approvers'
    /// connections show their queue, the requester's connections learn
    /// of holds not tied to one connection (workflow steps).
    CommandReview(ReviewNotice),
    /// The daemon is stopping: every connection tells its client (a
    /// `shutdown` frame), closes and stops its tasks; the workflow hub
    /// cancels its runs. `grace` is how long the daemon waits for them.
    ShuttingDown {
        /// `PINKPAGE_SHUTDOWN_GRACE_S`.
        grace: std::time::Duration,
    },
}

/// A change in the queue of commands held for review.
#[derive(Debug, Clone)]
pub enum ReviewNotice {
    /// A command was held.
    Requested {
        /// The hold.
        held_id: String,
        /// Who asked to run it.
        user: std::sync::Arc<str>,
        /// Where.
        server: String,
        /// What (shared: every connection gets a clone of the notice,
        /// and a held script may be 1 MiB).
        command: std::sync::Arc<str>,
        /// The rule that held it.
        rule: String,
        /// The rule's message.
        message: String,
        /// When it is rejected unless answered (RFC 3339, UTC).
        expires_at: String,
        /// The workflow run it is a step of, if one.
        run_id: Option<String>,
        /// Who may answer: these users, or every admin when empty.
        approvers: Vec<String>,
        /// Whether the requester's connections are told too (work not
        /// tied to one connection).
        announce: bool,
    },
    /// A hold ended: `approved`, `rejected`, `timeout` or `withdrawn`.
    Ended {
        /// The hold.
        held_id: String,
        /// Who asked to run it.
        user: std::sync::Arc<str>,
        /// How it ended.
        decision: String,
        /// The approver, for `approved` and `rejected`.
        by: Option<String>,
        /// Who could have answered (every admin when empty).
        approvers: Vec<String>,
        /// As in `Requested`.
        announce: bool,
    },
}

/// What a joining connection is told about the current state.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The session lock now.
    pub session: SessionStatus,
    /// Health of every server now, by name.
    pub health: BTreeMap<String, ServerHealthStatus>,
}

/// Registers a connection; replies with the current state.
#[derive(Message)]
#[rtype(result = "Snapshot")]
pub struct Join {
    /// The connection.
    pub id: ConnectionId,
    /// Where its events go.
    pub recipient: Recipient<Event>,
}

/// Unregisters a connection. Idempotent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    /// The connection.
    pub id: ConnectionId,
}

/// Sends an event to every connection (and remembers it for snapshots).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Event);

/// How many connections are registered (for tests and metrics).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct MemberCount;

/// The registry. See the module docs.
#[derive(Default)]
pub struct BroadcastActor {
    /// Live connections and where to reach them.
    members: HashMap<ConnectionId, Recipient<Event>>,
    /// Latest session status, for snapshots.
    session: SessionStatus,
    /// Latest health of every server, for snapshots.
    health: BTreeMap<String, ServerHealthStatus>,
}

impl Actor for BroadcastActor {
    type Context = Context<Self>;
}

impl Handler<Join> for BroadcastActor {
    type Result = MessageResult<Join>;

    fn handle(&mut self, msg: Join, _: &mut Context<Self>) -> Self::Result {
        self.members.insert(msg.id, msg.recipient);
        MessageResult(Snapshot {
            session: self.session.clone(),
            health: self.health.clone(),
        })
    }
}

impl Handler<Leave> for BroadcastActor {
    type Result = ();

    fn handle(&mut self, msg: Leave, _: &mut Context<Self>) {
        self.members.remove(&msg.id);
    }
}

/// The health monitor's news: remembered for snapshots, and a change
/// announced to every connection.
impl Handler<HealthNews> for BroadcastActor {
    type Result = ();

    fn handle(&mut self, news: HealthNews, ctx: &mut Context<Self>) {
        match news {
            HealthNews::Updated(status) => {
                self.health.insert(status.server_name.clone(), status);
            }
            HealthNews::Changed(status) => {
                <Self as Handler<Publish>>::handle(self, Publish(Event::ServerHealth(status.into())), ctx)
            }
            HealthNews::Removed(name) => {
                self.health.remove(&name);
            }
        }
    }
}

impl Handler<MemberCount> for BroadcastActor {
    type Result = usize;

    fn handle(&mut self, _: MemberCount, _: &mut Context<Self>) -> usize {
        self.members.len()
    }
}

impl Handler<Publish> for BroadcastActor {
    type Result = ();

    fn handle(&mut self, Publish(event): Publish, _: &mut Context<Self>) {
        match &event {
            Event::SessionStatus(s) => self.session = (**s).clone(),
            Event::ServerHealth(h) => {
                self.health.insert(h.server_name.clone(), (**h).clone());
            }
            Event::AccessChanged
            | Event::ShuttingDown { .. }
            | Event::RecordingStopped { .. }
            | Event::CommandReview(_) => {}
        }
        // do_send never blocks the registry on a slow connection; a stopped
        // one is noticed here and dropped.
        self.members.retain(|id, recipient| {
            if recipient.connected() {
                recipient.do_send(event.clone());
                true
            } else {
                log::warn!(
                    code = ErrorCode::BroadcastFailed.code(),
                    connection_id = id.to_string().as_str();
                    "broadcast recipient is gone; dropped from the registry"
                );
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::prelude::*;
    use std::sync::{Arc, Mutex};

    /// A connection stand-in that records what it is told.
    struct Probe(Arc<Mutex<Vec<Event>>>);
    impl Actor for Probe {
        type Context = Context<Self>;
    }
    impl Handler<Event> for Probe {
        type Result = ();
        fn handle(&mut self, e: Event, _: &mut Context<Self>) {
            self.0.lock().unwrap().push(e);
        }
    }
    struct StopNow;
    impl Message for StopNow {
        type Result = ();
    }
    impl Handler<StopNow> for Probe {
        type Result = ();
        fn handle(&mut self, _: StopNow, ctx: &mut Context<Self>) {
            ctx.stop();
        }
    }

    #[actix::test]
    async fn a_stopped_recipient_is_dropped_and_the_others_still_receive() {
        let registry = BroadcastActor::default().start();
        let seen_a = Arc::new(Mutex::new(Vec::new()));
        let seen_b = Arc::new(Mutex::new(Vec::new()));
        let a = Probe(seen_a.clone()).start();
        let b = Probe(seen_b.clone()).start();
        let (ida, idb) = (ConnectionId::new(), ConnectionId::new());
        registry
            .send(Join {
                id: ida,
                recipient: a.clone().recipient(),
            })
            .await
            .unwrap();
        registry
            .send(Join {
                id: idb,
                recipient: b.clone().recipient(),
            })
            .await
            .unwrap();

        a.send(StopNow).await.unwrap();
        // a's context finishing closes its mailbox: no event says when
        crate::testing::eventually("a's mailbox closes", async || !a.connected()).await;
        registry
            .send(Publish(Event::SessionStatus(
                SessionStatus {
                    active: true,
                    owner: Some(OwnerId::Connection(idb)),
                    ..Default::default()
                }
                .into(),
            )))
            .await
            .unwrap();
        assert_eq!(registry.send(MemberCount).await.unwrap(), 1);
        // b is still served
        let before = seen_b.lock().unwrap().len();
        registry
            .send(Publish(Event::SessionStatus(SessionStatus::default().into())))
            .await
            .unwrap();
        b.send(MemberCountProbe).await.ok();
        assert!(seen_b.lock().unwrap().len() > before);
    }

    /// A round trip through b's mailbox, so its earlier events are handled.
    struct MemberCountProbe;
    impl Message for MemberCountProbe {
        type Result = ();
    }
    impl Handler<MemberCountProbe> for Probe {
        type Result = ();
        fn handle(&mut self, _: MemberCountProbe, _: &mut Context<Self>) {}
    }

    #[actix::test]
    async fn join_returns_the_latest_state() {
        let registry = BroadcastActor::default().start();
        let owner = OwnerId::Connection(ConnectionId::new());
        registry
            .send(Publish(Event::SessionStatus(
                SessionStatus {
                    active: true,
                    owner: Some(owner),
                    ..Default::default()
                }
                .into(),
            )))
            .await
            .unwrap();
        registry
            .send(HealthNews::Updated(ServerHealthStatus::unchecked("mdwap1p", "h")))
            .await
            .unwrap();
        let probe = Probe(Arc::default()).start();
        let snap = registry
            .send(Join {
                id: ConnectionId::new(),
                recipient: probe.recipient(),
            })
            .await
            .unwrap();
        assert_eq!(snap.session.owner, Some(owner));
        assert!(snap.health.contains_key("mdwap1p"));
    }
}
