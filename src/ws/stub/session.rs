//! The session lock on `/ws/v1/stub`: `start_session`, `end_session`, and
//! what happens when an administrator revokes the lock.

use actix::{ActorFutureExt, AsyncContext, ContextFutureSpawner, Handler, ResponseActFuture, WrapFuture};
use pinkpage_actors::lock::{Acquire, GetStatus, Holder, LockRevoked, Release, TakeOver, REVOKE_TIMEOUT};
use pinkpage_actors::task::STOP_TIMEOUT;
use pinkpage_actors::{AppError, ErrorCode, OwnerId};

use super::state::{flatten, mailbox, Stub};
use super::tasks::{after_done, audit, stop_task};
use super::wire::StubReply;
use crate::ws::connection::{WsConnection, WsCtx};
use crate::ws::protocol::RequestId;

pub(super) fn start_session(conn: &mut WsConnection<Stub>, rid: RequestId, ctx: &mut WsCtx<Stub>) {
    let msg = Acquire {
        holder: Holder::Connection {
            id: conn.id,
            // so a force release stops our task even if we are not polled
            tasks: conn.watch.tasks.clone(),
        },
        user: conn.principal.user.clone(),
        revoked: ctx.address().recipient(),
    };
    conn.state
        .session_lock
        .send(msg)
        .into_actor(conn)
        .map(move |res, conn, ctx| match flatten(res) {
            Ok(grant) if grant.epoch <= conn.domain.revoked_through => {
                // revoked before this reply was handled: it was never ours
                let e = AppError::with_detail(
                    ErrorCode::NoActiveSession,
                    "the lock was taken back by an administrator before it reached this connection",
                );
                conn.send_error(ctx, &e, &rid);
            }
            Ok(grant) => {
                // (the lock reopened our task set when it granted)
                conn.domain.grant = Some(grant);
                conn.state.journal.audit(audit(conn, "session.start"));
                conn.send(
                    ctx,
                    &StubReply::SessionStarted {
                        owner: conn.id.to_string(),
                    },
                    &rid,
                );
            }
            Err(e) => conn.send_error(ctx, &e, &rid),
        })
        .spawn(ctx);
}

/// Stops the task, then releases the lock. A task that does not stop is
/// given up after `STOP_TIMEOUT` (50012, on this request too) and the lock
/// is released once its bounded cleanup had its time, so never later than
/// `REVOKE_TIMEOUT` after the request. With `take_over`, from a connection
/// that does not hold the lock: see [`take_over`].
pub(super) fn end_session(
    conn: &mut WsConnection<Stub>,
    take_over: bool,
    rid: RequestId,
    ctx: &mut WsCtx<Stub>,
) {
    if take_over && conn.domain.grant.is_none() {
        return self::take_over(conn, rid, ctx);
    }
    let Some(grant) = conn.domain.grant else {
        // Not ours: the lock says whether it is free (50005) or someone
        // else's (50006).
        let lock = conn.state.session_lock.clone();
        let id = conn.id;
        return async move {
            let status = lock.send(GetStatus).await.map_err(mailbox)?;
            Err(match status.owner {
                Some(owner) if owner != OwnerId::Connection(id) => AppError::with_detail(
                    ErrorCode::NotSessionOwner,
                    format!(
                        "held by {} since {}",
                        status.owner_user.as_deref().unwrap_or("someone"),
                        status.since.as_deref().unwrap_or("-")
                    ),
                ),
                _ => AppError::new(ErrorCode::NoActiveSession),
            })
        }
        .into_actor(conn)
        .map(move |res: Result<(), AppError>, conn, ctx| {
            if let Err(e) = res {
                conn.send_error(ctx, &e, &rid);
            }
        })
        .spawn(ctx);
    };
    if conn.domain.ending {
        let e = AppError::with_detail(ErrorCode::ResourceLocked, "the session is already ending");
        return conn.send_error(ctx, &e, &rid);
    }
    end(conn, grant, rid, ctx);
}

/// `end_session {take_over: true}`: the session another connection of the
/// same user holds (a second tab, a forgotten laptop) ends as if that
/// connection had sent `end_session`: it hears `session_ended`, its task
/// stops, and the lock is free once it did. Another user's lock, or a
/// workflow run's, is refused (50006) as a plain `end_session` is. The
/// answer is `session_ended` once the lock is free; audited as
/// `session.take_over` with the connection whose session ended.
fn take_over(conn: &mut WsConnection<Stub>, rid: RequestId, ctx: &mut WsCtx<Stub>) {
    let msg = TakeOver {
        user: conn.principal.user.clone(),
        by: conn.id,
    };
    conn.state
        .session_lock
        .send(msg)
        .into_actor(conn)
        .map(move |res, conn, ctx| match flatten(res) {
            Ok(before) => {
                let mut event = audit(conn, "session.take_over");
                event.target = before.owner.map(|o| o.to_string());
                event.detail = Some(serde_json::json!({
                    "previous_owner": before.owner.map(|o| o.to_string()),
                }));
                conn.state.journal.audit(event);
                conn.send(ctx, &StubReply::SessionEnded, &rid);
            }
            Err(e) => conn.send_error(ctx, &e, &rid),
        })
        .spawn(ctx);
}

/// Access changed and this connection may no longer hold the lock (`why`,
/// 10010): it is given back as by `end_session` (the task stopped first,
/// the lock released once it ended), and the client hears `why`, then
/// `session_ended`. Nothing to do if the lock is not held or already being
/// given back.
pub(super) fn give_back(conn: &mut WsConnection<Stub>, why: AppError, ctx: &mut WsCtx<Stub>) {
    let Some(grant) = conn.domain.grant else {
        return;
    };
    if conn.domain.ending {
        return;
    }
    conn.withdraw(ctx, &why, &None, "session lock", &[]);
    end(conn, grant, None, ctx);
}

/// Stops the task, then releases `grant` and answers `rid`.
fn end(
    conn: &mut WsConnection<Stub>,
    grant: pinkpage_actors::lock::Grant,
    rid: RequestId,
    ctx: &mut WsCtx<Stub>,
) {
    conn.domain.ending = true;
    let done = stop_task(conn, ctx).unwrap_or(None);
    let stop_rid = rid.clone();
    after_done(
        conn,
        done.clone(),
        STOP_TIMEOUT,
        move |conn, in_time, ctx| {
            if in_time {
                return release(conn, grant, rid, ctx);
            }
            let e = AppError::with_detail(
                ErrorCode::TaskCancelTimeout,
                format!(
                    "the task did not stop within {STOP_TIMEOUT:?}; the lock is released after its cleanup"
                ),
            );
            conn.send_error(ctx, &e, &stop_rid);
            after_done(
                conn,
                done,
                REVOKE_TIMEOUT - STOP_TIMEOUT,
                move |conn, _, ctx| release(conn, grant, rid, ctx),
                ctx,
            );
        },
        ctx,
    );
}

fn release(
    conn: &mut WsConnection<Stub>,
    grant: pinkpage_actors::lock::Grant,
    rid: RequestId,
    ctx: &mut WsCtx<Stub>,
) {
    conn.state
        .session_lock
        .send(Release { grant })
        .into_actor(conn)
        .map(move |res, conn, ctx| {
            conn.domain.ending = false;
            // Whatever the lock says, this connection no longer holds it
            // under this grant (a revocation may have come in between).
            if conn.domain.grant == Some(grant) {
                conn.domain.grant = None;
            }
            match flatten(res) {
                Ok(_) => {
                    conn.state.journal.audit(audit(conn, "session.end"));
                    conn.send(ctx, &StubReply::SessionEnded, &rid);
                }
                Err(e) => conn.send_error(ctx, &e, &rid),
            }
        })
        .spawn(ctx);
}

impl Handler<LockRevoked> for WsConnection<Stub> {
    /// Answered once the task is done (the lock waits for that).
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: LockRevoked, ctx: &mut WsCtx<Stub>) -> Self::Result {
        let ours = self.domain.grant == Some(msg.grant);
        if msg.grant.owner == OwnerId::Connection(self.id) {
            self.domain.revoked_through = self.domain.revoked_through.max(msg.grant.epoch);
        }
        if ours {
            self.domain.grant = None;
            self.send(ctx, &StubReply::SessionEnded, &None);
        }
        let done = if ours {
            stop_task(self, ctx).unwrap_or(None)
        } else {
            None
        };
        Box::pin(
            async move {
                if let Some(done) = done {
                    let _ = tokio::time::timeout(REVOKE_TIMEOUT, done.wait()).await;
                }
            }
            .into_actor(self),
        )
    }
}
