//! [`Scrollback`]: the last output of a PTY as text, addressed by offset.
//!
//! An offset counts UTF-8 bytes of the decoded text from the PTY's start
//! (WAVE2, "Watching and terminals"), so a client that saw everything up to
//! offset `n` asks for `n` and gets exactly what followed. Text is kept as
//! the chunks it was pushed in (shared `Arc<str>`, so a chunk on its way to
//! a client is not copied); eviction drops whole chunks from the front, and
//! never past the offset its caller says is still needed.

use std::collections::VecDeque;
use std::sync::Arc;

/// The scrollback ring. See the module docs.
#[derive(Debug)]
pub struct Scrollback {
    /// `(offset of its first byte, text)`, oldest first, contiguous.
    chunks: VecDeque<(u64, Arc<str>)>,
    /// Offset of the first byte still held.
    start: u64,
    /// Offset one past the last byte pushed.
    end: u64,
    /// Bytes held (`end - start`).
    held: usize,
    /// Bytes it aims to hold at most.
    capacity: usize,
}

/// What [`Scrollback::read`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// Offset of `text`'s first byte.
    pub from: u64,
    /// True when output before `from` that was asked for is gone.
    pub cut: bool,
    /// The text, at most the bytes asked for (cut on a character boundary).
    pub text: String,
}

impl Scrollback {
    /// An empty ring that aims to hold `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Scrollback {
            chunks: VecDeque::new(),
            start: 0,
            end: 0,
            held: 0,
            capacity: capacity.max(1),
        }
    }

    /// Offset of the oldest byte held.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Offset one past the newest byte.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Bytes it aims to hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends `text`; returns the offset of its first byte. Call
    /// [`evict`](Self::evict) afterwards to keep within the capacity.
    pub fn push(&mut self, text: Arc<str>) -> u64 {
        let at = self.end;
        if text.is_empty() {
            return at;
        }
        self.end += text.len() as u64;
        self.held += text.len();
        self.chunks.push_back((at, text));
        at
    }

    /// Drops the oldest chunks while more than the capacity is held, but
    /// none that ends after `keep_from` (a reader still needs it).
    pub fn evict(&mut self, keep_from: u64) {
        while let Some((at, text)) = self.chunks.front() {
            let chunk_end = at + text.len() as u64;
            if chunk_end > keep_from || self.held <= self.capacity {
                break;
            }
            self.held -= text.len();
            self.chunks.pop_front();
            self.start = chunk_end;
        }
    }

    /// Whether more may be pushed without evicting anything at or after
    /// `keep_from`: false means the writer must wait for a reader.
    pub fn has_room(&self, keep_from: u64) -> bool {
        if self.held < self.capacity {
            return true;
        }
        // full: room only if the front chunks may go
        let mut held = self.held;
        for (at, text) in &self.chunks {
            if at + text.len() as u64 > keep_from || held < self.capacity {
                break;
            }
            held -= text.len();
        }
        held < self.capacity
    }

    /// Up to `max` bytes from offset `since` on (or from the oldest byte
    /// held, with `cut` set, when `since` is older); `None` when nothing at
    /// or after `since` is held yet. An offset inside a character starts at
    /// the next character.
    pub fn read(&self, since: u64, max: usize) -> Option<Slice> {
        let cut = since < self.start;
        let from = since.max(self.start);
        if from >= self.end {
            return None;
        }
        // the first chunk holding `from`
        let first = self
            .chunks
            .partition_point(|(at, text)| at + text.len() as u64 <= from);
        let mut text = String::new();
        let mut at_out = None;
        for (at, chunk) in self.chunks.iter().skip(first) {
            let mut skip = (from.saturating_sub(*at)) as usize;
            while skip < chunk.len() && !chunk.is_char_boundary(skip) {
                skip += 1;
            }
            let piece = &chunk[skip..];
            if at_out.is_none() {
                at_out = Some(at + skip as u64);
            }
            let room = max.saturating_sub(text.len());
            if piece.len() <= room {
                text.push_str(piece);
            } else {
                let mut end = room;
                while end > 0 && !piece.is_char_boundary(end) {
                    end -= 1;
                }
                text.push_str(&piece[..end]);
                break;
            }
        }
        let from = at_out?;
        (!text.is_empty()).then_some(Slice { from, cut, text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(cap: usize, chunks: &[&str]) -> Scrollback {
        let mut r = Scrollback::new(cap);
        for c in chunks {
            r.push(Arc::from(*c));
            r.evict(r.end());
        }
        r
    }

    #[test]
    fn offsets_count_utf8_bytes_from_the_start() {
        let mut r = Scrollback::new(100);
        assert_eq!(r.push(Arc::from("ab")), 0);
        assert_eq!(r.push(Arc::from("한")), 2);
        assert_eq!(r.end(), 5);
        let s = r.read(2, 100).unwrap();
        assert_eq!((s.from, s.cut, s.text.as_str()), (2, false, "한"));
    }

    #[test]
    fn a_read_from_any_offset_returns_exactly_what_followed() {
        let r = ring(100, &["0123", "4567", "89"]);
        assert_eq!(r.read(0, 100).unwrap().text, "0123456789");
        assert_eq!(r.read(5, 100).unwrap().text, "56789");
        assert_eq!(r.read(5, 3).unwrap().text, "567");
        assert!(r.read(10, 100).is_none());
        assert!(r.read(99, 100).is_none());
    }

    #[test]
    fn eviction_keeps_the_capacity_and_says_what_was_cut() {
        let r = ring(6, &["0123", "4567", "89"]);
        assert_eq!(r.start(), 4);
        assert_eq!(r.held(), 6);
        let s = r.read(0, 100).unwrap();
        assert_eq!((s.from, s.cut, s.text.as_str()), (4, true, "456789"));
    }

    #[test]
    fn eviction_never_drops_what_a_reader_still_needs() {
        let mut r = Scrollback::new(4);
        r.push(Arc::from("0123"));
        r.push(Arc::from("4567"));
        r.evict(2);
        // the first chunk ends after offset 2: kept though over capacity
        assert_eq!(r.start(), 0);
        assert!(!r.has_room(2));
        assert!(!r.has_room(4));
        assert!(r.has_room(8));
        r.evict(4);
        assert_eq!(r.start(), 4);
    }

    #[test]
    fn a_read_inside_a_character_starts_at_the_next_one() {
        let r = ring(100, &["a한b"]);
        let s = r.read(2, 100).unwrap();
        assert_eq!((s.from, s.text.as_str()), (4, "b"));
    }

    #[test]
    fn a_short_read_ends_on_a_character_boundary() {
        let r = ring(100, &["한한"]);
        assert_eq!(r.read(0, 4).unwrap().text, "한");
    }
}
