//! Connections not yet through admission, counted per client address
//! (`PINKPAGE_MAX_PENDING_PER_ADDRESS`, 30005).
//!
//! What "before authentication" costs the daemon: admission
//! (`crate::admission`) authenticates a request, WebSocket upgrade or not,
//! as soon as its head has arrived, so a connection costs nothing to
//! authenticate; what it costs is the time from accept to that moment. A
//! connection whose handshake or request head is still arriving (at most
//! `PINKPAGE_REQUEST_HEAD_TIMEOUT_S`), or whose requests were all refused,
//! holds a descriptor and one of the places the HTTP server accepts
//! (`crate::limits::descriptors`) without anyone having shown a credential.
//! One address opening thousands of them would stop the server from
//! accepting anyone else's.
//!
//! So every accepted connection counts against its peer address from
//! accept (the server's `on_connect`) until its first request passes
//! admission, or until it closes. A request on a connection that has not
//! passed yet, from an address with more than the cap of such
//! connections (this one included), is refused at once with 30005 and
//! its connection closed, before its credentials are looked at, so the
//! count goes down; other addresses are not touched. Trusted proxies are
//! not counted: everyone behind one shares its address (limit per client
//! in the proxy).
//!
//! Who owns what: the counts sit behind one mutex; each connection's
//! [`PendingConn`] lives in that connection's extensions (dropped by the
//! HTTP server when the connection ends) and gives its count back exactly
//! once, when admitted or when dropped (`counted` is swapped).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pinkpage_actors::{AppError, ErrorCode};

/// The counts of connections not yet admitted, by address.
pub struct Pending {
    /// At most this many per address (`PINKPAGE_MAX_PENDING_PER_ADDRESS`).
    cap: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl Pending {
    /// No connection yet; `cap` per address.
    pub fn new(cap: usize) -> Arc<Pending> {
        Arc::new(Pending {
            cap,
            counts: Mutex::default(),
        })
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection from `ip` was accepted: counted until admitted or
    /// dropped.
    pub fn arrived(self: &Arc<Self>, ip: IpAddr) -> PendingConn {
        *self.counts().entry(ip).or_insert(0) += 1;
        PendingConn {
            registry: self.clone(),
            ip,
            counted: AtomicBool::new(true),
        }
    }

    /// Connections from `ip` not yet admitted.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.counts().get(&ip).copied().unwrap_or(0)
    }

    fn release(&self, ip: IpAddr) {
        let mut counts = self.counts();
        if let Some(n) = counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&ip);
            }
        }
    }
}

/// One accepted connection not yet admitted; kept in the connection's
/// extensions.
pub struct PendingConn {
    registry: Arc<Pending>,
    ip: IpAddr,
    /// Whether it still counts (until admitted or dropped).
    counted: AtomicBool,
}

impl PendingConn {
    /// 30005 when this connection has not been admitted yet and its address
    /// has more than the cap of such connections, this one included.
    pub fn check(&self) -> Result<(), AppError> {
        if !self.counted.load(Ordering::Acquire) {
            return Ok(());
        }
        let n = self.registry.count(self.ip);
        if n > self.registry.cap {
            return Err(AppError::with_detail(
                ErrorCode::TooManyPending,
                format!(
                    "{n} connections from {} have not got through admission; the limit is {} \
                     (PINKPAGE_MAX_PENDING_PER_ADDRESS)",
                    self.ip, self.registry.cap
                ),
            ));
        }
        Ok(())
    }

    /// A request on this connection passed admission: it no longer counts.
    pub fn admitted(&self) {
        if self.counted.swap(false, Ordering::AcqRel) {
            self.registry.release(self.ip);
        }
    }
}

impl Drop for PendingConn {
    fn drop(&mut self) {
        self.admitted();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const TWO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn past_the_cap_an_address_is_refused_and_other_addresses_are_not() {
        let pending = Pending::new(2);
        let a = pending.arrived(ONE);
        let b = pending.arrived(ONE);
        assert!(a.check().is_ok() && b.check().is_ok());
        let c = pending.arrived(ONE);
        assert_eq!(c.check().unwrap_err().code, ErrorCode::TooManyPending);
        // the others of that address are over it too: any of them may be
        // the one that never speaks
        assert!(a.check().is_err());
        let other = pending.arrived(TWO);
        assert!(other.check().is_ok());
        // one admitted: the rest fit again, and an admitted one is never
        // refused for its address
        a.admitted();
        assert!(b.check().is_ok() && c.check().is_ok());
        let _d = pending.arrived(ONE);
        assert!(a.check().is_ok());
        assert!(b.check().is_err());
    }

    #[test]
    fn a_connection_counts_once_whether_admitted_dropped_or_both() {
        let pending = Pending::new(5);
        let a = pending.arrived(ONE);
        let b = pending.arrived(ONE);
        a.admitted();
        a.admitted();
        drop(a);
        assert_eq!(pending.count(ONE), 1);
        drop(b);
        assert_eq!(pending.count(ONE), 0);
        assert!(pending.counts().is_empty(), "no entry left for a quiet address");
    }
}
