//! [`SessionSlots`]: at most N SSH sessions open at once to one server
//! across the whole daemon, so one client's thousand `diff_command`s queue
//! here instead of exhausting sshd's `MaxStartups` (and everyone else's
//! access to that server).
//!
//! A server is its `host:port` (two configured names for one sshd share
//! its slots: the limit protects the sshd). [`connect`](super::connect)
//! takes a slot before it opens the TCP connection and the
//! [`SshSession`](super::SshSession) keeps it until it is dropped. A
//! caller waits for a free slot at most the configured wait, then gets
//! 20003; nothing is opened.
//!
//! Why there is no deadlock: an operation that needs two sessions to the
//! same server (a diff of a server with itself, a transfer within one
//! server) takes them one after the other, so N such operations could each
//! hold one slot and wait for a second. The wait is bounded: such
//! operations fail with 20003 after the wait and release what they hold,
//! and the daemon goes on; nothing waits forever. Operators who run many
//! same-server operations at once keep the cap above twice their number.
//! Idle sessions kept by the SFTP pool hold their slots until the pool's
//! idle timeout closes them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{AppError, ErrorCode};

/// The slots of every server. Cheap to clone; clones share the slots.
#[derive(Clone, Default)]
pub struct SessionSlots(Option<Arc<Inner>>);

struct Inner {
    per_server: usize,
    wait: Duration,
    /// One semaphore per `host:port`, made on first use and kept (one per
    /// configured server: bounded).
    servers: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Callers waiting for a slot right now, for the health view.
    waiting: AtomicUsize,
}

impl std::fmt::Debug for SessionSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("SessionSlots(unlimited)"),
            Some(i) => f
                .debug_struct("SessionSlots")
                .field("per_server", &i.per_server)
                .field("wait", &i.wait)
                .finish(),
        }
    }
}

/// A taken slot; the slot is free again when this is dropped.
#[derive(Debug)]
pub struct SessionSlot(#[allow(dead_code)] OwnedSemaphorePermit);

/// Waits out of the caller's sight: decremented however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SessionSlots {
    /// `per_server` sessions per `host:port`; a caller waits at most `wait`.
    pub fn new(per_server: usize, wait: Duration) -> Self {
        SessionSlots(Some(Arc::new(Inner {
            per_server: per_server.clamp(1, Semaphore::MAX_PERMITS),
            wait,
            servers: Mutex::default(),
            waiting: AtomicUsize::new(0),
        })))
    }

    /// Takes a slot for `host:port` (`None` without a cap), waiting at
    /// most the configured wait; 20003 then, its detail naming `who`.
    pub async fn take(&self, host: &str, port: u16, who: &str) -> Result<Option<SessionSlot>, AppError> {
        let Some(inner) = &self.0 else {
            return Ok(None);
        };
        let semaphore = {
            let mut servers = inner.servers.lock().unwrap_or_else(|p| p.into_inner());
            servers
                .entry(format!("{host}:{port}"))
                .or_insert_with(|| Arc::new(Semaphore::new(inner.per_server)))
                .clone()
        };
        if let Ok(permit) = semaphore.clone().try_acquire_owned() {
            return Ok(Some(SessionSlot(permit)));
        }
        inner.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(&inner.waiting);
        match tokio::time::timeout(inner.wait, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(SessionSlot(permit))),
            // Err(_) inside: never, the semaphore is never closed.
            _ => Err(AppError::with_detail(
                ErrorCode::SshNoSessionSlot,
                format!(
                    "{who}: all {} sessions stayed in use for {:?}",
                    inner.per_server, inner.wait
                ),
            )),
        }
    }

    /// Sessions open per `host:port` (servers with none left out).
    pub fn in_use(&self) -> BTreeMap<String, usize> {
        let Some(inner) = &self.0 else {
            return BTreeMap::new();
        };
        let servers = inner.servers.lock().unwrap_or_else(|p| p.into_inner());
        servers
            .iter()
            .map(|(k, s)| (k.clone(), inner.per_server - s.available_permits()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Callers waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.0.as_ref().map_or(0, |i| i.waiting.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_caller_past_the_cap_waits_then_gets_20003_and_a_freed_slot_serves_the_next() {
        tokio::time::pause();
        let slots = SessionSlots::new(2, Duration::from_secs(3));
        let a = slots.take("h", 22, "s").await.unwrap();
        let _b = slots.take("h", 22, "s").await.unwrap();
        // another server has its own slots
        let other = slots.take("h", 2222, "s").await.unwrap();
        assert!(other.is_some());
        assert_eq!(slots.in_use()["h:22"], 2);
        let started = tokio::time::Instant::now();
        let err = slots.take("h", 22, "server 's'").await.unwrap_err();
        assert_eq!(err.code, ErrorCode::SshNoSessionSlot);
        assert!(err.detail.unwrap().starts_with("server 's'"));
        assert!(started.elapsed() >= Duration::from_secs(3));
        assert_eq!(slots.waiting(), 0);
        // a waiter is served as soon as a slot is given back
        let slots2 = slots.clone();
        let waiter = tokio::spawn(async move { slots2.take("h", 22, "s").await.map(|s| s.is_some()) });
        tokio::task::yield_now().await;
        assert_eq!(slots.waiting(), 1);
        drop(a);
        assert_eq!(waiter.await.unwrap(), Ok(true));
        drop(other);
        assert_eq!(slots.in_use().get("h:2222"), None);
    }

    #[tokio::test]
    async fn without_a_cap_nothing_is_counted() {
        let slots = SessionSlots::default();
        assert!(slots.take("h", 22, "s").await.unwrap().is_none());
        assert!(slots.in_use().is_empty());
    }
}
