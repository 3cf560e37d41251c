//! Keeping the directory in step with the database, and open connections
//! in step with the directory.
//!
//! Every [`TICK`] the refresher reads the database's auth revision (one
//! integer, bumped by triggers on every account or token change and every
//! sign-in session added or removed, by this daemon or by the `pinkpage
//! user` / `token` commands in another process). When it moved, the whole
//! directory is reloaded and swapped in, and every WebSocket connection is
//! told (`Event::AccessChanged`) to re-check its principal: a revoked
//! token, a disabled user or an ended session closes its connections within
//! one tick (WAVE2: within 2 s). Changes made over REST call [`refresh`] at
//! once, so they take effect before the reply.
//!
//! The same tick notices credentials that ran out by time (a token's
//! expiry, a session's idle or absolute lifetime) and tells connections
//! too, and now and then writes sessions' last use back to the database and
//! removes expired sessions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context};
use chrono::{DateTime, Utc};
use pinkpage_actors::broadcast::{BroadcastActor, Event, Publish};
use pinkpage_actors::AppError;

use super::directory::Directory;
use super::Identity;
use crate::store::AccountStore;

/// The accounts' store, shared.
type Accounts = Arc<dyn AccountStore>;

/// How often the database revision is read.
pub const TICK: Duration = Duration::from_secs(1);

/// How often sessions' last use is written back.
const PERSIST_EVERY: u32 = 60;

/// Reloads the directory if the database moved on (or when `force`), and
/// tells connections. Returns whether anything changed.
pub async fn refresh(
    identity: &Identity,
    store: &Accounts,
    broadcast: &Addr<BroadcastActor>,
    force: bool,
) -> Result<bool, AppError> {
    let revision = store.revision().await?;
    if !force && revision == identity.read().revision {
        return Ok(false);
    }
    let loaded = store.load().await?;
    {
        let mut dir = identity.write();
        // A slower, older load never replaces a newer one.
        if loaded.revision < dir.revision {
            return Ok(false);
        }
        let fresh = Directory::from_loaded(loaded, &dir);
        *dir = fresh;
    }
    broadcast.do_send(Publish(Event::AccessChanged));
    Ok(true)
}

/// The actor that ticks. Owns nothing but its handles and the time of the
/// last tick; the directory belongs to [`Identity`].
pub struct Refresher {
    identity: Arc<Identity>,
    store: Accounts,
    broadcast: Addr<BroadcastActor>,
    last_tick: DateTime<Utc>,
    ticks: u32,
    /// Set while a tick's work is under way: a store slower than a tick
    /// (a lock held by another process, up to its 5 s busy timeout) skips
    /// ticks instead of piling reloads up behind it.
    busy: Arc<AtomicBool>,
}

impl Refresher {
    /// A refresher for `identity`.
    pub fn new(identity: Arc<Identity>, store: Accounts, broadcast: Addr<BroadcastActor>) -> Refresher {
        Refresher {
            identity,
            store,
            broadcast,
            last_tick: Utc::now(),
            ticks: 0,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Actor for Refresher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(TICK, |act, _| {
            if act.busy.swap(true, Ordering::AcqRel) {
                return;
            }
            let busy = act.busy.clone();
            let now = Utc::now();
            let before = std::mem::replace(&mut act.last_tick, now);
            act.ticks = act.ticks.wrapping_add(1);
            let persist = act.ticks % PERSIST_EVERY == 0;
            let (identity, store, broadcast) = (act.identity.clone(), act.store.clone(), act.broadcast.clone());
            actix::spawn(async move {
                // cleared however this tick's work ends
                let _done = ClearOnDrop(busy);
                match refresh(&identity, &store, &broadcast, false).await {
                    Ok(true) => return,
                    Ok(false) => {}
                    // The store failing must not stop expiries: they are
                    // still checked below, against the copy in memory.
                    Err(e) => {
                        log::error!(code = e.code.code(), error = e.to_string(); "cannot read accounts; keeping the last copy")
                    }
                }
                let idle = identity.idle();
                let (expired, seen) = {
                    let dir = identity.read();
                    (dir.something_expired(before, now, idle), persist.then(|| dir.sessions_to_persist()))
                };
                if expired {
                    broadcast.do_send(Publish(Event::AccessChanged));
                }
                if let Some(seen) = seen {
                    if let Err(e) = store.persist_sessions(seen, now).await {
                        log::warn!(code = e.code.code(), error = e.to_string(); "cannot write sessions' last use");
                    }
                }
            });
        });
    }
}

/// Clears a flag when dropped.
struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
