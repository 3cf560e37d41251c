//! The audit journal: the one path every audit row takes to the database,
//! and what the daemon does while the database cannot take them (WAVE2,
//! "Audit when the store fails").
//!
//! Rows are queued in memory and written behind, in order, by one task.
//! When a write fails (a full or read-only disk, a database another process
//! holds locked) the rows stay queued, the failure is counted and logged
//! with 40000, and the journal is *degraded*: new remote actions are
//! refused with 40000 (unless `PINKPAGE_AUDIT_FAIL_OPEN`), work already
//! running goes on and its rows wait in the queue. The writer retries with
//! a short backoff; the first write that succeeds drains the queue and ends
//! the degradation. The queue is bounded ([`MAX_PENDING`]): rows beyond it
//! are dropped, counted, and named in the log (action, user and server, never
//! command text), since nothing else can keep them.
//!
//! Who owns what: [`Shared::state`] is the only mutable state; callers push
//! under its mutex and never wait on the database, the writer task is the
//! only one that removes rows, and only after the store confirmed them, so
//! a row is never lost between the queue and the table. A push wakes the
//! writer through a `Notify`, whose stored permit covers a push that lands
//! between the writer finding the queue empty and it starting to wait.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix::Addr;
use chrono::{DateTime, Utc};
use pinkpage_actors::{AppError, ErrorCode};
use serde::Serialize;
use tokio::sync::Notify;

use super::audit::RecordAuditBatch;
use super::{NewAuditEvent, StoreActor};

/// Most rows held in memory while the store fails.
pub const MAX_PENDING: usize = 10_000;

/// Most bytes those rows may hold (a command row carries up to 64 KiB of
/// command text, so the row bound alone would allow 640 MB).
pub const MAX_PENDING_BYTES: usize = 16 << 20;

/// Rows anyone can cause without signing in (`auth.*`: failed logins)
/// may fill at most this share of either bound, so a flood of them while
/// the store fails cannot crowd out the rows of work already running.
const ANONYMOUS_SHARE: usize = 4;

/// Most rows written in one transaction.
const BATCH: usize = 256;

/// The first retry after a failed write; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);

/// The longest wait between retries: how late recovery is noticed at most.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// A write still unfinished after this long (a hung disk, a stuck network
/// filesystem) makes the journal degraded as a failed one does; it is not
/// cancelled (that could write its rows twice), and its end decides.
/// Longer than SQLite's busy timeout (5 s), which ends a locked write.
const WRITE_HANGS_AFTER: Duration = Duration::from_secs(10);

/// The journal; cheap to clone, every clone the same queue.
#[derive(Clone)]
pub struct AuditJournal {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    /// `PINKPAGE_AUDIT_FAIL_OPEN`: admit new work while degraded, loudly.
    fail_open: bool,
}

#[derive(Default)]
struct State {
    queue: VecDeque<NewAuditEvent>,
    /// Estimated bytes of the queued rows ([`weight`]).
    bytes: usize,
    /// Of the queued rows, those anyone can cause (`auth.*`), and their
    /// estimated bytes.
    anonymous: usize,
    anonymous_bytes: usize,
    /// Set from the first failed write until a write succeeds.
    failing: Option<Failing>,
    failed_writes: u64,
    dropped: u64,
}

struct Failing {
    since: DateTime<Utc>,
}

/// What `GET /api/v1/health` shows of the audit trail.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct JournalHealth {
    /// `ok`, or `degraded` while audit rows cannot be written (new remote
    /// actions are refused with 40000 then, unless the daemon fails open).
    pub status: &'static str,
    /// When the current degradation began (RFC 3339), when degraded.
    pub degraded_since: Option<String>,
    /// Audit rows waiting to be written.
    pub pending_rows: usize,
    /// Failed write attempts since the daemon started.
    pub failed_writes: u64,
    /// Rows dropped because the queue was full, since the daemon started.
    pub dropped_rows: u64,
}

impl AuditJournal {
    /// A journal writing through `store`; its writer runs on the current
    /// actix system until the daemon stops. `fail_open` admits new work
    /// while degraded.
    pub fn start(store: Addr<StoreActor>, fail_open: bool) -> AuditJournal {
        Self::with_sink(fail_open, move |batch| {
            let store = store.clone();
            async move {
                match store.send(RecordAuditBatch(batch)).await {
                    Ok(result) => result,
                    Err(e) => Err(AppError::with_detail(
                        ErrorCode::Database,
                        format!("store unavailable: {e}"),
                    )),
                }
            }
        })
    }

    /// A journal whose writer hands each batch to `sink` (the store, or a
    /// fake in unit tests).
    fn with_sink<F, Fut>(fail_open: bool, sink: F) -> AuditJournal
    where
        F: FnMut(Vec<NewAuditEvent>) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<(), AppError>> + 'static,
    {
        let journal = AuditJournal {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: Notify::new(),
                fail_open,
            }),
        };
        actix::spawn(write_behind(journal.shared.clone(), sink));
        journal
    }

    /// Queues `event`; never waits. Dropped (and logged) when
    /// [`MAX_PENDING`] rows already wait.
    pub fn record(&self, event: NewAuditEvent) {
        let mut state = self.shared.lock();
        let size = weight(&event);
        let anonymous = is_anonymous(&event);
        let full = state.queue.len() >= MAX_PENDING || state.bytes + size > MAX_PENDING_BYTES;
        let share_used = anonymous
            && (state.anonymous >= MAX_PENDING / ANONYMOUS_SHARE
                || state.anonymous_bytes + size > MAX_PENDING_BYTES / ANONYMOUS_SHARE);
        if full || share_used {
            state.dropped += 1;
            log::error!(
                code = ErrorCode::Database.code(),
                action = event.action.as_str(),
                user = event.user.as_deref().unwrap_or("-"),
                server = event.server.as_deref().unwrap_or("-"),
                dropped = state.dropped;
                "audit row dropped: the store has failed and the rows waiting fill its bound"
            );
            return;
        }
        state.bytes += size;
        if anonymous {
            state.anonymous += 1;
            state.anonymous_bytes += size;
        }
        state.queue.push_back(event);
        drop(state);
        self.shared.wake.notify_one();
    }

    /// `Err(40000)` while audit rows cannot be written: new remote actions
    /// must not start then (WAVE2: fail closed). `what` names the action
    /// for the log line a fail-open daemon writes instead.
    pub fn admit_new_work(&self, what: &str) -> Result<(), AppError> {
        match &self.shared.lock().failing {
            None => Ok(()),
            Some(_) if self.shared.fail_open => {
                log::warn!(
                    code = ErrorCode::Database.code(),
                    action = what;
                    "the audit trail cannot be written, and PINKPAGE_AUDIT_FAIL_OPEN admits this new remote action anyway"
                );
                Ok(())
            }
            Some(f) => Err(AppError::with_detail(
                ErrorCode::Database,
                format!(
                    "the audit trail cannot be written since {}: new remote actions are refused until the store recovers",
                    f.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            )),
        }
    }

    /// Returns once every row queued so far is written (or never, while
    /// the store fails: bound it with a timeout). For a shutdown.
    pub async fn flushed(&self) {
        while !self.shared.lock().queue.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The journal's state for the health endpoint.
    pub fn health(&self) -> JournalHealth {
        let state = self.shared.lock();
        JournalHealth {
            status: if state.failing.is_some() { "degraded" } else { "ok" },
            degraded_since: state
                .failing
                .as_ref()
                .map(|f| f.since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            pending_rows: state.queue.len(),
            failed_writes: state.failed_writes,
            dropped_rows: state.dropped,
        }
    }
}

/// A row's size in memory, near enough: its strings and its detail.
fn weight(e: &NewAuditEvent) -> usize {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    256 + e.actor.len()
        + e.action.len()
        + text(&e.server)
        + text(&e.command)
        + text(&e.user)
        + text(&e.remote_addr)
        + e.detail.as_ref().map_or(0, |d| d.to_string().len())
}

/// Whether anyone can cause this row without signing in.
fn is_anonymous(e: &NewAuditEvent) -> bool {
    e.action.starts_with("auth.")
}

impl State {
    /// Marks the journal failing from now, unless it already is.
    fn mark_failing(&mut self) {
        if self.failing.is_none() {
            self.failing = Some(Failing { since: Utc::now() });
        }
    }
}

impl Shared {
    /// The state; a panic while it was held cannot leave it half-changed
    /// (every change is one field assignment or one queue operation), so a
    /// poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The writer: takes rows from the front of the queue in batches, and
/// removes them only once the store has committed them.
async fn write_behind<F, Fut>(shared: Arc<Shared>, mut sink: F)
where
    F: FnMut(Vec<NewAuditEvent>) -> Fut,
    Fut: std::future::Future<Output = Result<(), AppError>>,
{
    let mut retry = RETRY_FIRST;
    loop {
        let batch: Vec<NewAuditEvent> = shared.lock().queue.iter().take(BATCH).cloned().collect();
        if batch.is_empty() {
            shared.wake.notified().await;
            continue;
        }
        let n = batch.len();
        let write = sink(batch);
        tokio::pin!(write);
        let written = tokio::select! {
            result = &mut write => result,
            () = tokio::time::sleep(WRITE_HANGS_AFTER) => {
                {
                    let mut state = shared.lock();
                    state.mark_failing();
                    log::error!(
                        code = ErrorCode::Database.code(),
                        pending = state.queue.len();
                        "an audit write has not finished for {WRITE_HANGS_AFTER:?}: the store is taken as failing until it ends"
                    );
                }
                write.await
            }
        };
        match written {
            Ok(()) => {
                let mut state = shared.lock();
                for written in state.queue.drain(..n).collect::<Vec<_>>() {
                    let size = weight(&written);
                    state.bytes -= size;
                    if is_anonymous(&written) {
                        state.anonymous -= 1;
                        state.anonymous_bytes -= size;
                    }
                }
                if let Some(f) = state.failing.take() {
                    log::warn!(
                        degraded_for_s = (Utc::now() - f.since).num_seconds(),
                        pending = state.queue.len(),
                        dropped = state.dropped;
                        "audit trail recovered: queued rows are being written and new remote actions are admitted again"
                    );
                }
                retry = RETRY_FIRST;
            }
            Err(e) => {
                {
                    let mut state = shared.lock();
                    state.failed_writes += 1;
                    state.mark_failing();
                    let new_work = if shared.fail_open {
                        "admitted anyway (PINKPAGE_AUDIT_FAIL_OPEN)"
                    } else {
                        "refused until the store recovers"
                    };
                    log::error!(
                        code = e.code.code(),
                        error = e.to_string(),
                        pending = state.queue.len(),
                        failed_writes = state.failed_writes;
                        "audit rows not written; new remote actions are {new_work}; retrying in {retry:?}"
                    );
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// A store that fails while `down` is set and keeps what it took.
    #[derive(Clone, Default)]
    struct FakeStore {
        down: Rc<RefCell<bool>>,
        rows: Rc<RefCell<Vec<String>>>,
    }

    impl FakeStore {
        fn journal(&self, fail_open: bool) -> AuditJournal {
            let fake = self.clone();
            AuditJournal::with_sink(fail_open, move |batch: Vec<NewAuditEvent>| {
                let fake = fake.clone();
                async move {
                    if *fake.down.borrow() {
                        return Err(AppError::with_detail(ErrorCode::Database, "disk full"));
                    }
                    fake.rows.borrow_mut().extend(batch.into_iter().map(|e| e.action));
                    Ok(())
                }
            })
        }

        fn set_down(&self, down: bool) {
            *self.down.borrow_mut() = down;
        }
    }

    fn event(n: usize) -> NewAuditEvent {
        NewAuditEvent::new("test", format!("a{n}"))
    }

    /// Lets the writer task run until it waits (for rows or a retry).
    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[actix::test]
    async fn rows_are_written_in_order_and_the_journal_stays_ok() {
        let fake = FakeStore::default();
        let journal = fake.journal(false);
        for n in 0..600 {
            journal.record(event(n));
        }
        settle().await;
        let rows = fake.rows.borrow().clone();
        assert_eq!(rows, (0..600).map(|n| format!("a{n}")).collect::<Vec<_>>());
        assert_eq!(journal.health().status, "ok");
        assert!(journal.admit_new_work("x").is_ok());
    }

    #[actix::test(start_paused = true)]
    async fn a_failing_store_degrades_refuses_new_work_keeps_rows_and_recovers() {
        let fake = FakeStore::default();
        fake.set_down(true);
        let journal = fake.journal(false);
        journal.record(event(1));
        journal.record(event(2));
        settle().await;
        let h = journal.health();
        assert_eq!((h.status, h.pending_rows, h.failed_writes), ("degraded", 2, 1));
        assert_eq!(
            journal.admit_new_work("ssh_command").unwrap_err().code,
            ErrorCode::Database
        );
        // retries back off: 0.5 s, 1 s, 2 s after each failure
        tokio::time::sleep(Duration::from_millis(3600)).await;
        settle().await;
        assert_eq!(journal.health().failed_writes, 4);
        journal.record(event(3));
        fake.set_down(false);
        // the next retry (4 s after the last) writes everything, in order
        tokio::time::sleep(Duration::from_secs(4)).await;
        settle().await;
        assert_eq!(*fake.rows.borrow(), ["a1", "a2", "a3"]);
        let h = journal.health();
        assert_eq!((h.status, h.pending_rows, h.dropped_rows), ("ok", 0, 0));
        assert!(h.degraded_since.is_none());
        assert!(journal.admit_new_work("ssh_command").is_ok());
    }

    #[actix::test(start_paused = true)]
    async fn the_queue_is_bounded_and_what_it_drops_is_counted() {
        let fake = FakeStore::default();
        fake.set_down(true);
        let journal = fake.journal(false);
        for n in 0..MAX_PENDING + 5 {
            journal.record(event(n));
        }
        settle().await;
        let h = journal.health();
        assert_eq!((h.pending_rows, h.dropped_rows), (MAX_PENDING, 5));
        fake.set_down(false);
        tokio::time::sleep(RETRY_MAX).await;
        settle().await;
        // the oldest were kept, the newest dropped
        let rows = fake.rows.borrow();
        assert_eq!(rows.len(), MAX_PENDING);
        assert_eq!(rows[0], "a0");
        assert_eq!(rows[MAX_PENDING - 1], format!("a{}", MAX_PENDING - 1));
    }

    #[actix::test(start_paused = true)]
    async fn a_write_that_hangs_degrades_the_journal_until_it_ends() {
        let release = Rc::new(tokio::sync::Notify::new());
        let rows = Rc::new(RefCell::new(0usize));
        let journal = AuditJournal::with_sink(false, {
            let (release, rows) = (release.clone(), rows.clone());
            move |batch: Vec<NewAuditEvent>| {
                let (release, rows) = (release.clone(), rows.clone());
                async move {
                    release.notified().await;
                    *rows.borrow_mut() += batch.len();
                    Ok(())
                }
            }
        });
        journal.record(event(1));
        settle().await;
        assert_eq!(
            journal.health().status,
            "ok",
            "a write in progress is not a failure"
        );
        tokio::time::sleep(WRITE_HANGS_AFTER + Duration::from_millis(10)).await;
        settle().await;
        assert_eq!(journal.health().status, "degraded");
        assert!(journal.admit_new_work("ssh_command").is_err());
        release.notify_one();
        settle().await;
        assert_eq!(*rows.borrow(), 1);
        assert_eq!(journal.health().status, "ok");
    }

    #[actix::test(start_paused = true)]
    async fn the_queue_is_bounded_by_bytes_too() {
        let fake = FakeStore::default();
        fake.set_down(true);
        let journal = fake.journal(false);
        let big = |n: usize| {
            let mut e = event(n);
            e.command = Some("x".repeat(64 * 1024));
            e
        };
        let fits = MAX_PENDING_BYTES / weight(&big(0));
        for n in 0..fits + 3 {
            journal.record(big(n));
        }
        let h = journal.health();
        assert_eq!((h.pending_rows, h.dropped_rows), (fits, 3));
        assert!(fits < MAX_PENDING, "the byte bound is the one that held");
    }

    #[actix::test(start_paused = true)]
    async fn a_flood_of_anonymous_rows_leaves_room_for_the_rows_of_work() {
        let fake = FakeStore::default();
        fake.set_down(true);
        let journal = fake.journal(false);
        for _ in 0..MAX_PENDING {
            journal.record(NewAuditEvent::new("rest", "auth.login.failed"));
        }
        let h = journal.health();
        assert_eq!(h.pending_rows, MAX_PENDING / ANONYMOUS_SHARE);
        // the work already running still gets its rows queued
        journal.record(NewAuditEvent::new("conn", "ssh.command.end"));
        assert_eq!(journal.health().pending_rows, MAX_PENDING / ANONYMOUS_SHARE + 1);
        fake.set_down(false);
        tokio::time::sleep(RETRY_MAX).await;
        settle().await;
        let h = journal.health();
        assert_eq!((h.status, h.pending_rows), ("ok", 0));
        assert_eq!(
            fake.rows.borrow().last().map(String::as_str),
            Some("ssh.command.end")
        );
    }

    #[actix::test(start_paused = true)]
    async fn failing_open_admits_new_work_while_degraded() {
        let fake = FakeStore::default();
        fake.set_down(true);
        let journal = fake.journal(true);
        journal.record(event(1));
        settle().await;
        assert_eq!(journal.health().status, "degraded");
        assert!(journal.admit_new_work("ssh_command").is_ok());
    }
}
