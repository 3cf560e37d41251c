//! [`FrameReader`]: a WebSocket's incoming frames, read so that what one
//! client can make the daemon hold is bounded (issue 23).
//!
//! actix-web-actors' own reader keeps every byte a client sends until a
//! whole frame is there, and makes room for the size a frame announces as
//! soon as its header arrives: 60 viewers sending one frame of 4 MB each
//! grew the daemon by 250 MB, and 10,000 would have held 40 GB. The frame
//! limit alone is no bound when many connections each hold one. This
//! reader decides at each frame's header, before it keeps a byte of it:
//!
//! - a control frame (ping, pong, close: at most 125 bytes) is kept;
//! - a text message (a frame and its continuation fragments) is kept while
//!   it fits the connection's allowance (`PINKPAGE_WS_FRAME_ALLOWANCE_BYTES`,
//!   8 KiB); past that it first reserves what it will hold from the
//!   daemon-wide [`FrameBudget`] (`PINKPAGE_WS_FRAME_BUDGET_BYTES`), and
//!   while none is free the reader stops reading the socket, so TCP slows
//!   the client down;
//! - a message longer than any type allows ([`MAX_FRAME_BYTES`], 64 KiB),
//!   or a binary one, is not kept at all: its bytes are counted and
//!   dropped as they arrive, and once it has ended it is answered with its
//!   code (31002, 31000) on a connection that stays open, as before;
//! - a single frame over [`HARD_FRAME_LIMIT`] (4 MiB) ends the connection
//!   (close code 1009), as before.
//!
//! Raw bytes wait in `buf` only until the step that needs them: the
//! reader asks the socket for more only when `buf` lacks what the current
//! header or kept frame needs, so besides the message it holds at most one
//! read of the socket. (The HTTP server itself buffers up to ~160 KiB of
//! a connection's unread input, whatever the protocol.)
//!
//! Fragmented messages are joined here, so the connection sees whole
//! messages only. A control frame between two fragments is not a sign of
//! life (`Inbound::Ping::mid_message`): a client cannot keep a message
//! half-sent, and its reservation taken, by answering pings; it is dropped
//! by the heartbeat after `PINKPAGE_WS_TIMEOUT_S` like any client whose
//! message stopped arriving.
//!
//! Who owns what: the reader is one of the connection actor's streams
//! (added when its context is made) and is polled only by that context;
//! its reservation is an owned semaphore permit, given back when the
//! message is handed over or refused, or when the reader is dropped,
//! whatever ends the connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_http::ws::{CloseCode, CloseReason, Parser};
use actix_web::web::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use pinkpage_actors::{AppError, ErrorCode};

use super::protocol::MAX_FRAME_BYTES;
use crate::limits::frame_budget::{FrameBudget, Reservation};

/// A single frame above this closes the connection (1009); frames between
/// [`MAX_FRAME_BYTES`] and this are read, dropped and answered with 31002.
pub const HARD_FRAME_LIMIT: u64 = 4 * 1024 * 1024;

/// Socket reads one poll may take before it lets the worker's other
/// connections run (a client streaming a dropped 4 MiB frame).
const READS_PER_POLL: usize = 16;

/// What the connection is handed.
#[derive(Debug)]
pub enum Inbound {
    /// A whole text message, its fragments joined.
    Text(String),
    /// A message that was not kept, and the error to answer it with: 31002
    /// (too large), 31000 (binary, or not UTF-8). The connection goes on.
    Refused(AppError),
    /// A ping to answer.
    Ping {
        /// Its payload, echoed in the pong.
        data: Bytes,
        /// It came between two fragments of a message: no sign of life.
        mid_message: bool,
    },
    /// A pong.
    Pong {
        /// It came between two fragments of a message: no sign of life.
        mid_message: bool,
    },
    /// The client closes.
    Close(Option<CloseReason>),
    /// The stream cannot go on: close with this code and reason.
    Broken {
        /// The close code.
        code: CloseCode,
        /// Why, for the close frame and the log.
        reason: String,
    },
}

/// A frame header, as far as the reader decides by it.
#[derive(Debug, Clone, Copy)]
struct Head {
    fin: bool,
    opcode: u8,
    header_len: usize,
    payload_len: u64,
}

impl Head {
    fn is_control(&self) -> bool {
        self.opcode & 0x08 != 0
    }
}

/// The header at the start of `buf`: `None` until it has all arrived.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err("a frame with reserved bits set".into());
    }
    if b1 & 0x80 == 0 {
        return Err("an unmasked client frame".into());
    }
    let opcode = b0 & 0x0F;
    if !matches!(opcode, 0 | 1 | 2 | 8 | 9 | 10) {
        return Err(format!("unknown opcode {opcode}"));
    }
    let (extra, payload_len) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (2, u64::from(u16::from_be_bytes([b[0], b[1]]))),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut n = [0u8; 8];
                n.copy_from_slice(b);
                (8, u64::from_be_bytes(n))
            }
            None => return Ok(None),
        },
        n => (0, u64::from(n)),
    };
    let header_len = 2 + extra + 4;
    if buf.len() < header_len {
        return Ok(None);
    }
    Ok(Some(Head {
        fin: b0 & 0x80 != 0,
        opcode,
        header_len,
        payload_len,
    }))
}

/// The message being received.
struct Message {
    /// Its kept bytes (none once refused).
    data: BytesMut,
    /// Every payload byte announced so far, kept or not.
    len: u64,
    /// Set when it will not be kept: answered with this once it ends.
    refused: Option<AppError>,
}

/// What the reader is doing.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Waiting for a frame header.
    Head,
    /// Keeping this frame once it has all arrived.
    Keep(Head),
    /// Dropping this many more payload bytes of a frame, then the message
    /// ends if `fin`.
    Skip { left: u64, fin: bool },
    /// The client closed, or the stream broke: nothing more.
    Done,
}

type Waiting = Pin<Box<dyn Future<Output = Reservation>>>;

/// A WebSocket's incoming frames, as [`Inbound`] items. See the module
/// docs.
pub struct FrameReader<S> {
    /// The connection's raw input (the request's payload after the
    /// upgrade).
    input: S,
    /// Raw bytes read and not yet taken by a step.
    buf: BytesMut,
    step: Step,
    message: Option<Message>,
    /// Kept message bytes this connection may hold without a reservation.
    allowance: usize,
    budget: FrameBudget,
    /// Bytes of the message beyond the allowance, reserved from `budget`.
    reserved: Option<Reservation>,
    /// A reservation being waited for (the budget was spent).
    waiting: Option<Waiting>,
}

impl<S> FrameReader<S> {
    /// Reads `input`, keeping up to `allowance` bytes of a message on its
    /// own and reserving the rest from `budget`.
    pub fn new(input: S, budget: FrameBudget, allowance: usize) -> Self {
        FrameReader {
            input,
            buf: BytesMut::new(),
            step: Step::Head,
            message: None,
            allowance,
            budget,
            reserved: None,
            waiting: None,
        }
    }

    fn broken(&mut self, code: CloseCode, reason: impl Into<String>) -> Poll<Option<Inbound>> {
        self.step = Step::Done;
        self.message = None;
        self.reserved = None;
        Poll::Ready(Some(Inbound::Broken {
            code,
            reason: reason.into(),
        }))
    }

    /// Hands the ended message over (its reservation goes back).
    fn finish(&mut self) -> Inbound {
        self.reserved = None;
        let Some(message) = self.message.take() else {
            return Inbound::Refused(AppError::with_detail(
                ErrorCode::WsMalformed,
                "a message ended that never began",
            ));
        };
        if let Some(err) = message.refused {
            return Inbound::Refused(err);
        }
        match String::from_utf8(Vec::from(message.data)) {
            Ok(text) => Inbound::Text(text),
            Err(_) => Inbound::Refused(AppError::with_detail(
                ErrorCode::WsMalformed,
                "text frame is not UTF-8",
            )),
        }
    }

    /// Makes sure `need` bytes beyond the allowance are reserved; pending
    /// while the budget has not got them (the reader then reads nothing).
    fn reserve(&mut self, cx: &mut Context<'_>, need: usize) -> Poll<()> {
        loop {
            let have = self.reserved.as_ref().map_or(0, Reservation::bytes);
            if need <= have {
                return Poll::Ready(());
            }
            let got = match self.waiting.as_mut() {
                Some(waiting) => match waiting.as_mut().poll(cx) {
                    Poll::Ready(got) => {
                        self.waiting = None;
                        got
                    }
                    Poll::Pending => return Poll::Pending,
                },
                None => match self.budget.try_reserve(need - have) {
                    Some(got) => got,
                    None => {
                        self.waiting = Some(Box::pin(self.budget.reserve(need - have)));
                        continue;
                    }
                },
            };
            match self.reserved.as_mut() {
                Some(r) => r.merge(got),
                None => self.reserved = Some(got),
            }
        }
    }

    /// Starts or continues the message a data frame with `head` belongs
    /// to, and decides whether its payload is kept.
    fn begin_data_frame(&mut self, head: Head) -> Result<Step, String> {
        let starts = head.opcode != 0;
        match (starts, self.message.is_some()) {
            (false, false) => return Err("a continuation frame without a first frame".into()),
            (true, true) => return Err("a new message began before the last one ended".into()),
            (true, false) => {
                let refused = (head.opcode == 2).then(|| {
                    AppError::with_detail(
                        ErrorCode::WsMalformed,
                        "binary frames are not accepted; send JSON text",
                    )
                });
                self.message = Some(Message {
                    data: BytesMut::new(),
                    len: 0,
                    refused,
                });
            }
            (false, true) => {}
        }
        let Some(message) = self.message.as_mut() else {
            return Err("no message".into());
        };
        message.len = message.len.saturating_add(head.payload_len);
        if message.refused.is_none() && message.len > MAX_FRAME_BYTES as u64 {
            message.refused = Some(AppError::with_detail(
                ErrorCode::WsTooLarge,
                format!("{} bytes; the limit is {MAX_FRAME_BYTES}", message.len),
            ));
            message.data = BytesMut::new();
            self.reserved = None;
        }
        Ok(if message.refused.is_some() {
            self.buf.advance(head.header_len);
            Step::Skip {
                left: head.payload_len,
                fin: head.fin,
            }
        } else {
            Step::Keep(head)
        })
    }
}

impl<S> FrameReader<S>
where
    S: Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin,
{
    /// Reads once more from the socket into `buf`. `Ready(None)` at the
    /// end of the input (or past [`READS_PER_POLL`], after asking to be
    /// polled again: then `Pending`).
    fn fill(&mut self, cx: &mut Context<'_>, reads: &mut usize) -> Poll<Option<Result<(), String>>> {
        *reads += 1;
        if *reads > READS_PER_POLL {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match Pin::new(&mut self.input).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.buf.extend_from_slice(&chunk);
                Poll::Ready(Some(Ok(())))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.to_string()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S> Stream for FrameReader<S>
where
    S: Stream<Item = Result<Bytes, actix_web::error::PayloadError>> + Unpin,
{
    type Item = Inbound;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        let this = &mut *self;
        let mut reads = 0;
        loop {
            // what the current step needs from the socket first, if any
            let wanted = match this.step {
                Step::Done => return Poll::Ready(None),
                Step::Head => match parse_head(&this.buf) {
                    Err(e) => return this.broken(CloseCode::Protocol, e),
                    Ok(None) => true,
                    Ok(Some(head)) if head.payload_len > HARD_FRAME_LIMIT => {
                        return this.broken(
                            CloseCode::Size,
                            format!(
                                "a frame of {} bytes; frames over {HARD_FRAME_LIMIT} close the connection (31002)",
                                head.payload_len
                            ),
                        )
                    }
                    Ok(Some(head)) if head.is_control() => {
                        if head.payload_len > 125 || !head.fin {
                            return this.broken(CloseCode::Protocol, "a control frame over 125 bytes or fragmented");
                        }
                        this.step = Step::Keep(head);
                        continue;
                    }
                    Ok(Some(head)) => match this.begin_data_frame(head) {
                        Ok(step) => {
                            this.step = step;
                            continue;
                        }
                        Err(e) => return this.broken(CloseCode::Protocol, e),
                    },
                },
                Step::Skip { left, fin } => {
                    let n = left.min(this.buf.len() as u64);
                    this.buf.advance(n as usize);
                    let left = left - n;
                    if left == 0 {
                        this.step = Step::Head;
                        if fin {
                            return Poll::Ready(Some(this.finish()));
                        }
                        continue;
                    }
                    this.step = Step::Skip { left, fin };
                    true
                }
                Step::Keep(head) => {
                    let total = head.header_len + head.payload_len as usize;
                    if !head.is_control() {
                        let held = this.message.as_ref().map_or(0, |m| m.data.len()) + total;
                        let need = held.saturating_sub(this.allowance);
                        if this.reserve(cx, need).is_pending() {
                            return Poll::Pending;
                        }
                    }
                    if this.buf.len() < total {
                        true
                    } else {
                        let mut frame = this.buf.split_to(total);
                        this.step = Step::Head;
                        let (fin, opcode, payload) = match Parser::parse(&mut frame, true, usize::MAX) {
                            Ok(Some((fin, opcode, payload))) => (fin, opcode, payload.unwrap_or_default()),
                            Ok(None) => return this.broken(CloseCode::Protocol, "a frame shorter than its header says"),
                            Err(e) => return this.broken(CloseCode::Protocol, e.to_string()),
                        };
                        use actix_http::ws::OpCode;
                        let mid_message = this.message.is_some();
                        match opcode {
                            OpCode::Ping => {
                                return Poll::Ready(Some(Inbound::Ping {
                                    data: payload.freeze(),
                                    mid_message,
                                }))
                            }
                            OpCode::Pong => return Poll::Ready(Some(Inbound::Pong { mid_message })),
                            OpCode::Close => {
                                return match Parser::try_parse_close_payload(&payload) {
                                    Ok(reason) => {
                                        this.step = Step::Done;
                                        Poll::Ready(Some(Inbound::Close(reason)))
                                    }
                                    Err(e) => this.broken(CloseCode::Protocol, e.to_string()),
                                }
                            }
                            _ => {
                                if let Some(message) = this.message.as_mut() {
                                    if message.data.is_empty() {
                                        message.data = payload;
                                    } else {
                                        message.data.extend_from_slice(&payload);
                                    }
                                }
                                if fin {
                                    return Poll::Ready(Some(this.finish()));
                                }
                                continue;
                            }
                        }
                    }
                }
            };
            if wanted {
                match this.fill(cx, &mut reads) {
                    Poll::Ready(Some(Ok(()))) => {}
                    Poll::Ready(Some(Err(e))) => return this.broken(CloseCode::Protocol, e),
                    // an incomplete frame at the end is dropped with the
                    // connection
                    Poll::Ready(None) => {
                        this.step = Step::Done;
                        return Poll::Ready(None);
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::error::PayloadError;
    use futures_util::StreamExt;
    use tokio::sync::mpsc;

    use super::*;

    /// A client frame: `fin`, `opcode`, masked `payload`.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [1u8, 2, 3, 4];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn text(payload: &[u8]) -> Vec<u8> {
        frame(true, 1, payload)
    }

    type Input = mpsc::UnboundedSender<Result<Bytes, PayloadError>>;

    /// A reader fed through a channel (the socket), with `budget` bytes.
    fn reader(
        budget: &FrameBudget,
        allowance: usize,
    ) -> (
        Input,
        FrameReader<impl Stream<Item = Result<Bytes, PayloadError>> + Unpin>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let input = tokio_stream_of(rx);
        (tx, FrameReader::new(input, budget.clone(), allowance))
    }

    fn tokio_stream_of(
        mut rx: mpsc::UnboundedReceiver<Result<Bytes, PayloadError>>,
    ) -> impl Stream<Item = Result<Bytes, PayloadError>> + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    fn send(tx: &Input, bytes: &[u8]) {
        tx.send(Ok(Bytes::copy_from_slice(bytes))).unwrap();
    }

    /// The next item, or `None` when the reader is waiting.
    fn poll_once<S>(r: &mut FrameReader<S>) -> Option<Option<Inbound>>
    where
        S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
    {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        match Pin::new(r).poll_next(&mut cx) {
            Poll::Ready(item) => Some(item),
            Poll::Pending => None,
        }
    }

    fn text_of(item: Option<Inbound>) -> String {
        match item {
            Some(Inbound::Text(t)) => t.to_string(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    fn refusal(item: Option<Inbound>) -> u32 {
        match item {
            Some(Inbound::Refused(e)) => e.code.code(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn messages_arrive_whole_whatever_the_reads_and_fragments() {
        let budget = FrameBudget::new(1 << 20);
        let (tx, mut r) = reader(&budget, 8192);
        let mut bytes = text(b"{\"type\":\"ping\"}");
        bytes.extend(frame(false, 1, b"hel"));
        bytes.extend(frame(true, 9, b"p")); // a ping between fragments
        bytes.extend(frame(false, 0, b"lo "));
        bytes.extend(frame(true, 0, "wörld".as_bytes()));
        // one byte a read
        for b in &bytes {
            send(&tx, std::slice::from_ref(b));
        }
        drop(tx);
        assert_eq!(text_of(r.next().await), "{\"type\":\"ping\"}");
        match r.next().await {
            Some(Inbound::Ping { data, mid_message }) => {
                assert_eq!(&data[..], b"p");
                assert!(mid_message, "a ping between fragments is no sign of life");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(text_of(r.next().await), "hello wörld");
        assert!(r.next().await.is_none());
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_message_past_the_largest_is_dropped_as_it_arrives_and_answered_31002() {
        let budget = FrameBudget::new(1 << 20);
        let (tx, mut r) = reader(&budget, 8192);
        let big = vec![b'x'; 4 * 1024 * 1024 - 1024];
        let bytes = text(&big);
        // the header and the first 64 KiB: nothing is kept of it
        send(&tx, &bytes[..64 * 1024]);
        assert!(poll_once(&mut r).is_none());
        assert!(r.buf.len() < 64 * 1024, "kept {} bytes", r.buf.len());
        assert_eq!(budget.in_use(), 0);
        for chunk in bytes[64 * 1024..].chunks(100_000) {
            send(&tx, chunk);
        }
        send(&tx, &text(b"after"));
        assert_eq!(refusal(r.next().await), 31002);
        assert_eq!(text_of(r.next().await), "after", "the connection goes on");
        // so is a fragmented one, once its total passes the limit
        let half = vec![b'y'; 40 * 1024];
        send(&tx, &frame(false, 1, &half));
        send(&tx, &frame(true, 0, &half));
        assert_eq!(refusal(r.next().await), 31002);
        // and a binary one, whatever its size
        send(&tx, &frame(true, 2, b"\x00\x01"));
        assert_eq!(refusal(r.next().await), 31000);
    }

    #[tokio::test]
    async fn a_frame_over_the_hard_limit_breaks_the_connection() {
        let budget = FrameBudget::new(1 << 20);
        let (tx, mut r) = reader(&budget, 8192);
        let mut head = vec![0x81, 0x80 | 127];
        head.extend_from_slice(&(HARD_FRAME_LIMIT + 1).to_be_bytes());
        head.extend_from_slice(&[0, 0, 0, 0]);
        send(&tx, &head);
        match r.next().await {
            Some(Inbound::Broken { code, .. }) => assert_eq!(code, CloseCode::Size),
            other => panic!("{other:?}"),
        }
        assert!(r.next().await.is_none());
    }

    #[tokio::test]
    async fn past_the_allowance_a_message_waits_for_the_budget_without_reading() {
        // room for one 40 KiB message beyond an 8 KiB allowance
        let budget = FrameBudget::new(40 * 1024);
        let (tx_a, mut a) = reader(&budget, 8 * 1024);
        let (tx_b, mut b) = reader(&budget, 8 * 1024);
        let msg = vec![b'z'; 40 * 1024];
        let frame_a = text(&msg);
        // a sends part of its message and stops: it holds a reservation
        send(&tx_a, &frame_a[..20 * 1024]);
        assert!(poll_once(&mut a).is_none());
        assert!(budget.in_use() > 30 * 1024);
        // b's whole message cannot be reserved: b reads nothing more
        let frame_b = text(&msg);
        send(&tx_b, &frame_b[..100]);
        send(&tx_b, &frame_b[100..]);
        assert!(poll_once(&mut b).is_none());
        assert_eq!(b.buf.len(), 100, "b read on without a reservation");
        // a small message on a third connection needs no reservation
        let (tx_c, mut c) = reader(&budget, 8 * 1024);
        send(&tx_c, &text(b"small"));
        assert_eq!(text_of(poll_once(&mut c).unwrap()), "small");
        // a goes away: its reservation comes back and b goes on
        drop(a);
        drop(tx_a);
        assert_eq!(text_of(b.next().await).len(), msg.len());
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn protocol_violations_break_the_connection() {
        let budget = FrameBudget::new(1 << 20);
        for bad in [
            frame(true, 0, b"x"),         // a continuation without a start
            vec![0x81, 0x01, b'x'],       // unmasked
            vec![0xC1, 0x80, 0, 0, 0, 0], // a reserved bit
            frame(true, 3, b""),          // an unknown opcode
            frame(false, 9, b""),         // a fragmented ping
            frame(true, 9, &[0; 126]),    // a ping over 125 bytes
        ] {
            let (tx, mut r) = reader(&budget, 8192);
            send(&tx, &bad);
            match r.next().await {
                Some(Inbound::Broken { code, .. }) => assert_eq!(code, CloseCode::Protocol, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let (tx, mut r) = reader(&budget, 8192);
        send(&tx, &frame(false, 1, b"a"));
        send(&tx, &frame(true, 1, b"b"));
        assert!(matches!(r.next().await, Some(Inbound::Broken { .. })));
        let (tx, mut r) = reader(&budget, 8192);
        send(&tx, &text(&[0xff, 0xfe]));
        assert_eq!(refusal(r.next().await), 31000);
        send(&tx, &frame(true, 8, &[0x03, 0xe8, b'o', b'k']));
        match r.next().await {
            Some(Inbound::Close(Some(reason))) => assert_eq!(reason.code, CloseCode::Normal),
            other => panic!("{other:?}"),
        }
    }
}
