//! `SessionLockActor`: one owner at a time for the multi-step workflow
//! (SSH -> server-to-server copy -> SSH; SPEC section 6).
//!
//! Who sends what:
//! - WebSocket connections send [`Acquire`], [`Release`], [`CheckOwner`]
//!   and, when they stop, [`ConnectionClosed`].
//! - The admin REST endpoint sends [`ForceRelease`]; any caller may send
//!   [`GetStatus`].
//!
//! Every change is published to the broadcast registry as a
//! `session_status` event. When the lock is taken from its owner by anyone
//! but the owner itself (an admin), the owner is sent [`LockRevoked`] so it
//! stops its tasks: a task never runs without the lock.
//!
//! Why races cannot happen: the actor handles one message at a time and the
//! owner lives only here, so of any number of concurrent `Acquire`s exactly
//! one finds the lock free. `ConnectionClosed` is idempotent (a connection
//! may stop twice, or never have owned the lock).

use actix::{Actor, Addr, Context, Handler, Message, MessageResult, Recipient};

use crate::broadcast::{BroadcastActor, Event, Publish, SessionStatus};
use crate::error::{AppError, ErrorCode};
use crate::ids::ConnectionId;

/// Take the lock for `id`.
#[derive(Message)]
#[rtype(result = "Result<SessionStatus, AppError>")]
pub struct Acquire {
    /// Who asks.
    pub id: ConnectionId,
    /// Told if the lock is taken away by someone else.
    pub revoked: Recipient<LockRevoked>,
}

/// Give the lock back; only its owner may.
#[derive(Message)]
#[rtype(result = "Result<SessionStatus, AppError>")]
pub struct Release {
    /// Who asks.
    pub id: ConnectionId,
}

/// Is `id` the owner? `Ok` if so, 50008 otherwise (the operation needs the
/// lock).
#[derive(Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct CheckOwner {
    /// Who asks.
    pub id: ConnectionId,
}

/// A connection stopped: release the lock if it held it. Idempotent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConnectionClosed {
    /// The connection that stopped.
    pub id: ConnectionId,
}

/// An administrator takes the lock away from whoever holds it.
#[derive(Message)]
#[rtype(result = "Result<SessionStatus, AppError>")]
pub struct ForceRelease;

/// The current status.
#[derive(Message)]
#[rtype(result = "SessionStatus")]
pub struct GetStatus;

/// Sent to the owner when an administrator took its lock: stop your tasks.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LockRevoked;

struct Owner {
    id: ConnectionId,
    revoked: Recipient<LockRevoked>,
}

/// The lock. See the module docs.
pub struct SessionLockActor {
    /// The holder, if any; owned by this actor alone.
    owner: Option<Owner>,
    /// Where status changes are published.
    broadcast: Addr<BroadcastActor>,
}

impl SessionLockActor {
    /// A free lock publishing to `broadcast`.
    pub fn new(broadcast: Addr<BroadcastActor>) -> Self {
        SessionLockActor {
            owner: None,
            broadcast,
        }
    }

    fn status(&self) -> SessionStatus {
        SessionStatus {
            active: self.owner.is_some(),
            owner: self.owner.as_ref().map(|o| o.id),
        }
    }

    fn publish(&self) -> SessionStatus {
        let status = self.status();
        self.broadcast
            .do_send(Publish(Event::SessionStatus(status.clone())));
        status
    }
}

impl Actor for SessionLockActor {
    type Context = Context<Self>;
}

impl Handler<Acquire> for SessionLockActor {
    type Result = Result<SessionStatus, AppError>;

    fn handle(&mut self, msg: Acquire, _: &mut Context<Self>) -> Self::Result {
        match &self.owner {
            Some(o) if o.id == msg.id => Err(AppError::new(ErrorCode::AlreadySessionOwner)),
            Some(o) => Err(AppError::with_detail(
                ErrorCode::SessionAlreadyActive,
                format!("held by connection {}", o.id),
            )),
            None => {
                self.owner = Some(Owner {
                    id: msg.id,
                    revoked: msg.revoked,
                });
                log::info!(connection_id = msg.id.to_string().as_str(); "session lock acquired");
                Ok(self.publish())
            }
        }
    }
}

impl Handler<Release> for SessionLockActor {
    type Result = Result<SessionStatus, AppError>;

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) -> Self::Result {
        match &self.owner {
            None => Err(AppError::new(ErrorCode::NoActiveSession)),
            Some(o) if o.id != msg.id => Err(AppError::with_detail(
                ErrorCode::NotSessionOwner,
                format!("held by connection {}", o.id),
            )),
            Some(_) => {
                self.owner = None;
                log::info!(connection_id = msg.id.to_string().as_str(); "session lock released");
                Ok(self.publish())
            }
        }
    }
}

impl Handler<CheckOwner> for SessionLockActor {
    type Result = Result<(), AppError>;

    fn handle(&mut self, msg: CheckOwner, _: &mut Context<Self>) -> Self::Result {
        match &self.owner {
            Some(o) if o.id == msg.id => Ok(()),
            Some(_) => Err(AppError::with_detail(
                ErrorCode::ResourceLocked,
                "another connection holds the session lock",
            )),
            None => Err(AppError::with_detail(
                ErrorCode::ResourceLocked,
                "send start_session first",
            )),
        }
    }
}

impl Handler<ConnectionClosed> for SessionLockActor {
    type Result = ();

    fn handle(&mut self, msg: ConnectionClosed, _: &mut Context<Self>) {
        if self.owner.as_ref().is_some_and(|o| o.id == msg.id) {
            self.owner = None;
            log::info!(connection_id = msg.id.to_string().as_str(); "session lock released: owner disconnected");
            self.publish();
        }
    }
}

impl Handler<ForceRelease> for SessionLockActor {
    type Result = Result<SessionStatus, AppError>;

    fn handle(&mut self, _: ForceRelease, _: &mut Context<Self>) -> Self::Result {
        let owner = self
            .owner
            .take()
            .ok_or_else(|| AppError::new(ErrorCode::NoActiveSession))?;
        owner.revoked.do_send(LockRevoked);
        log::warn!(connection_id = owner.id.to_string().as_str(); "session lock released by an administrator");
        Ok(self.publish())
    }
}

impl Handler<GetStatus> for SessionLockActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Owner;
    impl Actor for Owner {
        type Context = Context<Self>;
    }
    impl Handler<LockRevoked> for Owner {
        type Result = ();
        fn handle(&mut self, _: LockRevoked, _: &mut Context<Self>) {}
    }

    fn lock() -> Addr<SessionLockActor> {
        SessionLockActor::new(BroadcastActor::default().start()).start()
    }

    fn acquire(id: ConnectionId) -> Acquire {
        Acquire {
            id,
            revoked: Owner.start().recipient(),
        }
    }

    #[actix::test]
    async fn of_many_concurrent_acquires_exactly_one_wins() {
        let lock = lock();
        let ids: Vec<_> = (0..50).map(|_| ConnectionId::new()).collect();
        let replies = futures_util::future::join_all(ids.iter().map(|id| lock.send(acquire(*id)))).await;
        let winners = replies.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        assert_eq!(winners, 1);
        for r in replies {
            if let Ok(Err(e)) = r {
                assert_eq!(e.code, ErrorCode::SessionAlreadyActive);
            }
        }
    }

    #[actix::test]
    async fn codes_follow_the_catalogue() {
        let lock = lock();
        let (a, b) = (ConnectionId::new(), ConnectionId::new());
        assert_eq!(
            lock.send(Release { id: a }).await.unwrap().unwrap_err().code,
            ErrorCode::NoActiveSession
        );
        assert_eq!(
            lock.send(CheckOwner { id: a }).await.unwrap().unwrap_err().code,
            ErrorCode::ResourceLocked
        );
        lock.send(acquire(a)).await.unwrap().unwrap();
        assert_eq!(
            lock.send(acquire(a)).await.unwrap().unwrap_err().code,
            ErrorCode::AlreadySessionOwner
        );
        assert_eq!(
            lock.send(acquire(b)).await.unwrap().unwrap_err().code,
            ErrorCode::SessionAlreadyActive
        );
        assert_eq!(
            lock.send(Release { id: b }).await.unwrap().unwrap_err().code,
            ErrorCode::NotSessionOwner
        );
        assert_eq!(
            lock.send(CheckOwner { id: b }).await.unwrap().unwrap_err().code,
            ErrorCode::ResourceLocked
        );
        lock.send(CheckOwner { id: a }).await.unwrap().unwrap();
        let status = lock.send(Release { id: a }).await.unwrap().unwrap();
        assert!(!status.active);
    }

    #[actix::test]
    async fn closing_a_connection_releases_only_its_own_lock_and_is_idempotent() {
        let lock = lock();
        let (a, b) = (ConnectionId::new(), ConnectionId::new());
        lock.send(acquire(a)).await.unwrap().unwrap();
        lock.send(ConnectionClosed { id: b }).await.unwrap();
        assert_eq!(lock.send(GetStatus).await.unwrap().owner, Some(a));
        lock.send(ConnectionClosed { id: a }).await.unwrap();
        lock.send(ConnectionClosed { id: a }).await.unwrap();
        assert!(!lock.send(GetStatus).await.unwrap().active);
    }
}
