//! [`LiveSettings`]: the settings as they are now, which a reload
//! (`crate::reload`) replaces whole.
//!
//! Who owns what: the cell holds one `Arc<Settings>`; readers take a clone
//! of that `Arc` ([`LiveSettings::current`]) and keep it for as long as
//! their work runs, so work started before a reload keeps the
//! configuration it started with, and no reader ever sees half of one
//! configuration and half of another. The one writer is the reload, which
//! swaps the `Arc` under the write lock (held for the swap alone, never
//! across an await); readers hold the read lock only to clone. Two
//! reloads (a SIGHUP and a request) never interleave: each holds the
//! [`Updating`] guard from reading the files to the last component told.

use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::dotenv::Reread;
use super::Settings;

/// The settings now. Cheap to read; see the module docs.
pub struct LiveSettings {
    current: RwLock<Arc<Settings>>,
    /// Taken by a reload for its whole length; holds `.env` as the last
    /// reload read it (`None`: as the daemon started), to tell which
    /// variables the next one changes.
    updating: Mutex<Option<Reread>>,
}

/// A reload under way: no other starts until it is dropped.
pub struct Updating<'a> {
    live: &'a LiveSettings,
    last_env: MutexGuard<'a, Option<Reread>>,
}

impl Updating<'_> {
    /// Variable `name` as the settings in effect were read: through `.env`
    /// as the last reload read it, or the process environment when no
    /// reload has happened yet.
    pub fn before(&self, name: &str) -> Option<String> {
        match self.last_env.as_ref() {
            Some(last) => last.get(name),
            None => std::env::var(name).ok(),
        }
    }

    /// Makes `settings`, read from `env`, the settings; returns the ones
    /// they replace.
    pub fn replace(&mut self, settings: Arc<Settings>, env: Reread) -> Arc<Settings> {
        *self.last_env = Some(env);
        self.live.replace(settings)
    }
}

impl LiveSettings {
    /// A cell holding `settings`.
    pub fn new(settings: Arc<Settings>) -> Arc<LiveSettings> {
        Arc::new(LiveSettings {
            current: RwLock::new(settings),
            updating: Mutex::new(None),
        })
    }

    /// The settings as they are now.
    pub fn current(&self) -> Arc<Settings> {
        // a poisoned lock still holds a whole `Arc` (the swap cannot panic
        // half-way), so its value is as good as ever
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Starts a reload; waits for one under way to end. Never held across
    /// an await.
    pub fn update(&self) -> Updating<'_> {
        Updating {
            live: self,
            last_env: self.updating.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Makes `settings` the settings; returns the ones they replace.
    fn replace(&self, settings: Arc<Settings>) -> Arc<Settings> {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *current, settings)
    }
}

impl std::fmt::Debug for LiveSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LiveSettings").field(&self.current()).finish()
    }
}
