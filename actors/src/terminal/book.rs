//! [`TerminalBook`]: every operator terminal in the daemon, whose it is,
//! who it is shared with, and the limits on how many there are.
//!
//! A terminal takes its seat ([`TerminalBook::reserve`]) before it
//! connects, so the per-user and daemon-wide limits count terminals still
//! connecting and two opens can never both take the last place (the check
//! and the insert are one step under the book's lock). The
//! [`OperatorTerminal`](super::operator::OperatorTerminal) keeps its
//! [`TerminalSeat`] for as long as it runs; dropping the seat frees the
//! place. The lock is held only to read or change entries, never across an
//! await.
//!
//! Who may do what with a terminal (the owner, a share, an admin) is the
//! daemon's decision; the book only keeps the facts it decides on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use actix::Addr;
use chrono::{DateTime, Utc};

use super::operator::OperatorTerminal;
pub use super::seat::{TerminalSeat, TerminalStats};
use crate::error::{AppError, ErrorCode};
use crate::ids::{PtyId, TerminalId};

/// What a share lets its user do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShareMode {
    /// See the output (read-only, `terminal_watch`).
    Watch,
    /// See the output and type (`terminal_attach`).
    Type,
}

impl ShareMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ShareMode::Watch => "watch",
            ShareMode::Type => "type",
        }
    }

    /// The mode named `text`.
    pub fn parse(text: &str) -> Option<ShareMode> {
        match text {
            "watch" => Some(ShareMode::Watch),
            "type" => Some(ShareMode::Type),
            _ => None,
        }
    }
}

/// One terminal as the book keeps it.
#[derive(Debug, Clone)]
pub struct TerminalEntry {
    /// Its id.
    pub terminal_id: TerminalId,
    /// Its PTY's id (watchers name this one).
    pub pty_id: PtyId,
    /// Whose it is.
    pub owner: Arc<str>,
    /// The server.
    pub server: String,
    /// The command it runs (empty: a login shell).
    pub command: String,
    /// When it was opened.
    pub started: DateTime<Utc>,
    /// The actor, once it started (`None` while the seat is only taken).
    pub addr: Option<Addr<OperatorTerminal>>,
    /// Users it is shared with.
    pub shares: BTreeMap<String, ShareMode>,
    /// Live numbers.
    pub stats: Arc<TerminalStats>,
    /// Bytes of output so far, read from its feed when listed.
    pub feed: Option<Arc<crate::pty::feed::PtyFeed>>,
}

impl TerminalEntry {
    /// Bytes of output so far.
    pub fn bytes(&self) -> u64 {
        self.feed.as_ref().map_or(0, |f| f.end())
    }

    /// What `user` may do with it through a share (the owner's own rights
    /// are not a share).
    pub fn share_of(&self, user: &str) -> Option<ShareMode> {
        self.shares.get(user).copied()
    }
}

struct Inner {
    entries: BTreeMap<TerminalId, TerminalEntry>,
    /// The limits now, under the lock of the entries they bound: a place
    /// is checked and taken against one pair. A reload may change them
    /// ([`TerminalBook::set_limits`]); lowered below use, they refuse new
    /// terminals until enough have closed, and close none.
    per_user: usize,
    total: usize,
}

/// Every operator terminal. See the module docs.
#[derive(Clone)]
pub struct TerminalBook {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for TerminalBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("TerminalBook")
            .field("terminals", &inner.entries.len())
            .field("per_user", &inner.per_user)
            .field("total", &inner.total)
            .finish()
    }
}

/// What to book: whose, where, what.
#[derive(Debug, Clone)]
pub struct NewTerminal {
    /// Its PTY's id.
    pub pty_id: PtyId,
    /// Whose.
    pub owner: Arc<str>,
    /// The server.
    pub server: String,
    /// The command (empty: a login shell).
    pub command: String,
}

impl TerminalBook {
    /// A book allowing `per_user` terminals a user and `total` in all.
    pub fn new(per_user: usize, total: usize) -> Self {
        TerminalBook {
            inner: Arc::new(Mutex::new(Inner {
                entries: BTreeMap::new(),
                per_user: per_user.max(1),
                total: total.max(1),
            })),
        }
    }

    /// New limits (a reload), for every clone of the book.
    pub fn set_limits(&self, per_user: usize, total: usize) {
        let mut inner = self.lock();
        inner.per_user = per_user.max(1);
        inner.total = total.max(1);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a place for a new terminal: 54001 when its owner has
    /// `per_user` already, 54002 when the daemon has `total`.
    pub fn reserve(&self, new: NewTerminal) -> Result<(TerminalSeat, Arc<TerminalStats>), AppError> {
        let mut inner = self.lock();
        let mine = inner.entries.values().filter(|e| e.owner == new.owner).count();
        if mine >= inner.per_user {
            return Err(AppError::with_detail(
                ErrorCode::TooManyTerminalsForUser,
                format!(
                    "{} has {mine} terminals open (attached or detached), the most one user may have; close one first",
                    new.owner
                ),
            ));
        }
        if inner.entries.len() >= inner.total {
            return Err(AppError::with_detail(
                ErrorCode::TooManyTerminals,
                format!(
                    "the daemon has {} terminals open, the most it allows",
                    inner.total
                ),
            ));
        }
        let terminal_id = TerminalId::new();
        let stats = Arc::new(TerminalStats::default());
        inner.entries.insert(
            terminal_id,
            TerminalEntry {
                terminal_id,
                pty_id: new.pty_id,
                owner: new.owner,
                server: new.server,
                command: new.command,
                started: Utc::now(),
                addr: None,
                shares: BTreeMap::new(),
                stats: stats.clone(),
                feed: None,
            },
        );
        Ok((
            TerminalSeat::new(terminal_id, {
                let book = self.clone();
                Box::new(move || {
                    book.lock().entries.remove(&terminal_id);
                })
            }),
            stats,
        ))
    }

    /// Records terminal `id`'s running actor and its feed (its seat moved
    /// into the actor); nothing when it already ended.
    pub fn started(
        &self,
        id: TerminalId,
        addr: Addr<OperatorTerminal>,
        feed: Arc<crate::pty::feed::PtyFeed>,
    ) {
        if let Some(e) = self.lock().entries.get_mut(&id) {
            e.addr = Some(addr);
            e.feed = Some(feed);
        }
    }

    /// Terminal `id`, as it is now.
    pub fn get(&self, id: TerminalId) -> Option<TerminalEntry> {
        self.lock().entries.get(&id).cloned()
    }

    /// Every terminal, oldest first.
    pub fn all(&self) -> Vec<TerminalEntry> {
        let mut all: Vec<_> = self.lock().entries.values().cloned().collect();
        all.sort_by_key(|e| e.started);
        all
    }

    /// Shares terminal `id` with `user` (replacing an earlier share);
    /// 54000 when it is gone.
    pub fn share(&self, id: TerminalId, user: &str, mode: ShareMode) -> Result<(), AppError> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(&id).ok_or_else(unknown)?;
        entry.shares.insert(user.to_owned(), mode);
        Ok(())
    }

    /// Ends `user`'s share of terminal `id`; the mode it had, if any.
    pub fn unshare(&self, id: TerminalId, user: &str) -> Option<ShareMode> {
        self.lock().entries.get_mut(&id)?.shares.remove(user)
    }
}

/// 54000.
pub fn unknown() -> AppError {
    AppError::with_detail(ErrorCode::UnknownTerminal, "no open terminal has that id")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(owner: &str) -> NewTerminal {
        NewTerminal {
            pty_id: PtyId::new(),
            owner: Arc::from(owner),
            server: "web1".into(),
            command: String::new(),
        }
    }

    #[test]
    fn the_per_user_and_total_limits_each_refuse_with_their_code() {
        let book = TerminalBook::new(2, 3);
        let a1 = book.reserve(new("ann")).unwrap();
        let _a2 = book.reserve(new("ann")).unwrap();
        let e = book.reserve(new("ann")).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooManyTerminalsForUser);
        let _b1 = book.reserve(new("bob")).unwrap();
        let e = book.reserve(new("bob")).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooManyTerminals);
        // a closed terminal frees its place
        drop(a1);
        assert_eq!(book.all().iter().filter(|e| &*e.owner == "ann").count(), 1);
        book.reserve(new("bob")).unwrap();
    }

    #[test]
    fn shares_are_kept_per_user_and_revocable() {
        let book = TerminalBook::new(10, 10);
        let (seat, _) = book.reserve(new("ann")).unwrap();
        let id = seat.terminal_id();
        book.share(id, "bob", ShareMode::Watch).unwrap();
        book.share(id, "bob", ShareMode::Type).unwrap();
        assert_eq!(book.get(id).unwrap().share_of("bob"), Some(ShareMode::Type));
        assert_eq!(book.unshare(id, "bob"), Some(ShareMode::Type));
        assert_eq!(book.get(id).unwrap().share_of("bob"), None);
        drop(seat);
        assert_eq!(
            book.share(id, "bob", ShareMode::Watch).unwrap_err().code,
            ErrorCode::UnknownTerminal
        );
    }
}
