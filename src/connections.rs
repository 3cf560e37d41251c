//! [`Connections`]: every open WebSocket, as the daemon sees it from
//! outside the connection actors: the caps on how many (30001 in all,
//! 30002 per user, checked at upgrade), and the stall watchdog that drops
//! a client which stopped reading (30003).
//!
//! The watchdog and the body wrapper it relies on are in
//! `ws::stall`.
//!
//! Why the watchdog lives outside the connection actor: actix-web writes
//! the response body (the WebSocket's outgoing frames) only while the
//! socket's write buffer has room. A client that stops reading fills it,
//! and from then on nothing polls the body stream, and with it the
//! connection actor: its heartbeat timer never fires, its mailbox (a
//! `LockRevoked`, a task's output) is never handled. So:
//! - `ws::stall::Watched` wraps the body stream and stamps each poll. A healthy
//!   connection is polled at least once per heartbeat (the ping timer
//!   wakes it), so a stamp older than `PINKPAGE_WS_TIMEOUT_S` means the
//!   writer has not taken data for that long: the output is not draining.
//!   It hands the writer at most `ws::stall::SLICE` bytes at a time (zero-copy
//!   slices of the actor's buffer, which can hold megabytes of output in
//!   one go), so a client on a slow link that keeps reading takes a slice
//!   well within the timeout and is never mistaken for a stalled one.
//! - the watchdog (`ws::stall::spawn_watchdog`, a task on the system arbiter)
//!   looks at the stamps every `timeout / 4` (at most 1 s) and, for a
//!   stalled connection: stops its tasks through its [`LiveTasks`] (the
//!   task actors are polled on their own), shuts the TCP connection down
//!   (the dispatcher's next write fails and it drops the actor, whose
//!   `stopping` then runs as for any disconnect), and tells the lock the
//!   connection is gone once those tasks are done (bounded by
//!   `REVOKE_TIMEOUT`), which keeps WAVE2's rule: the lock is released
//!   after the task stopped or was given up.
//!
//! Who owns what, and why no race: the registry's map and per-user counts
//! sit behind one mutex, so the cap check and the insertion are one step
//! (two upgrades cannot both take the last place). A [`ConnWatch`] is
//! shared by the body wrapper (which stamps it and, when dropped, removes
//! it), the connection actor (which tracks its tasks in it) and the
//! watchdog; each field is atomic or behind its own mutex, and the
//! watchdog acts on a connection at most once (`dropped` is swapped).
//! The socket it shuts down is the registry's own duplicate of the
//! connection's descriptor, so it can never be a descriptor number that
//! was closed and reused by another connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pinkpage_actors::task::live::LiveTasks;
use pinkpage_actors::task::TaskHandle;
use pinkpage_actors::{AppError, ConnectionId, ErrorCode};

use crate::settings::caps::CapSettings;

/// Every WebSocket endpoint's domain name (`Domain::NAME` in `ws`), so
/// the metrics show each one, at zero when none is open.
pub const ENDPOINTS: &[&str] = &["stub", "bmx4", "bmx5", "diff", "terminal"];

/// The TCP socket descriptor of an HTTP connection, recorded by the
/// server's `on_connect` so an upgrade can keep a duplicate.
#[derive(Debug, Clone, Copy)]
pub struct SocketFd(pub std::os::fd::RawFd);

/// What the daemon keeps about one open WebSocket. See the module docs.
pub struct ConnWatch {
    /// The connection.
    pub id: ConnectionId,
    /// Its user, for the per-user count and the audit row.
    pub user: Arc<str>,
    /// Its endpoint's domain (`stub`, `terminal`, ...), for the metrics.
    pub endpoint: &'static str,
    /// Its client's address, for the audit row.
    pub remote: Option<IpAddr>,
    /// Its tasks, stoppable without its mailbox.
    pub tasks: LiveTasks,
    /// When its body stream was last polled, in ms since `epoch`.
    last_polled_ms: AtomicU64,
    epoch: Instant,
    /// A duplicate of its TCP socket, to shut it down; `None` when not on
    /// TCP (tests) or once the connection ended.
    socket: Mutex<Option<std::net::TcpStream>>,
    /// Set by the watchdog when it drops the connection (once).
    dropped: AtomicBool,
    /// Operations running now (10008).
    ops: AtomicUsize,
}

impl ConnWatch {
    pub(crate) fn stamp(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_polled_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the body stream was last polled.
    pub(crate) fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_polled_ms.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }

    pub(crate) fn socket(&self) -> MutexGuard<'_, Option<std::net::TcpStream>> {
        self.socket.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts an operation (SFTP work, a diff, a script) if fewer than
    /// `max` run on this connection; 10008 otherwise. The operation ends
    /// when the guard is dropped.
    pub fn begin_operation(self: &Arc<Self>, max: usize) -> Result<OperationGuard, AppError> {
        let taken = self.ops.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        });
        match taken {
            Ok(_) => Ok(OperationGuard(self.clone())),
            Err(n) => Err(AppError::with_detail(
                ErrorCode::TooManyOperations,
                format!("{n} operations run on this connection; the limit is {max}"),
            )),
        }
    }

    /// Operations running now on this connection.
    pub fn operations(&self) -> usize {
        self.ops.load(Ordering::Acquire)
    }
}

/// One running operation of a connection; ends when dropped.
pub struct OperationGuard(Arc<ConnWatch>);

impl OperationGuard {
    /// Keeps the operation counted until the task behind `handle` is done,
    /// and hands the handle back (for a task kept by its domain).
    pub fn until_done(self, handle: TaskHandle) -> TaskHandle {
        let done = handle.done();
        actix::spawn(async move {
            done.wait().await;
            drop(self);
        });
        handle
    }
}

impl Drop for OperationGuard {
    fn drop(&mut self) {
        self.0.ops.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Inner {
    all: HashMap<ConnectionId, Arc<ConnWatch>>,
    per_user: HashMap<Arc<str>, usize>,
    /// The two caps now: a reload may change them ([`Connections::set_caps`]);
    /// kept under the same lock as the counts they bound, so a place is
    /// checked and taken against one pair of caps. A cap lowered below
    /// the connections open refuses new ones until enough have closed.
    ws_max: usize,
    ws_max_per_user: usize,
}

/// Every open WebSocket. See the module docs.
pub struct Connections {
    /// The most WebSockets the descriptor limit allows, whatever the
    /// setting (`crate::limits::descriptors`), and why, for the 30001
    /// detail when it is the bound.
    fd_bound: (usize, String),
    inner: Mutex<Inner>,
}

/// A place taken among the open WebSockets; given back when dropped (by
/// the body stream that holds it, when the connection ends).
pub struct Admission {
    watch: Arc<ConnWatch>,
    registry: Arc<Connections>,
}

impl Admission {
    /// The connection's shared handle.
    pub fn watch(&self) -> &Arc<ConnWatch> {
        &self.watch
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // The duplicate descriptor goes now: the socket must close when
        // the connection does, not when the last handle clone does.
        self.watch.socket().take();
        self.registry.leave(&self.watch);
    }
}

impl Connections {
    /// An empty registry with these caps.
    pub fn new(caps: CapSettings) -> Arc<Connections> {
        Connections::bounded(caps, usize::MAX, String::new())
    }

    /// An empty registry with these caps, never more WebSockets than
    /// `fd_bound` allows, for `fd_reason` (the descriptor limit may give
    /// fewer places than the setting; see `crate::limits::descriptors`).
    pub fn bounded(caps: CapSettings, fd_bound: usize, fd_reason: String) -> Arc<Connections> {
        Arc::new(Connections {
            fd_bound: (fd_bound, fd_reason),
            inner: Mutex::new(Inner {
                all: HashMap::new(),
                per_user: HashMap::new(),
                ws_max: caps.ws_max.min(fd_bound),
                ws_max_per_user: caps.ws_max_per_user,
            }),
        })
    }

    /// The most WebSockets this daemon may ever admit: the plan made at
    /// start from the descriptor limit (a reload may lower the cap, not
    /// raise it past this).
    pub fn ws_max_bound(&self) -> usize {
        self.fd_bound.0
    }

    /// New caps (a reload): connections already open stay; past a
    /// lowered cap new ones are refused until enough have closed.
    pub fn set_caps(&self, ws_max: usize, ws_max_per_user: usize) {
        let mut inner = self.inner();
        inner.ws_max = ws_max.min(self.fd_bound.0);
        inner.ws_max_per_user = ws_max_per_user;
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a place for connection `id` of `user`: 30001 when the daemon
    /// is full, 30002 when the user is. Checked and taken in one step.
    pub fn admit(
        self: &Arc<Self>,
        id: ConnectionId,
        endpoint: &'static str,
        user: Arc<str>,
        remote: Option<IpAddr>,
        socket: Option<std::net::TcpStream>,
    ) -> Result<Admission, AppError> {
        debug_assert!(
            ENDPOINTS.contains(&endpoint),
            "{endpoint} is missing from ENDPOINTS"
        );
        let mut inner = self.inner();
        if inner.all.len() >= inner.ws_max {
            let why = if inner.ws_max == self.fd_bound.0 {
                self.fd_bound.1.as_str()
            } else {
                "PINKPAGE_WS_MAX_CONNECTIONS"
            };
            return Err(AppError::with_detail(
                ErrorCode::WsTooManyConnections,
                format!("the limit is {} ({why})", inner.ws_max),
            ));
        }
        let mine = inner.per_user.get(&user).copied().unwrap_or(0);
        if mine >= inner.ws_max_per_user {
            return Err(AppError::with_detail(
                ErrorCode::WsTooManyUserConnections,
                format!("the limit is {} a user", inner.ws_max_per_user),
            ));
        }
        let watch = Arc::new(ConnWatch {
            id,
            endpoint,
            user: user.clone(),
            remote,
            tasks: LiveTasks::default(),
            last_polled_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            socket: Mutex::new(socket),
            dropped: AtomicBool::new(false),
            ops: AtomicUsize::new(0),
        });
        inner.all.insert(id, watch.clone());
        *inner.per_user.entry(user).or_insert(0) += 1;
        metrics::counter!(pinkpage_actors::metrics::WEBSOCKET_CONNECTIONS_OPENED, "endpoint" => endpoint)
            .increment(1);
        Ok(Admission {
            watch,
            registry: self.clone(),
        })
    }

    fn leave(&self, watch: &ConnWatch) {
        let mut inner = self.inner();
        if inner.all.remove(&watch.id).is_some() {
            if let Some(n) = inner.per_user.get_mut(&watch.user) {
                *n -= 1;
                if *n == 0 {
                    inner.per_user.remove(&watch.user);
                }
            }
        }
    }

    /// Open WebSockets now.
    pub fn count(&self) -> usize {
        self.inner().all.len()
    }

    /// Open WebSockets now, by endpoint (every one of [`ENDPOINTS`]).
    pub fn count_by_endpoint(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut by: std::collections::BTreeMap<&'static str, usize> =
            ENDPOINTS.iter().map(|e| (*e, 0)).collect();
        for w in self.inner().all.values() {
            *by.entry(w.endpoint).or_insert(0) += 1;
        }
        by
    }

    /// Open WebSockets whose output has not drained for `threshold` (a
    /// healthy one drains at least once per heartbeat): the ones the
    /// watchdog will drop once it is `PINKPAGE_WS_TIMEOUT_S`.
    pub fn not_draining(&self, threshold: Duration) -> usize {
        self.inner().all.values().filter(|w| w.idle() > threshold).count()
    }

    /// The connections whose body stream has not been polled for
    /// `timeout`, each returned once.
    pub(crate) fn take_stalled(&self, timeout: Duration) -> Vec<Arc<ConnWatch>> {
        self.inner()
            .all
            .values()
            .filter(|w| w.idle() > timeout && !w.dropped.swap(true, Ordering::AcqRel))
            .cloned()
            .collect()
    }

    /// Every connection not already dropped, each returned once (a
    /// shutdown cutting off the clients that did not go).
    pub fn take_all(&self) -> Vec<Arc<ConnWatch>> {
        self.inner()
            .all
            .values()
            .filter(|w| !w.dropped.swap(true, Ordering::AcqRel))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(all: usize, per_user: usize) -> CapSettings {
        CapSettings {
            ws_max: all,
            ws_max_per_user: per_user,
            ..CapSettings::default()
        }
    }

    #[test]
    fn the_caps_are_checked_at_admission_and_places_come_back_when_dropped() {
        let reg = Connections::new(caps(3, 2));
        let ana = || Arc::<str>::from("ana");
        let a1 = reg.admit(ConnectionId::new(), "stub", ana(), None, None).unwrap();
        let _a2 = reg.admit(ConnectionId::new(), "stub", ana(), None, None).unwrap();
        let err = reg
            .admit(ConnectionId::new(), "stub", ana(), None, None)
            .err()
            .unwrap();
        assert_eq!(err.code, ErrorCode::WsTooManyUserConnections);
        let _b = reg
            .admit(ConnectionId::new(), "stub", "bo".into(), None, None)
            .unwrap();
        let err = reg
            .admit(ConnectionId::new(), "stub", "cy".into(), None, None)
            .err()
            .unwrap();
        assert_eq!(err.code, ErrorCode::WsTooManyConnections);
        assert_eq!(reg.count(), 3);
        drop(a1);
        assert_eq!(reg.count(), 2);
        reg.admit(ConnectionId::new(), "stub", ana(), None, None).unwrap();
    }

    #[test]
    fn operations_past_the_cap_get_10008_and_ending_one_frees_a_place() {
        let reg = Connections::new(caps(10, 10));
        let adm = reg
            .admit(ConnectionId::new(), "stub", "ana".into(), None, None)
            .unwrap();
        let w = adm.watch().clone();
        let one = w.begin_operation(2).unwrap();
        let _two = w.begin_operation(2).unwrap();
        assert_eq!(
            w.begin_operation(2).err().unwrap().code,
            ErrorCode::TooManyOperations
        );
        drop(one);
        assert_eq!(w.operations(), 1);
        assert!(w.begin_operation(2).is_ok());
    }
}
