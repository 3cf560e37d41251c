//! The one place that reads markers in shell mode: [`MarkerFilter`] takes
//! the PTY's bytes as they come and gives back only the command's output,
//! and the markers it passed as [`MarkerEvent`]s.
//!
//! A marker is `ESC ] pp ; <token> ; <kind> <payload> BEL` (an OSC
//! sequence, which a terminal would ignore should one ever slip through).
//! Kinds, in the order a POSIX shell prints them:
//!
//! | kind | payload | printed by |
//! |---|---|---|
//! | `P` | `$((1+1))` | the probe line, POSIX shells only |
//! | `A` | none | the prompt (`PS1`), before each line is read |
//! | `N` | `$SHELL` | the ready line, every shell |
//! | `B` | none | the command line, just before the command |
//! | `E` | `$?` | the command line, just after the command |
//!
//! Everything before `B` is discarded: banner, MOTD, the profile's output,
//! prompts, the echo of what was typed. Everything after `E` is too (the
//! shell's `logout`). An `A` after `B` means the shell abandoned the command
//! line and is back at its prompt. Markers are found as bytes, before
//! decoding: they are ASCII, and no byte of a UTF-8 or EUC-KR multibyte
//! character is ASCII.
//!
//! A marker may be split across reads: a tail of the buffer that could be
//! the start of one is held back until the next read says whether it is.
//! Every marker starts with ESC, which ends no prompt or plain output, so
//! held-back bytes are rare and never wait for long.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::lines::Token;

/// ESC and BEL, which open and close a marker.
const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;
/// Longest payload accepted (`$SHELL`); a longer one is not a marker.
const MAX_PAYLOAD: usize = 256;

/// A marker seen, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkerEvent {
    /// The ready line ran: `posix` when the probe printed `2` before it,
    /// `shell` is the login shell as `$SHELL` names it.
    Probed {
        /// Whether the shell evaluated `$((1+1))`.
        posix: bool,
        /// `$SHELL`, lossily decoded.
        shell: String,
    },
    /// The command starts; output follows.
    Began,
    /// The command ended with this status (`None` if it did not parse).
    Ended(Option<u32>),
    /// The prompt came back after the command started: the shell abandoned
    /// the command line without printing the end marker.
    Aborted,
}

/// Where the filter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the ready marker (noting a probe marker).
    Probing,
    /// The shell is POSIX; waiting for the begin marker.
    AwaitingBegin,
    /// The command runs: output passes.
    Running,
    /// Ended, aborted or refused: nothing more passes.
    Done,
}

/// Bytes in, the command's output and markers out. See the module docs.
#[derive(Debug)]
pub struct MarkerFilter {
    /// `ESC ] pp ; <token> ;`, what every marker starts with.
    prefix: Vec<u8>,
    phase: Phase,
    /// Whether the probe marker said `2`.
    posix: bool,
    /// Whether the begin marker was seen.
    began: bool,
    /// Bytes not yet passed on: a possible marker start, or a marker
    /// whose end has not arrived.
    held: Vec<u8>,
}

/// What one [`MarkerFilter::push`] gave back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filtered {
    /// The command's output in this read (may be empty).
    pub output: Vec<u8>,
    /// Markers seen in this read, in order.
    pub events: Vec<MarkerEvent>,
}

impl MarkerFilter {
    /// A filter for the markers carrying `token`.
    pub fn new(token: &Token) -> Self {
        let mut prefix = vec![ESC];
        prefix.extend_from_slice(b"]pp;");
        prefix.extend_from_slice(token.as_str().as_bytes());
        prefix.push(b';');
        MarkerFilter {
            prefix,
            phase: Phase::Probing,
            posix: false,
            began: false,
            held: Vec::new(),
        }
    }

    /// Whether nothing more can pass (ended, aborted, or not POSIX).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether the command has started.
    pub fn began(&self) -> bool {
        self.began
    }

    /// Reads `chunk`.
    pub fn push(&mut self, chunk: &[u8]) -> Filtered {
        let mut out = Filtered::default();
        if self.phase == Phase::Done {
            return out;
        }
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(chunk);
        let mut pos = 0;
        while self.phase != Phase::Done {
            let Some(at) = find(&buf[pos..], &self.prefix).map(|i| pos + i) else {
                // no whole prefix: pass all but a tail that may start one
                let end = buf.len() - partial_prefix_len(&buf[pos..], &self.prefix);
                self.pass(&buf[pos..end], &mut out.output);
                pos = end;
                break;
            };
            self.pass(&buf[pos..at], &mut out.output);
            let body = at + self.prefix.len();
            match buf[body..].iter().position(|&b| b == BEL) {
                Some(len) if len <= MAX_PAYLOAD + 1 => {
                    self.marker(&buf[body..body + len], &mut out.events);
                    pos = body + len + 1;
                }
                None if buf.len() - body <= MAX_PAYLOAD + 1 => {
                    // its end has not arrived yet
                    pos = at;
                    break;
                }
                // too long to be ours: the prefix was output
                _ => {
                    self.pass(&buf[at..body], &mut out.output);
                    pos = body;
                }
            }
        }
        if self.phase != Phase::Done {
            buf.drain(..pos);
            self.held = buf;
        }
        out
    }

    /// The channel ended: what was held back, if the command was running.
    pub fn finish(&mut self) -> Vec<u8> {
        let held = std::mem::take(&mut self.held);
        let running = self.phase == Phase::Running;
        self.phase = Phase::Done;
        if running {
            held
        } else {
            Vec::new()
        }
    }

    fn pass(&self, bytes: &[u8], output: &mut Vec<u8>) {
        if self.phase == Phase::Running {
            output.extend_from_slice(bytes);
        }
    }

    fn marker(&mut self, body: &[u8], events: &mut Vec<MarkerEvent>) {
        let Some((&kind, payload)) = body.split_first() else {
            return;
        };
        match (self.phase, kind) {
            (Phase::Probing, b'P') => self.posix = payload == b"2",
            (Phase::Probing, b'N') => {
                events.push(MarkerEvent::Probed {
                    posix: self.posix,
                    shell: String::from_utf8_lossy(payload).into_owned(),
                });
                self.phase = if self.posix {
                    Phase::AwaitingBegin
                } else {
                    Phase::Done
                };
            }
            (Phase::AwaitingBegin, b'B') => {
                events.push(MarkerEvent::Began);
                self.began = true;
                self.phase = Phase::Running;
            }
            (Phase::Running, b'E') => {
                let status = std::str::from_utf8(payload).ok().and_then(|s| s.parse().ok());
                events.push(MarkerEvent::Ended(status));
                self.phase = Phase::Done;
            }
            (Phase::Running, b'A') => {
                events.push(MarkerEvent::Aborted);
                self.phase = Phase::Done;
            }
            // prompts and repeated probes before the command: noise
            _ => {}
        }
    }
}

/// `source` (a PTY's output) through `filter`: the command's output, ending
/// after the end marker (or the abort marker, or a refusal), or with the
/// source, when what was held back comes last. Each marker is handed to
/// `on_event` as it is read.
pub fn filter_stream<S, F>(source: S, filter: MarkerFilter, on_event: F) -> impl Stream<Item = Bytes>
where
    S: Stream<Item = Bytes> + Unpin,
    F: FnMut(MarkerEvent),
{
    futures_util::stream::unfold(
        (source, filter, on_event),
        |(mut source, mut filter, mut on_event)| async move {
            while !filter.is_done() {
                let output = match source.next().await {
                    Some(chunk) => {
                        let filtered = filter.push(&chunk);
                        filtered.events.into_iter().for_each(&mut on_event);
                        filtered.output
                    }
                    None => filter.finish(),
                };
                if !output.is_empty() {
                    return Some((Bytes::from(output), (source, filter, on_event)));
                }
            }
            None
        },
    )
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The length of the longest tail of `buf` that is a proper start of
/// `prefix` (0 when none is).
fn partial_prefix_len(buf: &[u8], prefix: &[u8]) -> usize {
    let longest = buf.len().min(prefix.len() - 1);
    (1..=longest)
        .rev()
        .find(|&k| buf.ends_with(&prefix[..k]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn filter() -> MarkerFilter {
        MarkerFilter::new(&Token::fixed(TOKEN))
    }

    fn marker(kind: &str) -> Vec<u8> {
        format!("\x1b]pp;{TOKEN};{kind}\x07").into_bytes()
    }

    /// A whole session as a POSIX shell prints it: noise, probe, prompts,
    /// echo, then the command's output between B and E, then `logout`.
    fn session(output: &[u8], status: &str) -> Vec<u8> {
        let mut s = b"Last login: today\r\nThe programs included with Debian...\r\n$ ".to_vec();
        s.extend(b" eval 'unset HISTFILE ...'\r\n");
        s.extend(marker("P2"));
        s.extend(marker("A"));
        s.extend(b" printf '\\033]pp;%s;N%s\\007' ...\r\n");
        s.extend(marker("N/bin/bash"));
        s.extend(marker("A"));
        s.extend(b" _pp_c=$(printf 'echo hi_') ...\r\n");
        s.extend(marker("B"));
        s.extend(output);
        s.extend(marker(&format!("E{status}")));
        s.extend(b"logout\r\n");
        s
    }

    fn run_in_chunks(bytes: &[u8], size: usize) -> (Vec<u8>, Vec<MarkerEvent>) {
        let mut f = filter();
        let mut out = Vec::new();
        let mut events = Vec::new();
        for chunk in bytes.chunks(size) {
            let got = f.push(chunk);
            out.extend(got.output);
            events.extend(got.events);
        }
        out.extend(f.finish());
        (out, events)
    }

    #[test]
    fn only_the_commands_output_passes_and_the_status_is_read() {
        let (out, events) = run_in_chunks(&session(b"hi\r\n", "3"), 4096);
        assert_eq!(out, b"hi\r\n");
        assert_eq!(
            events,
            [
                MarkerEvent::Probed {
                    posix: true,
                    shell: "/bin/bash".into()
                },
                MarkerEvent::Began,
                MarkerEvent::Ended(Some(3)),
            ]
        );
    }

    #[test]
    fn markers_split_across_reads_at_every_byte_are_found() {
        let bytes = session("안녕\r\nno newline at the end".as_bytes(), "130");
        for size in 1..=48 {
            let (out, events) = run_in_chunks(&bytes, size);
            assert_eq!(
                out,
                "안녕\r\nno newline at the end".as_bytes(),
                "chunks of {size}"
            );
            assert_eq!(
                events.last(),
                Some(&MarkerEvent::Ended(Some(130))),
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn output_holding_a_fake_marker_passes_as_output() {
        // another token, and a marker without a token: both are output
        let fake = b"\x1b]pp;ffffffffffffffffffffffffffffffff;E0\x07 \x1b]pp;E0\x07 done\r\n".to_vec();
        let (out, events) = run_in_chunks(&session(&fake, "0"), 7);
        assert_eq!(out, fake);
        assert_eq!(events.last(), Some(&MarkerEvent::Ended(Some(0))));
    }

    #[test]
    fn an_escape_at_the_end_of_a_read_is_held_only_until_the_next_read() {
        let mut f = filter();
        for m in [marker("P2"), marker("N/bin/sh"), marker("B")] {
            f.push(&m);
        }
        let got = f.push(b"red: \x1b");
        assert_eq!(got.output, b"red: ", "the ESC may start a marker");
        let got = f.push(b"[31mX");
        assert_eq!(got.output, b"\x1b[31mX");
    }

    #[test]
    fn a_shell_that_prints_no_probe_marker_is_reported_not_posix() {
        let mut bytes = b"Illegal variable name.\r\n> ".to_vec();
        bytes.extend(marker("N/usr/bin/tcsh"));
        bytes.extend(b"exit\r\n");
        let (out, events) = run_in_chunks(&bytes, 5);
        assert!(out.is_empty());
        assert_eq!(
            events,
            [MarkerEvent::Probed {
                posix: false,
                shell: "/usr/bin/tcsh".into()
            }]
        );
    }

    #[test]
    fn a_prompt_after_the_begin_marker_means_the_line_was_abandoned() {
        let mut bytes = session(b"", "0");
        let b = find(&bytes, &marker("B")).unwrap() + marker("B").len();
        bytes.truncate(b);
        bytes.extend(b"partial output");
        bytes.extend(marker("A"));
        let (out, events) = run_in_chunks(&bytes, 3);
        assert_eq!(out, b"partial output");
        assert_eq!(events.last(), Some(&MarkerEvent::Aborted));
    }

    #[test]
    fn a_channel_that_ends_mid_command_gives_back_what_was_held() {
        let mut f = filter();
        for m in [marker("P2"), marker("N/bin/sh"), marker("B")] {
            f.push(&m);
        }
        assert!(f.began());
        let got = f.push(b"tail \x1b]pp;0123");
        assert_eq!(got.output, b"tail ");
        assert_eq!(f.finish(), b"\x1b]pp;0123");
        assert!(f.is_done());
    }

    #[test]
    fn nothing_before_the_begin_marker_is_output_even_without_a_newline() {
        let mut f = filter();
        let got = f.push(b"motd\r\nprompt$ echo secret-looking-text");
        assert!(got.output.is_empty());
        f.push(&marker("P2"));
        f.push(&marker("N/bin/sh"));
        assert!(!f.began());
        assert_eq!(f.finish(), b"", "noise is not output when the channel ends early");
    }

    #[tokio::test]
    async fn the_stream_ends_at_the_end_marker_and_reports_each_marker() {
        let bytes = session(b"out\r\n", "7");
        let mut more = bytes.clone();
        more.extend(b"never read");
        let chunks: Vec<Bytes> = more.chunks(5).map(Bytes::copy_from_slice).collect();
        let mut events = Vec::new();
        let out: Vec<Bytes> = filter_stream(futures_util::stream::iter(chunks), filter(), |e| events.push(e))
            .collect()
            .await;
        assert_eq!(out.concat(), b"out\r\n");
        assert_eq!(events.last(), Some(&MarkerEvent::Ended(Some(7))));
    }

    #[test]
    fn an_overlong_unterminated_marker_is_passed_as_output() {
        let mut f = filter();
        for m in [marker("P2"), marker("N/bin/sh"), marker("B")] {
            f.push(&m);
        }
        let mut long = format!("\x1b]pp;{TOKEN};X").into_bytes();
        long.extend(vec![b'y'; MAX_PAYLOAD + 10]);
        let got = f.push(&long);
        assert_eq!(got.output, long);
    }
}
