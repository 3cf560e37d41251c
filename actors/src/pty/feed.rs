//! [`PtyFeed`]: one PTY's output as its watchers see it: the scrollback
//! ring and the read-only watchers, fed by whoever reads the PTY.
//!
//! Who owns what: the feed is shared (`Arc`) between its writer (the actor
//! that reads the PTY: `SshShellActor` for STUB commands, scripts and
//! workflow steps, `OperatorTerminal` for operator terminals) and whoever
//! watches (a WebSocket connection adds and removes itself). Its state sits
//! behind one mutex, held only for a push, a read or a change of watchers,
//! never across an await, so no two of them can interleave: a watcher
//! added between two pushes sees the scrollback up to the first and every
//! push after it, each exactly once.
//!
//! A watcher never slows the PTY: output is offered to it with `try_send`,
//! and a watcher whose mailbox is full has fallen behind its bound; it is
//! dropped and told so ([`WatchEnd::Behind`]), and can watch again from the
//! scrollback. What one watcher may hold is its mailbox: at most
//! [`MAX_FRAME_BYTES`] a message.

use std::sync::{Arc, Mutex, MutexGuard};

use actix::{Message, Recipient};

use super::ring::{Scrollback, Slice};
use super::MAX_FRAME_BYTES;
use crate::error::{AppError, ErrorCode};
use crate::ids::PtyId;

/// One watch of one PTY, numbered by its feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WatchId(pub u64);

/// Why a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEnd {
    /// The PTY ended (its command exited, the terminal closed).
    Ended,
    /// The watcher fell behind its bound and was dropped.
    Behind,
    /// The watch was withdrawn (a share revoked, access changed).
    Withdrawn,
}

impl WatchEnd {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WatchEnd::Ended => "ended",
            WatchEnd::Behind => "behind",
            WatchEnd::Withdrawn => "withdrawn",
        }
    }
}

/// What a watcher receives.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum PtyEvent {
    /// Output from `offset` on.
    Output {
        /// The PTY.
        pty_id: PtyId,
        /// Offset of `data`'s first byte.
        offset: u64,
        /// The text.
        data: Arc<str>,
    },
    /// The watch is over; nothing of it follows.
    Ended {
        /// The PTY.
        pty_id: PtyId,
        /// Which watch.
        watch: WatchId,
        /// Why.
        reason: WatchEnd,
    },
}

struct Watcher {
    id: WatchId,
    /// The watching user, so a revoked share removes exactly theirs.
    user: Arc<str>,
    sink: Recipient<PtyEvent>,
}

struct Inner {
    ring: Scrollback,
    watchers: Vec<Watcher>,
    next_watch: u64,
    /// Set once the PTY ended: no watcher is added after it.
    ended: bool,
}

/// One PTY's scrollback and watchers. See the module docs.
pub struct PtyFeed {
    pty_id: PtyId,
    max_watchers: usize,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for PtyFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("PtyFeed")
            .field("pty_id", &self.pty_id)
            .field("end", &inner.ring.end())
            .field("watchers", &inner.watchers.len())
            .finish()
    }
}

/// A watch that started: where its first output begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watching {
    /// The watch, to end it.
    pub watch: WatchId,
    /// Offset of the first byte the watcher gets (the oldest held).
    pub from: u64,
    /// True when output before `from` is gone from the scrollback.
    pub cut: bool,
}

impl PtyFeed {
    /// The feed of PTY `pty_id`, keeping `scrollback` bytes for at most
    /// `max_watchers` watchers.
    pub fn new(pty_id: PtyId, scrollback: usize, max_watchers: usize) -> Self {
        PtyFeed {
            pty_id,
            max_watchers,
            inner: Mutex::new(Inner {
                ring: Scrollback::new(scrollback),
                watchers: Vec::new(),
                next_watch: 1,
                ended: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // a panic while held cannot leave the ring half-changed in a way
        // that matters more than losing the PTY's output: go on with it
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `text` (evicting, but nothing at or after `keep_from`),
    /// offers it to every watcher and drops those behind. Returns the
    /// offset of its first byte.
    pub fn push(&self, text: &str, keep_from: u64) -> u64 {
        if text.is_empty() {
            return self.end();
        }
        let data: Arc<str> = Arc::from(text);
        let mut inner = self.lock();
        let offset = inner.ring.push(data.clone());
        inner.ring.evict(keep_from);
        let pty_id = self.pty_id;
        inner.watchers.retain(|w| {
            let event = PtyEvent::Output {
                pty_id,
                offset,
                data: data.clone(),
            };
            match w.sink.try_send(event) {
                Ok(()) => true,
                Err(actix::dev::SendError::Full(_)) => {
                    log::info!(pty_id = pty_id.to_string().as_str(), user = &*w.user; "watcher fell behind; dropped");
                    w.sink.do_send(PtyEvent::Ended {
                        pty_id,
                        watch: w.id,
                        reason: WatchEnd::Behind,
                    });
                    false
                }
                Err(actix::dev::SendError::Closed(_)) => false,
            }
        });
        offset
    }

    /// Offset one past the newest byte.
    pub fn end(&self) -> u64 {
        self.lock().ring.end()
    }

    /// Offset of the oldest byte held.
    pub fn start(&self) -> u64 {
        self.lock().ring.start()
    }

    /// Bytes the scrollback aims to hold.
    pub fn capacity(&self) -> usize {
        self.lock().ring.capacity()
    }

    /// Whether the writer may push more without evicting anything at or
    /// after `keep_from`.
    pub fn has_room(&self, keep_from: u64) -> bool {
        self.lock().ring.has_room(keep_from)
    }

    /// Up to `max` bytes from `since` on; see [`Scrollback::read`].
    pub fn read(&self, since: u64, max: usize) -> Option<Slice> {
        self.lock().ring.read(since, max)
    }

    /// Adds a watcher: it is sent the scrollback at once, then every push.
    /// 54007 once the PTY ended, 54004 past the watcher cap.
    pub fn watch(&self, user: Arc<str>, sink: Recipient<PtyEvent>) -> Result<Watching, AppError> {
        let mut inner = self.lock();
        if inner.ended {
            return Err(AppError::with_detail(ErrorCode::UnknownPty, "that PTY has ended"));
        }
        if inner.watchers.len() >= self.max_watchers {
            return Err(AppError::with_detail(
                ErrorCode::TooManyWatchers,
                format!("this PTY has {} watchers already", self.max_watchers),
            ));
        }
        let watch = WatchId(inner.next_watch);
        inner.next_watch += 1;
        let start = inner.ring.start();
        let mut at = start;
        // the scrollback (at most the ring) goes out whatever the mailbox
        // holds: a watcher is dropped for falling behind live output only
        while let Some(slice) = inner.ring.read(at, MAX_FRAME_BYTES) {
            at = slice.from + slice.text.len() as u64;
            sink.do_send(PtyEvent::Output {
                pty_id: self.pty_id,
                offset: slice.from,
                data: Arc::from(slice.text),
            });
        }
        inner.watchers.push(Watcher {
            id: watch,
            user,
            sink,
        });
        Ok(Watching {
            watch,
            from: start,
            cut: start > 0,
        })
    }

    /// Ends one watch (the watcher asked); false when it was not watching.
    pub fn unwatch(&self, watch: WatchId) -> bool {
        let mut inner = self.lock();
        let before = inner.watchers.len();
        inner.watchers.retain(|w| w.id != watch);
        inner.watchers.len() != before
    }

    /// Ends `user`'s watches (a share revoked), telling each watcher.
    pub fn withdraw_user(&self, user: &str) {
        let mut inner = self.lock();
        let pty_id = self.pty_id;
        inner.watchers.retain(|w| {
            if &*w.user != user {
                return true;
            }
            w.sink.do_send(PtyEvent::Ended {
                pty_id,
                watch: w.id,
                reason: WatchEnd::Withdrawn,
            });
            false
        });
    }

    /// How many watch now.
    pub fn watchers(&self) -> usize {
        self.lock().watchers.len()
    }

    /// The PTY ended: every watcher is told, and none is added later.
    pub fn end_all(&self) {
        let mut inner = self.lock();
        inner.ended = true;
        for w in inner.watchers.drain(..) {
            w.sink.do_send(PtyEvent::Ended {
                pty_id: self.pty_id,
                watch: w.id,
                reason: WatchEnd::Ended,
            });
        }
    }
}
