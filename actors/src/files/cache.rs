//! [`SftpCache`]: one [`SftpConn`] per server for one WebSocket connection,
//! kept while it is used and closed after it has been idle a while.
//!
//! Connecting and authenticating costs 70-120 ms (NOTES-russh), more than
//! most SFTP requests; a file browser sends bursts of them. The cache is
//! owned by one connection (not shared between clients: each keeps its own
//! sessions, so one client's slow transfer never holds up another's) and
//! is emptied when that connection stops.
//!
//! Concurrent requests for a server that is still connecting wait for the
//! same connection attempt; a failed attempt is not cached, a connection
//! that died is replaced on the next request. An entry some request still
//! holds is never swept: it closes when its last user lets go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::files::sftp::{SftpConn, SftpError};
use crate::server::ServerSpec;
use crate::ssh::SshOptions;

/// How long an unused connection stays open by default.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30);

struct Slot {
    conn: OnceCell<Arc<SftpConn>>,
    last_used: Mutex<Instant>,
}

impl Slot {
    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle_since(&self) -> Instant {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Cached SFTP connections of one client, by server name.
pub struct SftpCache {
    /// Unused connections older than this are closed by [`SftpCache::sweep`].
    idle: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Default for SftpCache {
    fn default() -> Self {
        SftpCache::new(DEFAULT_IDLE)
    }
}

impl SftpCache {
    /// An empty cache whose connections close after `idle` unused.
    pub fn new(idle: Duration) -> Self {
        SftpCache {
            idle,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// How long an unused connection is kept.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        // a panic while holding the lock cannot leave the map half-changed
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection to `server`, opening it if there is none (or the one
    /// there has died).
    pub async fn get(&self, server: &ServerSpec, opts: &SshOptions) -> Result<Arc<SftpConn>, SftpError> {
        for _ in 0..2 {
            let slot = {
                let mut slots = self.slots();
                slots
                    .entry(server.name.clone())
                    .or_insert_with(|| {
                        Arc::new(Slot {
                            conn: OnceCell::new(),
                            last_used: Mutex::new(Instant::now()),
                        })
                    })
                    .clone()
            };
            let conn = slot
                .conn
                .get_or_try_init(|| async { SftpConn::open(server, opts).await.map(Arc::new) })
                .await?
                .clone();
            slot.touch();
            if !conn.is_closed() {
                return Ok(conn);
            }
            // dead: forget it (unless someone replaced it already) and retry
            let mut slots = self.slots();
            if slots.get(&server.name).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                slots.remove(&server.name);
            }
        }
        SftpConn::open(server, opts).await.map(Arc::new)
    }

    /// Removes connections unused for the idle time (and dead ones) and
    /// returns them for closing. Connections some request still holds stay.
    pub fn sweep(&self) -> Vec<Arc<SftpConn>> {
        let now = Instant::now();
        let mut closed = Vec::new();
        self.slots().retain(|_, slot| {
            let Some(conn) = slot.conn.get() else {
                // still connecting: its requester holds it
                return true;
            };
            let unused = Arc::strong_count(conn) == 1;
            let expired = now.duration_since(slot.idle_since()) >= self.idle;
            if conn.is_closed() || (unused && expired) {
                closed.push(conn.clone());
                false
            } else {
                true
            }
        });
        closed
    }

    /// Empties the cache (when the client goes away) and returns the
    /// connections nobody uses, for closing. One a request still holds is
    /// only forgotten: it ends when that request drops it, so the request
    /// (and its cleanup) can finish.
    pub fn drain(&self) -> Vec<Arc<SftpConn>> {
        self.slots()
            .drain()
            .filter_map(|(_, slot)| slot.conn.get().filter(|c| Arc::strong_count(c) == 1).cloned())
            .collect()
    }

    /// How many servers have a connection (or one being opened).
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
