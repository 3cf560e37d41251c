//! `SftpPoolActor`: owns the SFTP sessions ([`SftpConn`], one per server) of
//! one client, and [`SftpPool`], the handle its users hold.
//!
//! Connecting and authenticating costs 70-120 ms (NOTES-russh), more than
//! most SFTP requests; a file browser or a directory diff sends bursts of
//! them, so a client's session to a server is reused. Each client has its
//! own pool (a WebSocket connection its own for BMX5 and for DIFF, a REST
//! call one for the call), so one client's slow transfer never holds up
//! another's.
//!
//! Who sends what:
//! - users send [`Checkout`] (through [`SftpPool::get`]) and get the
//!   session, opened on first use; concurrent checkouts for a server that
//!   is still connecting wait for the same attempt, a failed attempt is not
//!   kept and a session that died is replaced;
//! - the owner sends [`StopPool`] (through [`SftpPool::stop`]) when its
//!   client goes: the WebSocket connection in `stopping`, a REST call when
//!   it ends.
//!
//! The actor closes a session when it has been unused for the idle time
//! (its own sweep, every half idle period) and every unused session when it
//! stops. A session some request still holds is never closed under it: it
//! is forgotten and ends when that request lets go (an upload finishing its
//! cleanup, say).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, ActorContext, Addr, AsyncContext, Context, Handler, Message, ResponseFuture};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::error::{AppError, ErrorCode};
use crate::files::sftp::{SftpConn, SftpError, SftpStatus};
use crate::files::temp_files::TempFiles;
use crate::server::ServerSpec;
use crate::ssh::SshOptions;

/// How long an unused session stays open by default.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30);

/// The session to a server, opened on first use. Answers the session or
/// the error of opening it.
#[derive(Message)]
#[rtype(result = "Result<Arc<SftpConn>, SftpError>")]
pub struct Checkout {
    /// Which server.
    pub server: Arc<ServerSpec>,
    /// How to reach it, if the session must be opened.
    pub ssh: SshOptions,
}

/// Close every session nobody uses and stop (idempotent: a stopped pool
/// ignores it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopPool;

/// How many servers have a session (or one being opened); for tests and
/// diagnostics.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Count;

/// One server's session, shared by the checkouts that wait for it.
struct Slot {
    /// Set once connected; empty while connecting or after a failure.
    conn: OnceCell<Arc<SftpConn>>,
    /// Last checkout, for the idle sweep.
    last_used: Mutex<Instant>,
}

impl Slot {
    fn new() -> Self {
        Slot {
            conn: OnceCell::new(),
            last_used: Mutex::new(Instant::now()),
        }
    }

    fn touch(&self) {
        // a panic while holding this lock cannot leave an Instant half-set
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle_since(&self) -> Instant {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_dead(&self) -> bool {
        self.conn.get().is_some_and(|c| c.is_closed())
    }
}

/// Owns one client's SFTP sessions, by server name (see the module docs).
pub struct SftpPoolActor {
    /// Unused sessions older than this are closed by the sweep.
    idle: Duration,
    slots: HashMap<String, Arc<Slot>>,
    /// Where the sessions' uploads record their temporary files.
    temp_files: TempFiles,
}

impl SftpPoolActor {
    /// Removes the sessions unused for the idle time (and dead ones, and
    /// failed attempts as old) and closes them.
    fn sweep(&mut self) {
        let now = Instant::now();
        let idle = self.idle;
        let mut closing = Vec::new();
        self.slots.retain(|_, slot| {
            let expired = now.duration_since(slot.idle_since()) >= idle;
            match slot.conn.get() {
                // connecting (its requester holds the slot) or failed
                None => !expired,
                Some(conn) if conn.is_closed() => false,
                // 1: only this slot holds it, no request does
                Some(conn) if expired && Arc::strong_count(conn) == 1 => {
                    closing.push(conn.clone());
                    false
                }
                Some(_) => true,
            }
        });
        close_all(closing);
    }
}

/// Says goodbye on each session, off the caller's path.
fn close_all(conns: Vec<Arc<SftpConn>>) {
    for c in conns {
        actix::spawn(async move { c.close().await });
    }
}

impl Actor for SftpPoolActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.idle / 2, |act, _| act.sweep());
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Sessions a request still holds are only forgotten: they end when
        // the request drops them, so the request (and its cleanup) finishes.
        let unused = self
            .slots
            .drain()
            .filter_map(|(_, slot)| slot.conn.get().filter(|c| Arc::strong_count(c) == 1).cloned())
            .collect();
        close_all(unused);
    }
}

impl Handler<Checkout> for SftpPoolActor {
    type Result = ResponseFuture<Result<Arc<SftpConn>, SftpError>>;

    fn handle(&mut self, msg: Checkout, _: &mut Context<Self>) -> Self::Result {
        let name = msg.server.name.clone();
        let slot = match self.slots.get(&name) {
            Some(slot) if !slot.is_dead() => slot.clone(),
            _ => {
                let slot = Arc::new(Slot::new());
                self.slots.insert(name, slot.clone());
                slot
            }
        };
        slot.touch();
        let temp_files = self.temp_files.clone();
        // Connecting runs beside the actor, so other checkouts (and the
        // sweep) go on meanwhile.
        Box::pin(async move {
            let conn = slot
                .conn
                .get_or_try_init(|| async {
                    SftpConn::open(&msg.server, &msg.ssh, &temp_files)
                        .await
                        .map(Arc::new)
                })
                .await?
                .clone();
            slot.touch();
            Ok(conn)
        })
    }
}

impl Handler<StopPool> for SftpPoolActor {
    type Result = ();

    fn handle(&mut self, _: StopPool, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Count> for SftpPoolActor {
    type Result = usize;

    fn handle(&mut self, _: Count, _: &mut Context<Self>) -> usize {
        self.slots.len()
    }
}

/// The handle to one client's [`SftpPoolActor`]; clones share the pool.
/// Dropping handles does not close the sessions: the owner calls
/// [`SftpPool::stop`] when its client goes.
#[derive(Clone)]
pub struct SftpPool(Addr<SftpPoolActor>);

impl std::fmt::Debug for SftpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpPool").finish_non_exhaustive()
    }
}

impl SftpPool {
    /// Starts a pool whose sessions close after [`DEFAULT_IDLE`] unused;
    /// their uploads record temporary files in `temp_files`.
    pub fn start(temp_files: TempFiles) -> SftpPool {
        SftpPool::with_idle(DEFAULT_IDLE, temp_files)
    }

    /// Starts a pool whose sessions close after `idle` unused.
    pub fn with_idle(idle: Duration, temp_files: TempFiles) -> SftpPool {
        SftpPool(
            SftpPoolActor {
                idle,
                slots: HashMap::new(),
                temp_files,
            }
            .start(),
        )
    }

    /// The session to `server`, opening it if there is none (or the one
    /// there has died).
    pub async fn get(&self, server: &Arc<ServerSpec>, ssh: &SshOptions) -> Result<Arc<SftpConn>, SftpError> {
        let checkout = Checkout {
            server: server.clone(),
            ssh: ssh.clone(),
        };
        self.0.send(checkout).await.unwrap_or_else(|_| {
            Err(SftpError {
                status: SftpStatus::NotConnected,
                error: AppError::with_detail(
                    ErrorCode::Internal,
                    format!("server '{}': the sftp pool has stopped", server.name),
                ),
            })
        })
    }

    /// How many servers have a session (or one being opened); 0 once the
    /// pool has stopped.
    pub async fn count(&self) -> usize {
        self.0.send(Count).await.unwrap_or(0)
    }

    /// Closes the sessions nobody uses and stops the pool; later
    /// [`SftpPool::get`]s fail.
    pub fn stop(&self) {
        self.0.do_send(StopPool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::{HostKeyMode, HostKeyPolicy};

    /// A server on a port nothing listens on: connecting fails at once.
    /// The returned socket is bound but never listens; it keeps the port
    /// refused (and out of reach of parallel tests) while it lives.
    fn closed_port() -> (Arc<ServerSpec>, SshOptions, tokio::net::TcpSocket) {
        let reserved = tokio::net::TcpSocket::new_v4().unwrap();
        reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = reserved.local_addr().unwrap().port();
        let server = ServerSpec::for_tests("nowhere", "127.0.0.1", port);
        let ssh = SshOptions {
            connect_timeout: Duration::from_secs(5),
            host_keys: HostKeyPolicy {
                known_hosts: std::env::temp_dir().join("pinkpage-pool-test-known-hosts"),
                mode: HostKeyMode::Strict,
            },
            keepalive: None,
            sessions: Default::default(),
            on_connect: Default::default(),
        };
        (Arc::new(server), ssh, reserved)
    }

    #[actix_rt::test]
    async fn a_failed_connect_keeps_its_own_code_and_its_slot_waits_for_the_sweep() {
        let (server, ssh, _reserved) = closed_port();
        let pool = SftpPool::start(TempFiles::default());
        let err = pool.get(&server, &ssh).await.unwrap_err();
        assert_eq!(err.status, SftpStatus::NotConnected);
        assert_eq!(err.error.code, ErrorCode::SshConnectionFailed, "{err}");
        assert_eq!(pool.count().await, 1, "the attempt's slot stays until it is idle");
        // a second checkout tries again (the failure is not kept)
        let again = pool.get(&server, &ssh).await.unwrap_err();
        assert_eq!(again.error.code, ErrorCode::SshConnectionFailed, "{again}");
        assert_eq!(pool.count().await, 1);
    }

    #[actix_rt::test]
    async fn the_sweep_forgets_slots_idle_for_the_idle_time_only() {
        tokio::time::pause();
        let mut pool = SftpPoolActor {
            idle: Duration::from_secs(30),
            slots: HashMap::new(),
            temp_files: TempFiles::default(),
        };
        pool.slots.insert("old".into(), Arc::new(Slot::new()));
        tokio::time::advance(Duration::from_secs(20)).await;
        pool.slots.insert("new".into(), Arc::new(Slot::new()));
        tokio::time::advance(Duration::from_secs(10)).await;
        pool.sweep();
        assert_eq!(pool.slots.keys().collect::<Vec<_>>(), ["new"]);
        tokio::time::advance(Duration::from_secs(20)).await;
        pool.sweep();
        assert!(pool.slots.is_empty());
    }

    #[actix_rt::test]
    async fn a_stopped_pool_refuses_checkouts_and_counts_nothing() {
        let (server, ssh, _reserved) = closed_port();
        let pool = SftpPool::start(TempFiles::default());
        let _ = pool.get(&server, &ssh).await;
        pool.stop();
        pool.stop(); // idempotent
        let err = pool.get(&server, &ssh).await.unwrap_err();
        assert_eq!(err.error.code, ErrorCode::Internal, "{err}");
        assert!(err.to_string().contains("pool has stopped"), "{err}");
        assert_eq!(pool.count().await, 0);
    }
}
