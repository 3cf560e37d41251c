//! Every running PTY (a STUB command, a script, a workflow command step, an
//! operator terminal) as others may see it: its id, its scrollback and its
//! read-only watchers.
//!
//! - [`ring`]: [`ring::Scrollback`], the last output as text addressed by
//!   offset (UTF-8 bytes from the PTY's start).
//! - [`feed`]: [`feed::PtyFeed`], one PTY's scrollback and watchers; a
//!   watcher that falls behind is dropped, never waited for.
//! - [`info`]: [`info::PtyInfo`], what is known of one PTY.
//! - [`book`]: [`book::PtyBook`], every PTY running now, what
//!   `GET /api/v1/ptys` lists.
//! - [`record`]: the seam through which a PTY's traffic reaches its
//!   recording (the daemon writes the files).
//!
//! Who may watch what is the daemon's decision (its access table and the
//! operator terminals' shares); this module only keeps the PTYs.

pub mod book;
pub mod feed;
pub mod info;
pub mod record;
pub mod ring;

/// The most text one output message carries: a flush or a scrollback
/// holding more goes out as several messages, cut between characters (at
/// full speed one 100 ms flush held 8-10 MB, which every client had to take
/// and parse whole).
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

/// For [`feed::PtyFeed::push`]: no reader waits for any offset, so the
/// scrollback evicts freely.
pub const NOBODY_WAITS: u64 = u64::MAX;
