//! The journal: the one path every record takes to the store, and what
//! the daemon does while the store cannot take them (WAVE2, "Audit when
//! the store fails").
//!
//! Every record the daemon writes goes through here: audit rows, BMX4 runs
//! and results, workflow runs and steps, health transitions, the records
//! of temporary files on servers, and, as later work adds them, any new
//! kind of record as a new [`Stream`]; nothing else writes with a retry of
//! its own. One policy for all of them:
//! - **order per stream**: a stream's records are written in the order
//!   they were recorded, each stream in batches (one transaction each) by
//!   one writer task that gives the streams turns;
//! - **bounded memory**: the queues share one bound by bytes and records,
//!   with reserved shares (`queue`): bulk output never crowds out audit
//!   rows, failed logins have a small share of their own; a record past
//!   the bound is dropped, counted, logged, and reported in a
//!   `records.dropped` audit row once the store takes writes again;
//! - **kept while the store fails**: a failed write leaves its records at
//!   the front of their queue; the writer retries with a backoff (0.5 s
//!   doubling to 5 s) and the first write that succeeds drains the queues;
//! - **fail closed**: while the store fails the journal is *degraded* and
//!   [`Journal::admit_new_work`] refuses new remote actions with 40000
//!   (unless `PINKPAGE_AUDIT_FAIL_OPEN`); work already running goes on.
//!
//! A caller that must know its record is stored (a BMX4 result before its
//! client sees it, a temporary-file record before the file exists, a run's
//! row before it starts) waits for the record's [`Receipt`] with
//! [`Journal::settled`], which gives up waiting as soon as the store is
//! known to fail; everyone else records and goes on.
//!
//! Who owns what: `Shared::state` is the only mutable state; callers push
//! under its mutex and never wait on the store; the writer task is the
//! only one that removes records, and only once the store confirmed them,
//! so a record is never lost between its queue and the store. A push wakes
//! the writer through a `Notify`, whose stored permit covers a push that
//! lands between the writer finding the queues empty and it starting to
//! wait. Whether the store fails is also published on a `watch` channel,
//! so a waiting caller hears it at once.

pub mod engine;
mod queue;
mod record;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use pinkpage_actors::metrics as metrics_names;
use pinkpage_actors::{AppError, ErrorCode};
use serde::Serialize;
use tokio::sync::{oneshot, watch, Notify};

pub use self::queue::Bounds;
use self::queue::{Pending, Queues};
pub use self::record::{Class, Record, Settled, Stream};
use crate::records::NewAuditEvent;
use crate::store::{Applied, Stores, Writes};

/// Most records written in one transaction.
const BATCH: usize = 256;
/// Most bytes written in one transaction (a batch result carries up to two
/// output caps).
const BATCH_BYTES: usize = 8 << 20;
/// The first retry after a failed write; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between retries: how late recovery is noticed at most.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// A write still unfinished after this long (a hung disk, a stuck network
/// filesystem) makes the journal degraded as a failed one does; it is not
/// cancelled (that could write its records twice), and its end decides.
/// Longer than SQLite's busy timeout (5 s), which ends a locked write.
const WRITE_HANGS_AFTER: Duration = Duration::from_secs(10);

/// Tells once a record is written, refused or dropped. Dropping it is
/// fine: the record is written anyway.
#[must_use = "wait with Journal::settled, or drop it if the outcome does not matter"]
pub struct Receipt(oneshot::Receiver<Settled>);

impl Receipt {
    /// The outcome does not matter to the caller: the record is written
    /// (or dropped and counted) all the same.
    pub fn ignore(self) {}
}

/// The journal; cheap to clone, every clone the same queues.
#[derive(Clone)]
pub struct Journal {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    /// `true` while the store fails; waiting callers watch it.
    failing_tx: watch::Sender<bool>,
    /// `PINKPAGE_AUDIT_FAIL_OPEN`: admit new work while degraded, loudly.
    fail_open: bool,
    bounds: Bounds,
}

#[derive(Default)]
struct State {
    queues: Queues,
    /// Set from the first failed write until a write succeeds.
    failing: Option<DateTime<Utc>>,
    failed_writes: u64,
}

/// What `GET /api/v1/health` shows of the journal.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct JournalHealth {
    /// `ok`, or `degraded` while records cannot be written (new remote
    /// actions are refused with 40000 then, unless the daemon fails open).
    pub status: &'static str,
    /// When the current degradation began (RFC 3339), when degraded.
    pub degraded_since: Option<String>,
    /// Records waiting to be written (every stream).
    pub pending_rows: usize,
    /// Their estimated size in memory.
    pub pending_bytes: usize,
    /// Failed write attempts since the daemon started.
    pub failed_writes: u64,
    /// Records dropped because the journal's bound was full, since the
    /// daemon started (every stream).
    pub dropped_rows: u64,
}

impl Journal {
    /// A journal writing into `stores`; its writer runs on the current
    /// runtime until the daemon stops. `fail_open` admits new work while
    /// degraded.
    pub fn start(stores: Stores, fail_open: bool) -> Journal {
        Self::with_bounds(stores, fail_open, Bounds::default())
    }

    /// [`start`](Self::start) with other bounds (tests).
    pub fn with_bounds(stores: Stores, fail_open: bool, bounds: Bounds) -> Journal {
        let (failing_tx, _) = watch::channel(false);
        let journal = Journal {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: Notify::new(),
                failing_tx,
                fail_open,
                bounds,
            }),
        };
        // every stream's failures start at zero, so an alert on their
        // increase has a series from the first scrape
        for i in 0..record::STREAMS {
            let stream = Stream::from_index(i);
            metrics::counter!(metrics_names::STORE_WRITE_FAILURES, "stream" => stream.name()).increment(0);
        }
        actix::spawn(write_behind(journal.shared.clone(), stores));
        journal
    }

    /// Queues `record`; never waits. Dropped (and logged) when the bound
    /// has no room for it.
    pub fn record(&self, record: impl Into<Record>) -> Receipt {
        let record = record.into();
        let (tx, rx) = oneshot::channel();
        let pending = Pending {
            weight: record.weight(),
            class: record.class(),
            record,
            receipt: Some(tx),
        };
        let mut state = self.shared.lock();
        match state.queues.push(&self.shared.bounds, pending) {
            Ok(()) => {
                drop(state);
                self.shared.wake.notify_one();
            }
            Err(lost) => {
                let stream = lost.record.stream();
                log::error!(
                    code = ErrorCode::Database.code(),
                    stream = stream.name(),
                    record = lost.record.describe(),
                    dropped = state.queues.dropped[stream as usize];
                    "record dropped: the journal's bound is full (the store fails or cannot keep up)"
                );
                if let Some(receipt) = lost.receipt {
                    let _ = receipt.send(Settled::Dropped);
                }
            }
        }
        Receipt(rx)
    }

    /// Records an audit row without waiting for it.
    pub fn audit(&self, event: NewAuditEvent) {
        self.record(event).ignore();
    }

    /// How `receipt`'s record ended; [`Settled::Waiting`] at once, or as
    /// soon as it becomes so, while the store fails (the record stays
    /// queued and is written once the store recovers).
    pub async fn settled(&self, receipt: Receipt) -> Settled {
        let mut failing = self.shared.failing_tx.subscribe();
        let mut rx = receipt.0;
        tokio::select! {
            biased;
            settled = &mut rx => settled.unwrap_or(Settled::Dropped),
            _ = failing.wait_for(|f| *f) => match rx.try_recv() {
                Ok(settled) => settled,
                Err(_) => Settled::Waiting,
            },
        }
    }

    /// Whether the store is known to fail now.
    pub fn is_failing(&self) -> bool {
        self.shared.lock().failing.is_some()
    }

    /// `Err(40000)` while records cannot be written: new remote actions
    /// must not start then (WAVE2: fail closed). `what` names the action
    /// for the line a fail-open daemon logs instead.
    pub fn admit_new_work(&self, what: &str) -> Result<(), AppError> {
        let since = self.shared.lock().failing;
        match since {
            None => Ok(()),
            Some(_) if self.shared.fail_open => {
                log::warn!(
                    code = ErrorCode::Database.code(),
                    action = what;
                    "the audit trail cannot be written, and PINKPAGE_AUDIT_FAIL_OPEN admits this new remote action anyway"
                );
                Ok(())
            }
            Some(since) => Err(AppError::with_detail(
                ErrorCode::Database,
                format!(
                    "the audit trail cannot be written since {}: new remote actions are refused until the store recovers",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            )),
        }
    }

    /// Returns once every record queued so far is written (or never, while
    /// the store fails: bound it with a timeout). For a shutdown.
    pub async fn flushed(&self) {
        while !self.shared.lock().queues.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The journal's state for the health endpoint.
    pub fn health(&self) -> JournalHealth {
        let state = self.shared.lock();
        let (pending_rows, pending_bytes) = state.queues.pending();
        JournalHealth {
            status: if state.failing.is_some() { "degraded" } else { "ok" },
            degraded_since: state
                .failing
                .map(|since| since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            pending_rows,
            pending_bytes,
            failed_writes: state.failed_writes,
            dropped_rows: state.queues.dropped.iter().sum(),
        }
    }
}

impl Shared {
    /// The state; a panic while it was held cannot leave it half-changed
    /// (every change is one push, one pop or one field assignment), so a
    /// poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the journal failing from now, unless it already is.
    fn mark_failing(&self, state: &mut State) {
        if state.failing.is_none() {
            state.failing = Some(Utc::now());
            self.failing_tx.send_replace(true);
        }
    }
}

/// Hands a batch of one stream to its store.
fn write(stores: &Stores, stream: Stream, batch: Vec<Record>) -> BoxFuture<'static, Writes> {
    fn only<T>(batch: Vec<Record>, take: impl Fn(Record) -> Option<T>) -> Vec<T> {
        batch.into_iter().filter_map(take).collect()
    }
    match stream {
        Stream::Audit => stores.audit.append(only(batch, |r| match r {
            Record::Audit(e) => Some(e),
            _ => None,
        })),
        Stream::Batch => stores.batches.apply(only(batch, |r| match r {
            Record::Batch(w) => Some(w),
            _ => None,
        })),
        Stream::Workflow => stores.workflows.apply(only(batch, |r| match r {
            Record::Workflow(w) => Some(w),
            _ => None,
        })),
        Stream::Health => stores.health.record(only(batch, |r| match r {
            Record::Health(t) => Some(t),
            _ => None,
        })),
        Stream::TempFile => stores.temp_files.apply(only(batch, |r| match r {
            Record::TempFile(w) => Some(w),
            _ => None,
        })),
        Stream::Recording => stores.recordings.apply(only(batch, |r| match r {
            Record::Recording(w) => Some(w),
            _ => None,
        })),
    }
}

/// The writer: takes a batch from the front of one stream after the other,
/// and removes it only once the store has committed it.
async fn write_behind(shared: Arc<Shared>, stores: Stores) {
    let mut retry = RETRY_FIRST;
    let mut turn = record::STREAMS - 1;
    loop {
        let next = {
            let state = shared.lock();
            state
                .queues
                .next_stream(turn)
                .map(|stream| (stream, state.queues.front(stream, BATCH, BATCH_BYTES)))
        };
        let Some((stream, batch)) = next else {
            shared.wake.notified().await;
            continue;
        };
        turn = stream as usize;
        let n = batch.len();
        let began = std::time::Instant::now();
        let write = write(&stores, stream, batch);
        tokio::pin!(write);
        let written = tokio::select! {
            result = &mut write => result,
            () = tokio::time::sleep(WRITE_HANGS_AFTER) => {
                {
                    let mut state = shared.lock();
                    shared.mark_failing(&mut state);
                    log::error!(
                        code = ErrorCode::Database.code(),
                        stream = stream.name(),
                        pending = state.queues.pending().0;
                        "a store write has not finished for {WRITE_HANGS_AFTER:?}: the store is taken as failing until it ends"
                    );
                }
                write.await
            }
        };
        metrics::histogram!(metrics_names::STORE_WRITE_SECONDS, "stream" => stream.name())
            .record(began.elapsed().as_secs_f64());
        if written.is_err() {
            metrics::counter!(metrics_names::STORE_WRITE_FAILURES, "stream" => stream.name()).increment(1);
        }
        match written {
            Ok(applied) => {
                settle(&shared, stream, n, applied);
                retry = RETRY_FIRST;
            }
            Err(e) => {
                {
                    let mut state = shared.lock();
                    state.failed_writes += 1;
                    shared.mark_failing(&mut state);
                    let new_work = if shared.fail_open {
                        "admitted anyway (PINKPAGE_AUDIT_FAIL_OPEN)"
                    } else {
                        "refused until the store recovers"
                    };
                    log::error!(
                        code = e.code.code(),
                        error = e.to_string(),
                        stream = stream.name(),
                        pending = state.queues.pending().0,
                        failed_writes = state.failed_writes;
                        "records not written; new remote actions are {new_work}; retrying in {retry:?}"
                    );
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    }
}

/// After a batch of `stream` was committed: removes its `n` records, tells
/// their receipts, ends a degradation, and reports records dropped since
/// the last report.
fn settle(shared: &Shared, stream: Stream, n: usize, applied: Vec<Applied>) {
    let mut state = shared.lock();
    let done = state.queues.pop(stream, n);
    for (i, p) in done.into_iter().enumerate() {
        let settled = match applied.get(i) {
            Some(Applied::Written(id)) => Settled::Written(*id),
            Some(Applied::Rejected(why)) => {
                state.queues.rejected += 1;
                log::error!(code = ErrorCode::Database.code(), stream = stream.name(),
                    record = p.record.describe(), error = why.as_str();
                    "record refused by the store; it is not kept");
                Settled::Rejected(why.clone())
            }
            // a store that answers for fewer records than it took wrote
            // them all or none; it said it wrote: take it at its word
            None => Settled::Written(None),
        };
        if let Some(receipt) = p.receipt {
            let _ = receipt.send(settled);
        }
    }
    if let Some(since) = state.failing.take() {
        shared.failing_tx.send_replace(false);
        log::warn!(
            degraded_for_s = (Utc::now() - since).num_seconds(),
            pending = state.queues.pending().0,
            dropped = state.queues.dropped.iter().sum::<u64>();
            "store recovered: queued records are being written and new remote actions are admitted again"
        );
    }
    if state.queues.unreported.iter().any(|n| *n > 0) {
        let mut detail = serde_json::Map::new();
        for s in Stream::ALL {
            let n = std::mem::take(&mut state.queues.unreported[s as usize]);
            if n > 0 {
                detail.insert(s.name().to_owned(), n.into());
            }
        }
        let mut event = NewAuditEvent::new("system", "records.dropped");
        event.ended(crate::records::Outcome::Failed, None);
        event.detail = Some(serde_json::json!({
            "dropped": detail,
            "reason": "the journal's memory bound was full while the store failed or could not keep up",
        }));
        let pending = Pending {
            weight: event.weight(),
            class: Class::Work,
            record: Record::Audit(event),
            receipt: None,
        };
        // if even this row does not fit, it is counted like the others and
        // reported with the next batch
        let _ = state.queues.push(&shared.bounds, pending);
        drop(state);
        shared.wake.notify_one();
    }
}

#[cfg(test)]
mod tests;
