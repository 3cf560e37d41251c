//! The terminal output pipeline (SPEC section 5): bytes from a PTY in,
//! throttled text messages out.
//!
//! (Over 450 lines with its tests: each rule below and the paused-time
//! tests that pin it read best side by side.)
//!
//! [`OutputPipeline`] is pure logic driven by the caller's clock, so every
//! rule is unit-tested without a server:
//! - **Throttle**: text is flushed at most every `throttle`; the first output
//!   after a quiet period is due at once, so typing echoes without delay
//!   (leading and trailing edge).
//! - **Carriage returns**: within one flush, a line redrawn with bare `\r`
//!   (a progress bar) keeps only its latest state. `\r\n` is a line end, and
//!   a `\r` at the very end of the buffer may be the first half of a `\r\n`
//!   split across reads, so it is never treated as bare. A redraw whose
//!   dropped part holds an escape sequence is kept whole: full-screen
//!   programs move the cursor with escapes, and dropping their text would
//!   corrupt the screen.
//! - **Decoding**: bytes are decoded with the server's encoding by a
//!   streaming decoder, so a character split across reads is never split
//!   across messages; invalid bytes become U+FFFD.
//! - **Stop phrase**: searched in the decoded text with a carry-over of the
//!   previous tail, so a phrase split across reads is found.
//! - **Bounded memory**: [`OutputPipeline::is_full`] tells the reader to
//!   stop reading (which applies SSH flow control to the remote program)
//!   until the next flush; nothing is dropped.
//! - **Bounded frames**: a flush goes out as messages of at most
//!   [`MAX_FRAME_BYTES`], cut between characters: at full speed one 100 ms
//!   flush held 8-10 MB, which every client had to take and parse whole.
//!
//! [`pump`] is the async driver used by `SshShellActor`: it reads chunks
//! from a stream, feeds the pipeline and hands due text to a sink whose
//! slowness (a slow WebSocket client) pauses the reading.

use std::future::Future;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::time::Instant;

/// Default cap on text waiting for a flush: above a PTY's ~90 MB/s for a
/// 100 ms throttle, so the cap never adds messages at normal speed.
pub const DEFAULT_MAX_PENDING: usize = 16 * 1024 * 1024;

/// The most text one output message carries (defined with the PTYs'
/// feeds, which cut their frames the same way). A flush holding more goes
/// out as several messages, in order, each awaited by the sink (so a slow
/// client still slows the reading).
pub use crate::pty::MAX_FRAME_BYTES;

/// Hands `text` to `sink` in pieces of at most [`MAX_FRAME_BYTES`], each
/// ending on a character boundary; `false` once the sink refused one.
async fn send_framed<F, Fut>(text: String, sink: &mut F) -> bool
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = bool>,
{
    if text.len() <= MAX_FRAME_BYTES {
        return sink(text).await;
    }
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let mut end = rest.len().min(MAX_FRAME_BYTES);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, tail) = rest.split_at(end);
        if !sink(piece.to_owned()).await {
            return false;
        }
        rest = tail;
    }
    true
}

/// Bytes in, throttled text out. See the module docs.
pub struct OutputPipeline {
    /// Streaming decoder; keeps an incomplete character between reads.
    decoder: encoding_rs::Decoder,
    /// Decoded text not yet flushed.
    pending: String,
    /// When text was last flushed; `None` before the first flush.
    last_flush: Option<Instant>,
    /// Minimum time between two flushes.
    throttle: Duration,
    /// Above this many pending bytes the reader must pause.
    max_pending: usize,
    /// The stop phrase, if any.
    stop_phrase: Option<String>,
    /// The end of the previously searched text, so a phrase split across
    /// reads is found; shorter than the phrase.
    stop_tail: String,
    /// Total bytes fed in.
    bytes_in: u64,
    /// Operator terminals: text goes out as it came, `\r` redraws and all
    /// (xterm renders them, and offsets must count every byte).
    keep_redraws: bool,
}

impl OutputPipeline {
    /// A pipeline decoding `encoding`, flushing at most every `throttle`.
    pub fn new(
        encoding: &'static encoding_rs::Encoding,
        throttle: Duration,
        stop_phrase: Option<String>,
    ) -> Self {
        OutputPipeline {
            decoder: encoding.new_decoder_without_bom_handling(),
            pending: String::new(),
            last_flush: None,
            throttle,
            max_pending: DEFAULT_MAX_PENDING,
            stop_phrase: stop_phrase.filter(|p| !p.is_empty()),
            stop_tail: String::new(),
            bytes_in: 0,
            keep_redraws: false,
        }
    }

    /// Sends text as it came, without collapsing `\r` redraws (operator
    /// terminals).
    pub fn keeping_redraws(mut self) -> Self {
        self.keep_redraws = true;
        self
    }

    /// Changes the pending-text cap (tests use a small one).
    pub fn with_max_pending(mut self, max_pending: usize) -> Self {
        self.max_pending = max_pending.max(1);
        self
    }

    /// Decodes `bytes` into the pending text. Returns `true` when the stop
    /// phrase has now been seen.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        self.bytes_in += bytes.len() as u64;
        let start = self.pending.len();
        self.decode(bytes, false);
        self.search_stop_phrase(start)
    }

    /// Decodes whatever the decoder still holds (the stream ended): an
    /// incomplete character becomes U+FFFD.
    pub fn finish(&mut self) -> bool {
        let start = self.pending.len();
        self.decode(&[], true);
        self.search_stop_phrase(start)
    }

    fn decode(&mut self, bytes: &[u8], last: bool) {
        let needed = self
            .decoder
            .max_utf8_buffer_length(bytes.len())
            .unwrap_or(bytes.len() * 3 + 16);
        self.pending.reserve(needed);
        let (_, _, _) = self.decoder.decode_to_string(bytes, &mut self.pending, last);
    }

    fn search_stop_phrase(&mut self, start: usize) -> bool {
        let Some(phrase) = &self.stop_phrase else {
            return false;
        };
        let new = &self.pending[start..];
        let mut window = std::mem::take(&mut self.stop_tail);
        window.push_str(new);
        let found = window.contains(phrase.as_str());
        // keep the last (phrase length - 1) characters for the next read
        let keep = phrase.chars().count().saturating_sub(1);
        self.stop_tail = if keep == 0 {
            String::new()
        } else {
            match window.char_indices().rev().nth(keep - 1) {
                Some((i, _)) => window[i..].to_owned(),
                // shorter than the carry-over: keep all of it
                None => window,
            }
        };
        found
    }

    /// When the pending text should be flushed: `None` when there is none,
    /// `now` when the throttle allows it at once.
    pub fn due_at(&self, now: Instant) -> Option<Instant> {
        if self.pending.is_empty() {
            return None;
        }
        match self.last_flush {
            Some(last) if now < last + self.throttle => Some(last + self.throttle),
            _ => Some(now),
        }
    }

    /// Whether the reader must pause until the next flush.
    pub fn is_full(&self) -> bool {
        self.pending.len() >= self.max_pending
    }

    /// Takes the pending text (carriage-return redraws collapsed) and
    /// records the flush time. `None` when nothing is pending.
    pub fn take(&mut self, now: Instant) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        self.last_flush = Some(now);
        let text = std::mem::take(&mut self.pending);
        if self.keep_redraws {
            return Some(text);
        }
        Some(collapse_redraws(text))
    }

    /// Total bytes fed in so far.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }
}

/// Keeps only the latest state of lines redrawn with a bare `\r`.
pub fn collapse_redraws(text: String) -> String {
    // Fast path, the common case (plain output, "\r\n" line ends): no bare
    // '\r' at all, so the text goes out as it is, without a copy.
    let bytes = text.as_bytes();
    let has_bare_cr = bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\r' && i + 1 < bytes.len() && bytes[i + 1] != b'\n');
    if !has_bare_cr {
        return text;
    }
    let mut out = String::with_capacity(text.len());
    let total = text.len();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bytes = line.as_bytes();
        // the last '\r' that is neither part of "\r\n" nor the buffer's end
        let bare = (0..bytes.len())
            .rev()
            .find(|&i| bytes[i] == b'\r' && bytes.get(i + 1) != Some(&b'\n') && offset + i + 1 != total);
        match bare {
            Some(i) if i > 0 && !line[..i].contains('\x1b') => out.push_str(&line[i..]),
            _ => out.push_str(line),
        }
        offset += line.len();
    }
    out
}

/// Why [`pump`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PumpEnd {
    /// The source ended (the remote program exited or the channel closed).
    SourceEnded,
    /// The stop phrase appeared.
    StopPhrase,
    /// The sink refused more text (the client is gone).
    SinkClosed,
}

/// Drives `pipeline`: reads `source` (pausing while the pipeline is full),
/// flushes due text into `sink` (awaiting it, so a slow client slows the
/// reading), and flushes what is left at the end. `sink` returns `false`
/// when its receiver is gone.
pub async fn pump<S, B, F, Fut>(pipeline: &mut OutputPipeline, source: S, mut sink: F) -> PumpEnd
where
    S: Stream<Item = B>,
    B: AsRef<[u8]>,
    F: FnMut(String) -> Fut,
    Fut: Future<Output = bool>,
{
    futures_util::pin_mut!(source);
    let mut stopped = false;
    let end = loop {
        let now = Instant::now();
        let due = pipeline.due_at(now);
        // Due now (the first output after a quiet period, e.g. a keystroke's
        // echo): flush without a timer, whose millisecond granularity would
        // add up to a millisecond to every echo.
        if due.is_some_and(|at| at <= now) {
            if let Some(text) = pipeline.take(now) {
                if !send_framed(text, &mut sink).await {
                    break PumpEnd::SinkClosed;
                }
            }
            continue;
        }
        let flush_timer = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // Flush first when both are ready, so text goes out in order of
            // arrival and the cap is relieved.
            biased;
            _ = flush_timer => {
                if let Some(text) = pipeline.take(Instant::now()) {
                    if !send_framed(text, &mut sink).await {
                        break PumpEnd::SinkClosed;
                    }
                }
            }
            chunk = source.next(), if !pipeline.is_full() && !stopped => {
                match chunk {
                    Some(bytes) => {
                        if pipeline.push(bytes.as_ref()) {
                            stopped = true;
                        }
                    }
                    None => {
                        break if pipeline.finish() { PumpEnd::StopPhrase } else { PumpEnd::SourceEnded };
                    }
                }
                if stopped {
                    break PumpEnd::StopPhrase;
                }
            }
        }
    };
    if end != PumpEnd::SinkClosed {
        if let Some(text) = pipeline.take(Instant::now()) {
            send_framed(text, &mut sink).await;
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const MS: Duration = Duration::from_millis(1);

    fn utf8(throttle_ms: u64) -> OutputPipeline {
        OutputPipeline::new(encoding_rs::UTF_8, MS * throttle_ms as u32, None)
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_output_after_quiet_goes_out_at_once() {
        let mut p = utf8(100);
        let t0 = Instant::now();
        p.push(b"a");
        assert_eq!(p.due_at(t0), Some(t0));
        assert_eq!(p.take(t0).as_deref(), Some("a"));
        // within the throttle window: due at the window's end
        p.push(b"b");
        assert_eq!(p.due_at(t0 + MS * 10), Some(t0 + MS * 100));
        // after a quiet period longer than the throttle: at once again
        let later = t0 + MS * 500;
        assert_eq!(p.due_at(later), Some(later));
    }

    #[test]
    fn nothing_pending_is_never_due() {
        let p = utf8(100);
        assert_eq!(p.due_at(Instant::now()), None);
    }

    #[test]
    fn a_character_split_across_reads_is_never_split_across_messages() {
        let mut p = utf8(0);
        let han = "한".as_bytes();
        p.push(&han[..1]);
        assert_eq!(
            p.take(Instant::now()),
            None,
            "an incomplete character is held back"
        );
        p.push(&han[1..2]);
        assert_eq!(p.take(Instant::now()), None);
        p.push(&han[2..]);
        assert_eq!(p.take(Instant::now()).as_deref(), Some("한"));
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut p = utf8(0);
        p.push(b"ok\xff\xfe!");
        assert_eq!(p.take(Instant::now()).as_deref(), Some("ok\u{FFFD}\u{FFFD}!"));
    }

    #[test]
    fn an_incomplete_character_at_the_end_of_the_stream_becomes_a_replacement() {
        let mut p = utf8(0);
        p.push(&"한".as_bytes()[..2]);
        p.finish();
        assert_eq!(p.take(Instant::now()).as_deref(), Some("\u{FFFD}"));
    }

    #[test]
    fn euc_kr_is_decoded() {
        let mut p = OutputPipeline::new(encoding_rs::EUC_KR, Duration::ZERO, None);
        let (bytes, _, _) = encoding_rs::EUC_KR.encode("안녕하세요");
        // split in the middle of a two-byte character
        p.push(&bytes[..3]);
        p.push(&bytes[3..]);
        assert_eq!(p.take(Instant::now()).as_deref(), Some("안녕하세요"));
    }

    #[test]
    fn a_stop_phrase_split_across_reads_is_found() {
        let mut p = OutputPipeline::new(encoding_rs::UTF_8, Duration::ZERO, Some("DONE".into()));
        assert!(!p.push(b"working... DO"));
        assert!(p.push(b"NE\r\n"));
    }

    #[test]
    fn a_stop_phrase_split_in_three_reads_and_multibyte_is_found() {
        let mut p = OutputPipeline::new(encoding_rs::UTF_8, Duration::ZERO, Some("완료됨".into()));
        let bytes = "..완료됨".as_bytes();
        assert!(!p.push(&bytes[..4]));
        assert!(!p.push(&bytes[4..8]));
        assert!(p.push(&bytes[8..]));
    }

    #[test]
    fn a_stop_phrase_whose_first_read_is_shorter_than_the_phrase_is_found() {
        let mut p = OutputPipeline::new(encoding_rs::UTF_8, Duration::ZERO, Some("ALL-DONE".into()));
        assert!(!p.push(b"AL"));
        assert!(!p.push(b"L-DO"));
        assert!(p.push(b"NE\r\n"));
    }

    #[test]
    fn no_false_stop_phrase_from_the_carry_over() {
        let mut p = OutputPipeline::new(encoding_rs::UTF_8, Duration::ZERO, Some("abc".into()));
        assert!(!p.push(b"ab"));
        assert!(!p.push(b"xc"));
        assert!(!p.push(b"a"));
        assert!(!p.push(b"b"));
        assert!(p.push(b"c"));
    }

    #[test]
    fn a_progress_bar_keeps_only_its_latest_state() {
        assert_eq!(collapse_redraws(String::from("\r1%\r2%\r3%")), "\r3%");
        assert_eq!(
            collapse_redraws(String::from("start\n\r10%\r20%\ndone\n")),
            "start\n\r20%\ndone\n"
        );
    }

    #[test]
    fn crlf_is_a_line_end_not_a_redraw() {
        assert_eq!(collapse_redraws(String::from("a\r\nb\r\n")), "a\r\nb\r\n");
    }

    #[test]
    fn a_trailing_cr_may_be_half_of_crlf_and_is_kept() {
        assert_eq!(collapse_redraws(String::from("line one\r")), "line one\r");
    }

    #[test]
    fn redraws_with_escape_sequences_are_kept_whole() {
        let tui = "\x1b[2J\x1b[Htop\rbottom";
        assert_eq!(collapse_redraws(tui.to_owned()), tui);
    }

    #[tokio::test(start_paused = true)]
    async fn pump_flushes_at_most_once_per_throttle_and_loses_nothing() {
        // 1000 chunks, one per millisecond, throttle 100 ms: about 11 messages
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            for i in 0..1000u32 {
                tx.send(format!("{i}\n").into_bytes()).unwrap();
                tokio::time::sleep(MS).await;
            }
        });
        let rx = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        let got = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
        let sink_got = got.clone();
        let mut p = utf8(100);
        let end = pump(&mut p, rx, |text| {
            let sink_got = sink_got.clone();
            async move {
                sink_got.lock().unwrap().push((Instant::now(), text));
                true
            }
        })
        .await;
        assert_eq!(end, PumpEnd::SourceEnded);
        let got = got.lock().unwrap();
        let all: String = got.iter().map(|(_, t)| t.as_str()).collect();
        let expected: String = (0..1000).map(|i| format!("{i}\n")).collect();
        assert_eq!(all, expected);
        assert!(got.len() <= 12, "{} messages", got.len());
        for pair in got.windows(2) {
            assert!(
                pair[1].0 - pair[0].0 >= MS * 100,
                "flushed faster than the throttle"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pump_stops_at_the_stop_phrase_and_flushes_the_rest() {
        let source =
            futures_util::stream::iter(vec![b"abc ST".to_vec(), b"OP def".to_vec(), b"never".to_vec()]);
        let mut p = OutputPipeline::new(encoding_rs::UTF_8, MS * 100, Some("STOP".into()));
        let out = Arc::new(Mutex::new(String::new()));
        let o = out.clone();
        let end = pump(&mut p, source, |t| {
            let o = o.clone();
            async move {
                o.lock().unwrap().push_str(&t);
                true
            }
        })
        .await;
        assert_eq!(end, PumpEnd::StopPhrase);
        assert_eq!(*out.lock().unwrap(), "abc STOP def");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_sink_pauses_reading_when_the_pipeline_is_full() {
        // the source records how far it was read
        let read = Arc::new(Mutex::new(0usize));
        let r = read.clone();
        let source = futures_util::stream::iter(0..100).map(move |_| {
            *r.lock().unwrap() += 1;
            vec![b'x'; 10]
        });
        let mut p = utf8(100).with_max_pending(50);
        let max_seen_pending = Arc::new(Mutex::new(0usize));
        let m = max_seen_pending.clone();
        let end = pump(&mut p, source, |t| {
            let m = m.clone();
            async move {
                {
                    let mut max = m.lock().unwrap();
                    *max = (*max).max(t.len());
                }
                // a slow client: each delivery takes a second
                tokio::time::sleep(Duration::from_secs(1)).await;
                true
            }
        })
        .await;
        assert_eq!(end, PumpEnd::SourceEnded);
        assert_eq!(*read.lock().unwrap(), 100);
        // never more than the cap (plus one chunk) buffered at once
        assert!(*max_seen_pending.lock().unwrap() <= 60);
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_flush_goes_out_in_frames_of_at_most_256_kib_cut_between_characters() {
        // 3 MiB of three-byte characters after one ASCII byte, read while
        // the throttle holds them: one flush, cut into frames
        let text: String = std::iter::once('x')
            .chain(std::iter::repeat_n('가', 1024 * 1024))
            .collect();
        let chunks: Vec<Vec<u8>> = text
            .as_bytes()
            .chunks(64 * 1024 + 1)
            .map(<[u8]>::to_vec)
            .collect();
        let source = futures_util::stream::iter(chunks);
        let frames = Arc::new(Mutex::new(Vec::<String>::new()));
        let f = frames.clone();
        let mut p = utf8(100);
        let end = pump(&mut p, source, |t| {
            let f = f.clone();
            async move {
                f.lock().unwrap().push(t);
                true
            }
        })
        .await;
        assert_eq!(end, PumpEnd::SourceEnded);
        let frames = frames.lock().unwrap();
        assert!(
            frames.len() >= text.len() / MAX_FRAME_BYTES,
            "{} frames",
            frames.len()
        );
        for frame in frames.iter() {
            assert!(frame.len() <= MAX_FRAME_BYTES, "a frame of {} bytes", frame.len());
        }
        // in order, nothing lost, and a String cannot hold half a character
        assert_eq!(frames.concat(), text);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_sink_ends_the_pump() {
        let source = futures_util::stream::iter(vec![b"a".to_vec()]).chain(futures_util::stream::pending());
        let mut p = utf8(100);
        let end = pump(&mut p, source, |_| async { false }).await;
        assert_eq!(end, PumpEnd::SinkClosed);
    }
}
