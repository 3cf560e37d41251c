//! The lock's rules, under paused time where timing matters.

use std::cell::Cell;
use std::rc::Rc;

use actix::ResponseFuture;

use super::*;

/// An owner that answers `LockRevoked` after `delay` (its task's stop),
/// counting the revocations it got.
struct Owner {
    delay: Duration,
    revoked: Rc<Cell<u32>>,
}
impl Actor for Owner {
    type Context = Context<Self>;
}
impl Handler<LockRevoked> for Owner {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: LockRevoked, _: &mut Context<Self>) -> Self::Result {
        self.revoked.set(self.revoked.get() + 1);
        let delay = self.delay;
        Box::pin(async move { tokio::time::sleep(delay).await })
    }
}

fn lock() -> Addr<SessionLockActor> {
    SessionLockActor::new(BroadcastActor::default().start()).start()
}

/// `holder` asks, answering `LockRevoked` after `delay`.
fn acquire_as(holder: Holder, delay: Duration) -> (Acquire, Rc<Cell<u32>>) {
    let revoked = Rc::new(Cell::new(0));
    let owner = Owner {
        delay,
        revoked: revoked.clone(),
    };
    let msg = Acquire {
        holder,
        user: "ana".into(),
        revoked: owner.start().recipient(),
    };
    (msg, revoked)
}

/// Connection `id` asks, handing over `tasks`, and answers `LockRevoked`
/// after `delay`.
fn acquire_with(id: ConnectionId, tasks: LiveTasks, delay: Duration) -> (Acquire, Rc<Cell<u32>>) {
    acquire_as(Holder::Connection { id, tasks }, delay)
}

/// A workflow run asks (it hands over no tasks: it answers `LockRevoked`
/// itself once its step ended, after `delay`).
fn run_acquire(delay: Duration) -> (Acquire, Rc<Cell<u32>>) {
    let run = WorkflowRunRef {
        run_id: crate::ids::RunId::new(),
        workflow: "unload".into(),
    };
    acquire_as(Holder::Run(run), delay)
}

fn acquire(id: ConnectionId) -> Acquire {
    acquire_with(id, LiveTasks::default(), Duration::ZERO).0
}

fn conn(id: ConnectionId) -> OwnerId {
    OwnerId::Connection(id)
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
    let never = Grant {
        owner: conn(a),
        epoch: 999,
    };
    assert_eq!(
        lock.send(Release { grant: never })
            .await
            .unwrap()
            .unwrap_err()
            .code,
        ErrorCode::NoActiveSession
    );
    let grant = lock.send(acquire(a)).await.unwrap().unwrap();
    assert_eq!(grant.owner, conn(a));
    assert_eq!(
        lock.send(acquire(a)).await.unwrap().unwrap_err().code,
        ErrorCode::AlreadySessionOwner
    );
    assert_eq!(
        lock.send(acquire(b)).await.unwrap().unwrap_err().code,
        ErrorCode::SessionAlreadyActive
    );
    let forged = Grant {
        owner: conn(b),
        epoch: grant.epoch,
    };
    assert_eq!(
        lock.send(Release { grant: forged })
            .await
            .unwrap()
            .unwrap_err()
            .code,
        ErrorCode::NotSessionOwner
    );
    let status = lock.send(Release { grant }).await.unwrap().unwrap();
    assert!(!status.active);
}

#[actix::test]
async fn a_late_release_of_an_old_grant_leaves_the_new_owner_alone() {
    let lock = lock();
    let a = ConnectionId::new();
    let old = lock.send(acquire(a)).await.unwrap().unwrap();
    lock.send(Release { grant: old }).await.unwrap().unwrap();
    let new = lock.send(acquire(a)).await.unwrap().unwrap();
    assert_ne!(old.epoch, new.epoch);
    assert!(lock.send(Release { grant: old }).await.unwrap().is_err());
    assert_eq!(lock.send(GetStatus).await.unwrap().owner, Some(conn(a)));
}

#[actix::test]
async fn closing_a_connection_releases_only_its_own_lock_and_is_idempotent() {
    let lock = lock();
    let (a, b) = (ConnectionId::new(), ConnectionId::new());
    lock.send(acquire(a)).await.unwrap().unwrap();
    lock.send(ConnectionClosed { id: b }).await.unwrap();
    assert_eq!(lock.send(GetStatus).await.unwrap().owner, Some(conn(a)));
    lock.send(ConnectionClosed { id: a }).await.unwrap();
    lock.send(ConnectionClosed { id: a }).await.unwrap();
    assert!(!lock.send(GetStatus).await.unwrap().active);
}

#[actix::test]
async fn force_release_waits_for_a_run_to_stop_its_step() {
    tokio::time::pause();
    let lock = lock();
    let b = ConnectionId::new();
    let (msg, revoked) = run_acquire(Duration::from_secs(3));
    lock.send(msg).await.unwrap().unwrap();
    let force = lock.send(ForceRelease);
    let started = tokio::time::Instant::now();
    let status = force.await.unwrap().unwrap();
    assert!(!status.active);
    assert_eq!(revoked.get(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "released before the owner's task stopped"
    );
    // free at once for the next owner
    lock.send(acquire(b)).await.unwrap().unwrap();
}

#[actix::test]
async fn force_release_does_not_wait_past_the_timeout_for_a_stalled_run() {
    tokio::time::pause();
    let lock = lock();
    let (msg, _) = run_acquire(Duration::from_secs(3600));
    lock.send(msg).await.unwrap().unwrap();
    let started = tokio::time::Instant::now();
    let status = lock.send(ForceRelease).await.unwrap().unwrap();
    assert!(!status.active);
    let waited = started.elapsed();
    assert!(
        waited >= REVOKE_TIMEOUT && waited < REVOKE_TIMEOUT + Duration::from_secs(1),
        "{waited:?}"
    );
}

/// A task that stops at once when told, reporting to nobody in
/// particular.
struct QuickTask(Option<crate::task::Reporter<(), ()>>);
impl Actor for QuickTask {
    type Context = Context<Self>;
    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(r) = self.0.take() {
            r.finish((), None);
        }
    }
}
impl Handler<crate::task::Stop> for QuickTask {
    type Result = ();
    fn handle(&mut self, _: crate::task::Stop, ctx: &mut Context<Self>) {
        actix::ActorContext::stop(ctx);
    }
}
struct Sink;
impl Actor for Sink {
    type Context = Context<Self>;
}
impl Handler<crate::task::TaskMessage<(), ()>> for Sink {
    type Result = ();
    fn handle(&mut self, _: crate::task::TaskMessage<(), ()>, _: &mut Context<Self>) {}
}

#[actix::test]
async fn force_release_stops_a_stalled_owners_tasks_itself_and_does_not_wait_for_its_answer() {
    tokio::time::pause();
    let lock = lock();
    let a = ConnectionId::new();
    // an owner that never answers LockRevoked: its connection is stalled
    let tasks = LiveTasks::default();
    let (reporter, handle) =
        crate::task::Pending::new(crate::task::TaskId::next(), Sink.start().recipient()).split();
    let handle = handle(QuickTask(Some(reporter)).start().recipient());
    tasks.track(&handle).unwrap();
    let (msg, revoked) = acquire_with(a, tasks.clone(), Duration::from_secs(3600));
    lock.send(msg).await.unwrap().unwrap();
    let started = tokio::time::Instant::now();
    let status = lock.send(ForceRelease).await.unwrap().unwrap();
    assert!(!status.active);
    assert!(
        handle.done().is_done(),
        "released before the owner's task stopped"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(revoked.get(), 1, "the owner is still told");
    // closed: nothing new can run under the revoked grant
    assert!(tasks.track(&handle).is_err());
}

#[actix::test]
async fn force_release_of_a_free_lock_is_50005() {
    let lock = lock();
    let err = lock.send(ForceRelease).await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::NoActiveSession);
}

/// An owner that is gone: it stops as soon as it starts, so its mailbox
/// is closed (a connection whose actor has already stopped).
struct GoneOwner;
impl Actor for GoneOwner {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        actix::ActorContext::stop(ctx);
    }
}
impl Handler<LockRevoked> for GoneOwner {
    type Result = ();
    fn handle(&mut self, _: LockRevoked, _: &mut Context<Self>) {}
}

/// A task that takes `STOPS_IN` to stop once told (its remote process is
/// slow to die, or its cleanup runs).
struct SlowTask(Option<crate::task::Reporter<(), ()>>);
const STOPS_IN: Duration = Duration::from_secs(2);
impl Actor for SlowTask {
    type Context = Context<Self>;
    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(r) = self.0.take() {
            r.finish((), None);
        }
    }
}
impl Handler<crate::task::Stop> for SlowTask {
    type Result = ();
    fn handle(&mut self, _: crate::task::Stop, ctx: &mut Context<Self>) {
        actix::AsyncContext::run_later(ctx, STOPS_IN, |_, ctx| actix::ActorContext::stop(ctx));
    }
}

#[actix::test]
async fn force_release_of_a_gone_owner_still_waits_for_its_stopping_task() {
    tokio::time::pause();
    let lock = lock();
    let gone = GoneOwner.start();
    tokio::task::yield_now().await;
    let tasks = LiveTasks::default();
    let (reporter, handle) =
        crate::task::Pending::new(crate::task::TaskId::next(), Sink.start().recipient()).split();
    let handle = handle(SlowTask(Some(reporter)).start().recipient());
    tasks.track(&handle).unwrap();
    let msg = Acquire {
        holder: Holder::Connection {
            id: ConnectionId::new(),
            tasks,
        },
        user: "ana".into(),
        revoked: gone.recipient(),
    };
    lock.send(msg).await.unwrap().unwrap();
    let started = tokio::time::Instant::now();
    let status = lock.send(ForceRelease).await.unwrap().unwrap();
    assert!(!status.active);
    assert!(
        handle.done().is_done(),
        "released while the gone owner's task was still stopping"
    );
    assert!(started.elapsed() >= STOPS_IN, "{:?}", started.elapsed());
}

#[actix::test]
async fn a_new_grant_reopens_the_owners_task_set_a_force_release_closed() {
    let lock = lock();
    let a = ConnectionId::new();
    let tasks = LiveTasks::default();
    let (msg, _) = acquire_with(a, tasks.clone(), Duration::ZERO);
    lock.send(msg).await.unwrap().unwrap();
    lock.send(ForceRelease).await.unwrap().unwrap();
    let (reporter, handle) =
        crate::task::Pending::new(crate::task::TaskId::next(), Sink.start().recipient()).split();
    let handle = handle(QuickTask(Some(reporter)).start().recipient());
    assert!(tasks.track(&handle).is_err(), "closed by the force release");
    let (again, _) = acquire_with(a, tasks.clone(), Duration::ZERO);
    lock.send(again).await.unwrap().unwrap();
    assert!(
        tasks.track(&handle).is_ok(),
        "reopened by the lock with the grant"
    );
}

#[actix::test]
async fn a_take_over_frees_only_a_lock_another_connection_of_the_same_user_holds() {
    let lock = lock();
    let take = |user: &str, by: ConnectionId| TakeOver {
        user: user.into(),
        by,
    };
    let holder = ConnectionId::new();
    let other_tab = ConnectionId::new();

    // free: 50005
    let e = lock.send(take("ana", other_tab)).await.unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::NoActiveSession);

    let (msg, revoked) = acquire_with(holder, LiveTasks::default(), Duration::ZERO);
    lock.send(msg).await.unwrap().unwrap();
    // another user: 50006 naming the holder, and nothing revoked
    let e = lock.send(take("bob", other_tab)).await.unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::NotSessionOwner);
    assert!(
        e.detail
            .as_deref()
            .unwrap_or_default()
            .starts_with("held by ana, since"),
        "{e:?}"
    );
    // the holder itself: 50007 (it ends its session with end_session)
    let e = lock.send(take("ana", holder)).await.unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::AlreadySessionOwner);
    assert_eq!(revoked.get(), 0);

    // the same user from another connection: revoked, then free
    let before = lock.send(take("ana", other_tab)).await.unwrap().unwrap();
    assert_eq!(before.owner, Some(conn(holder)));
    assert!(!lock.send(GetStatus).await.unwrap().active);
    // (that the holder is told, and stops, is proven end to end in
    // tests/api/lock.rs: this fake holder may be gone before it reads)

    // a workflow run's lock is not taken over, even by its user
    let (msg, revoked) = run_acquire(Duration::ZERO);
    lock.send(msg).await.unwrap().unwrap();
    let e = lock.send(take("ana", other_tab)).await.unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::NotSessionOwner);
    assert_eq!(revoked.get(), 0);
}
