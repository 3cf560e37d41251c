//! Keeping the directory in step with the database, and open connections
//! in step with the directory.
//!
//! Every [`TICK`] the refresher asks the store what changed since the
//! directory's access revision (bumped by triggers on every account or
//! token change) and session log number (every sign-in session started or
//! ended), whoever made the change: this daemon, another instance, or the
//! `pinkpage user` / `token` commands in another process.
//! - Accounts or tokens changed: the whole directory is reloaded and
//!   swapped in, and every WebSocket connection is told
//!   (`Event::AccessChanged`) to re-check its principal: a revoked token or
//!   a disabled user closes its connections within one tick (WAVE2: within
//!   2 s).
//! - Only sessions changed: the sessions started and ended since are
//!   applied in place, and connections are told only when a session that
//!   still let its holder in ended (a sign-out, a session past the per-user
//!   cap, one ended by the command line): starting a session withdraws
//!   nobody's access, and re-judging every connection's work for it would
//!   be waste.
//!
//! Sign-in and sign-out (and every change made over REST) call [`refresh`]
//! at once, so they take effect before the reply, and a sign-in costs the
//! same at any number of stored sessions: it reads and applies its own
//! change, never the whole table.
//!
//! The same tick notices credentials that ran out by time (a token's
//! expiry, a session's idle or absolute lifetime) and tells connections
//! too, and every [`sweep_every`] writes the last use of sessions used
//! since back to the database and removes the sessions past their idle or
//! absolute lifetime from it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, AsyncContext, Context};
use chrono::{DateTime, Utc};
use pinkpage_actors::broadcast::{BroadcastActor, Event, Publish};
use pinkpage_actors::AppError;

use super::directory::Directory;
use super::Identity;
use crate::accounts::AccessChanges;
use crate::store::AccountStore;

/// The accounts' store, shared.
type Accounts = Arc<dyn AccountStore>;

/// How often the database revision is read.
pub const TICK: Duration = Duration::from_secs(1);

/// Ticks between two sweeps of the sessions (last use written back, ended
/// sessions removed from the database): a quarter of the idle lifetime, at
/// least every tick and at most every minute, so a session is removed
/// soon after it idled out and one in use is never judged idle by a
/// database that has not heard of its use.
pub fn sweep_every(idle: Duration) -> u32 {
    let quarter = idle.as_secs_f64() / 4.0 / TICK.as_secs_f64();
    quarter.clamp(1.0, 60.0) as u32
}

/// Brings the directory up to date with the store (reloading it whole
/// when `force`), and tells connections when access may have been
/// withdrawn. Returns whether they were told.
///
/// One caller at a time (`Identity::catching_up`): each reads what changed
/// after what the directory has and applies it before the next reads, so
/// answers are applied in order, and a flood of sign-ins while accounts
/// change causes one whole reload, not one each.
pub async fn refresh(
    identity: &Identity,
    store: &Accounts,
    broadcast: &Addr<BroadcastActor>,
    force: bool,
) -> Result<bool, AppError> {
    let _turn = identity.catching_up.lock().await;
    let changes = if force {
        AccessChanges::Reload(store.load().await?)
    } else {
        let (revision, session_seq) = {
            let dir = identity.read();
            (dir.revision, dir.session_seq)
        };
        store.changes(revision, session_seq).await?
    };
    let tell = match changes {
        AccessChanges::Unchanged => false,
        AccessChanges::Sessions(sessions) => {
            identity
                .write()
                .apply_sessions(sessions, Utc::now(), identity.idle())
        }
        AccessChanges::Reload(loaded) => {
            let (revision, sessions) = {
                let mut dir = identity.write();
                let fresh = Directory::from_loaded(loaded, &dir);
                *dir = fresh;
                (dir.revision, dir.session_count())
            };
            let reloads = identity.reloads.fetch_add(1, Ordering::Relaxed) + 1;
            log::info!(revision = revision, sessions = sessions, reloads = reloads; "access directory reloaded");
            true
        }
    };
    if tell {
        broadcast.do_send(Publish(Event::AccessChanged));
    }
    Ok(tell)
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
            let persist = act.ticks % sweep_every(act.identity.settings.session_idle) == 0;
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
                    match store.persist_sessions(seen.clone(), now, idle).await {
                        Ok(removed) => {
                            identity.read().persisted(&seen);
                            if removed > 0 {
                                log::debug!(removed = removed; "ended sign-in sessions removed");
                            }
                        }
                        Err(e) => {
                            log::warn!(code = e.code.code(), error = e.to_string(); "cannot write sessions' last use")
                        }
                    }
                }
            });
        });
        // where the store can tell (PostgreSQL's NOTIFY), a change another
        // instance made is read at once rather than at the next tick
        if let Some(mut changed) = self.store.changed() {
            let me = ctx.address();
            actix::spawn(async move {
                while changed.changed().await.is_ok() {
                    if me.try_send(RefreshNow).is_err() {
                        // the refresher stopped (or is flooded: the next
                        // tick reads the change anyway)
                        if !me.connected() {
                            return;
                        }
                    }
                }
            });
        }
    }
}

/// Reads what changed now: sent when the store says access changed.
struct RefreshNow;

impl actix::Message for RefreshNow {
    type Result = ();
}

impl actix::Handler<RefreshNow> for Refresher {
    type Result = ();

    fn handle(&mut self, _: RefreshNow, _: &mut Context<Self>) {
        // a tick's work under way reads the change itself, or the next
        // tick does: never two reloads at once
        if self.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        let busy = self.busy.clone();
        let (identity, store, broadcast) =
            (self.identity.clone(), self.store.clone(), self.broadcast.clone());
        actix::spawn(async move {
            let _done = ClearOnDrop(busy);
            if let Err(e) = refresh(&identity, &store, &broadcast, false).await {
                log::error!(code = e.code.code(), error = e.to_string(); "cannot read accounts; keeping the last copy");
            }
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
