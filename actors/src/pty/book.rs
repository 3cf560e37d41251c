//! [`PtyBook`]: every PTY running in the daemon, by [`PtyId`], with what
//! `GET /api/v1/ptys` shows and the [`PtyFeed`] `terminal_watch` follows.
//!
//! Whoever opens a PTY registers it and keeps the [`PtyRegistration`] for
//! as long as the PTY runs; dropping it removes the entry and ends every
//! watch of it. The book is shared (`Clone`) and locked only to add, remove
//! or copy entries: never across an await.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::feed::PtyFeed;
pub use super::info::{PtyInfo, PtyKind};
use super::record::{Recorder, RecorderOpener};
use crate::error::AppError;
use crate::ids::PtyId;
use crate::server::ServerSpec;
use crate::ssh::PtyRequest;

/// What a PTY that is not an operator terminal needs to be seen: the book
/// and what to list it as. Its actor registers when the PTY opens and stays
/// listed until it ends; `info.pty_id` is known before, so the starter can
/// name it in its answer.
#[derive(Debug, Clone)]
pub struct PtyTag {
    /// Where to register.
    pub book: PtyBook,
    /// What to list it as.
    pub info: PtyInfo,
    /// Its recording, when it is recorded.
    pub recorder: Option<Recorder>,
}

impl PtyTag {
    /// A PTY of `kind` by `user` on `server` running `command`, for `book`,
    /// not recorded.
    pub fn new(book: &PtyBook, kind: PtyKind, user: Arc<str>, server: &str, command: &str) -> Self {
        PtyTag {
            book: book.clone(),
            info: PtyInfo::new(kind, user, server, command),
            recorder: None,
        }
    }

    /// Starts its recording (when the book records): the PTY may open only
    /// if this succeeds. Call once `info` is complete.
    pub fn recorded(mut self, server: &ServerSpec, pty: &PtyRequest) -> Result<Self, AppError> {
        self.recorder = self.book.record(&self.info, server, pty)?;
        Ok(self)
    }

    /// Registers it now.
    pub fn register(&self) -> PtyRegistration {
        self.book.register(self.info.clone(), None)
    }
}

/// One PTY as listed: what it is, and its feed's numbers now.
#[derive(Debug, Clone)]
pub struct PtyListed {
    /// What it is.
    pub info: PtyInfo,
    /// Bytes of output so far (the feed's end offset).
    pub bytes: u64,
    /// Watchers now.
    pub watchers: usize,
}

type Entries = BTreeMap<PtyId, (PtyInfo, Arc<PtyFeed>)>;

/// Every running PTY. See the module docs.
#[derive(Clone)]
pub struct PtyBook {
    entries: Arc<Mutex<Entries>>,
    /// Scrollback kept for PTYs that are not operator terminals.
    scrollback: usize,
    /// Watchers one PTY may have.
    max_watchers: usize,
    /// Starts recordings, when PTYs are recorded.
    recordings: Option<Arc<dyn RecorderOpener>>,
}

impl std::fmt::Debug for PtyBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtyBook")
            .field("ptys", &self.lock().len())
            .finish()
    }
}

impl Default for PtyBook {
    fn default() -> Self {
        PtyBook::new(DEFAULT_COMMAND_SCROLLBACK, DEFAULT_MAX_WATCHERS)
    }
}

/// Scrollback a STUB command, script or workflow step keeps for watchers
/// who join late.
pub const DEFAULT_COMMAND_SCROLLBACK: usize = 256 * 1024;

/// Watchers one PTY may have at once by default.
pub const DEFAULT_MAX_WATCHERS: usize = 10;

/// A PTY's place in the book; dropping it removes the PTY and ends its
/// watches.
#[derive(Debug)]
pub struct PtyRegistration {
    book: PtyBook,
    info: PtyInfo,
    feed: Arc<PtyFeed>,
}

impl PtyRegistration {
    /// The PTY's id.
    pub fn pty_id(&self) -> PtyId {
        self.info.pty_id
    }

    /// What the book knows of it.
    pub fn info(&self) -> &PtyInfo {
        &self.info
    }

    /// Its feed, to push output into.
    pub fn feed(&self) -> &Arc<PtyFeed> {
        &self.feed
    }
}

impl Drop for PtyRegistration {
    fn drop(&mut self) {
        self.book.lock().remove(&self.info.pty_id);
        self.feed.end_all();
    }
}

impl PtyBook {
    /// A book whose command PTYs keep `scrollback` bytes, each PTY at most
    /// `max_watchers` watchers.
    pub fn new(scrollback: usize, max_watchers: usize) -> Self {
        PtyBook {
            entries: Arc::default(),
            scrollback,
            max_watchers,
            recordings: None,
        }
    }

    /// The same book, recording every PTY through `opener`.
    pub fn recording(mut self, opener: Arc<dyn RecorderOpener>) -> Self {
        self.recordings = Some(opener);
        self
    }

    /// The recording of the PTY `info` about to open on `server`: `None`
    /// when the book does not record or the server is not recorded; an
    /// error when it cannot be recorded (the PTY must not open).
    pub fn record(
        &self,
        info: &PtyInfo,
        server: &ServerSpec,
        pty: &PtyRequest,
    ) -> Result<Option<Recorder>, AppError> {
        match &self.recordings {
            Some(opener) => opener.open(info, server, pty),
            None => Ok(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a PTY with the default scrollback of its kind (commands)
    /// or `scrollback` bytes when given (operator terminals).
    pub fn register(&self, info: PtyInfo, scrollback: Option<usize>) -> PtyRegistration {
        let size = scrollback.unwrap_or(self.scrollback);
        let feed = Arc::new(PtyFeed::new(info.pty_id, size, self.max_watchers));
        self.lock().insert(info.pty_id, (info.clone(), feed.clone()));
        PtyRegistration {
            book: self.clone(),
            info,
            feed,
        }
    }

    /// Every PTY running now, oldest first.
    pub fn list(&self) -> Vec<PtyListed> {
        let entries: Vec<_> = self.lock().values().cloned().collect();
        let mut listed: Vec<PtyListed> = entries
            .into_iter()
            .map(|(info, feed)| PtyListed {
                bytes: feed.end(),
                watchers: feed.watchers(),
                info,
            })
            .collect();
        listed.sort_by_key(|l| l.info.started);
        listed
    }

    /// PTY `pty_id`, when it runs.
    pub fn get(&self, pty_id: PtyId) -> Option<(PtyInfo, Arc<PtyFeed>)> {
        self.lock().get(&pty_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_lists_the_pty_until_it_is_dropped() {
        let book = PtyBook::default();
        let reg = book.register(
            PtyInfo::new(PtyKind::Command, Arc::from("ann"), "web1", "ls"),
            None,
        );
        reg.feed().push("hello", u64::MAX);
        let listed = book.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].info.server, "web1");
        assert_eq!(listed[0].bytes, 5);
        let id = reg.pty_id();
        assert!(book.get(id).is_some());
        drop(reg);
        assert!(book.get(id).is_none());
        assert!(book.list().is_empty());
    }
}
