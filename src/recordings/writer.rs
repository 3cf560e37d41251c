//! One recording being written: [`CastRecorder`], the handle the engine
//! feeds (`PtyRecorder`), and the task that turns its events into
//! asciicast lines in the file.
//!
//! Who owns what: the handle is shared by the PTY's actor and its output
//! pump; it only puts events on a bounded channel ([`SLOTS`] events, each
//! at most one SSH data message, ~32 KiB) and never touches the file. The
//! writer task alone owns the file, the decoder and the counts; it takes
//! what the channel holds and hands it, with the file and the decoder, to
//! the recordings' writing thread ([`WritePool`], at a low priority), which
//! formats it and writes it in one `write_all`, so the event loop neither
//! waits for the disk nor spends its time escaping output into JSON. While it
//! writes, the channel fills; output then waits for room, and the PTY's
//! channel is not read until the disk has caught up: backpressure, never
//! loss, and memory bounded by the channel. Typed input and resizes never
//! wait (an actor handler sends them): when the channel is full they are
//! counted as lost instead (they are a few bytes, and only while the disk
//! is behind).
//!
//! Each batch is written whole before the next is taken, so a daemon
//! killed at any moment leaves the file whole up to its last full line
//! (`cast::whole_length`), which is what the file is served up to.
//!
//! When a write fails (a full or failing disk) the recording stops: the
//! writer reports it once ([`Reports::failed`]: the index, the audit row
//! and the owner's `recording_stopped`), marks the handle failed so output
//! is taken at once, and drains the channel until the end.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use pinkpage_actors::pty::record::{PtyRecorder, RecordingEnd};
use tokio::sync::mpsc;

use super::cast::{push_event, Kind};

/// Spawns `task` where it outlives the HTTP workers: on the system's
/// arbiter (a graceful shutdown stops the workers, and a recording's writer
/// must still finish after its PTY closed), or on the current runtime
/// outside an actix system (unit tests).
pub(super) fn spawn_lasting(task: impl std::future::Future<Output = ()> + Send + 'static) {
    match actix::System::try_current() {
        Some(system) => {
            system.arbiter().spawn(task);
        }
        None => {
            tokio::spawn(task);
        }
    }
}

/// Events the channel holds before output waits.
pub const SLOTS: usize = 32;

/// Events a batch takes from the channel at most.
const BATCH: usize = 256;

/// What the writer reports, and to whom: the recordings service.
pub trait Reports: Send + Sync + 'static {
    /// Writing failed with `error`; `bytes` were written before.
    fn failed(&self, error: String, bytes: u64);
    /// The recording ended whole: its PTY's end, and the file's size.
    fn ended(&self, end: RecordingEnd, bytes: u64);
}

enum Event {
    Output(f64, Bytes),
    Input(f64, String),
    Resize(f64, u32, u32),
    End(RecordingEnd),
}

/// The handle of one recording. See the module docs.
pub struct CastRecorder {
    tx: mpsc::Sender<Event>,
    started: Instant,
    keep_input: bool,
    /// Set by the writer once writing failed: output is taken at once.
    failed: Arc<AtomicBool>,
    /// Input and resize events that found the channel full.
    lost: Arc<AtomicU64>,
    /// The end, for a writer whose channel was full when it came.
    end: Arc<Mutex<Option<RecordingEnd>>>,
}

impl CastRecorder {
    fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn offer(&self, event: Event) {
        if self.tx.try_send(event).is_err() && !self.failed.load(Ordering::Relaxed) {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl PtyRecorder for CastRecorder {
    fn output(&self, bytes: Bytes) -> BoxFuture<'static, ()> {
        if self.failed.load(Ordering::Relaxed) {
            return Box::pin(std::future::ready(()));
        }
        match self.tx.try_send(Event::Output(self.seconds(), bytes)) {
            Err(mpsc::error::TrySendError::Full(event)) => {
                let tx = self.tx.clone();
                Box::pin(async move {
                    let _ = tx.send(event).await;
                })
            }
            _ => Box::pin(std::future::ready(())),
        }
    }

    fn input(&self, text: &str) {
        if self.keep_input {
            self.offer(Event::Input(self.seconds(), text.to_owned()));
        }
    }

    fn resize(&self, cols: u32, rows: u32) {
        self.offer(Event::Resize(self.seconds(), cols, rows));
    }

    fn end(&self, end: RecordingEnd) {
        *self.end.lock().unwrap_or_else(|p| p.into_inner()) = Some(end.clone());
        if let Err(mpsc::error::TrySendError::Full(event)) = self.tx.try_send(Event::End(end)) {
            // the writer is behind: the end waits its turn (once per
            // recording)
            let tx = self.tx.clone();
            spawn_lasting(async move {
                let _ = tx.send(event).await;
            });
        }
    }
}

/// The thread that formats and writes every recording's batches: one,
/// at a low scheduling priority (nice 10). Recording is background work:
/// on a busy machine an operator's keystroke echo, the daemon's event
/// loops and the other programs come first, and a recording that falls
/// behind slows its own PTY (backpressure), never anyone else's. Measured:
/// writing at normal priority on the 2-core machine, a keystroke's echo in
/// a second terminal while 50 MB printed in the first took up to 183 ms in
/// the console test (budget 100 ms).
#[derive(Clone)]
pub struct WritePool {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

/// The writing thread's niceness.
const NICE: libc::c_int = 10;

impl WritePool {
    /// Starts the thread.
    pub fn start() -> WritePool {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let spawned = std::thread::Builder::new()
            .name("pp-recordings".into())
            .spawn(move || {
                // SAFETY: plain system calls on this thread's own id.
                let lowered = unsafe {
                    let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                    libc::setpriority(libc::PRIO_PROCESS, tid, NICE)
                };
                if lowered != 0 {
                    log::warn!(
                        "recordings: cannot lower the writing thread's priority; it runs at the daemon's"
                    );
                }
                while let Ok(job) = queue.recv() {
                    job();
                }
            });
        if let Err(e) = spawned {
            log::error!(error = e.to_string(); "recordings: cannot start the writing thread");
        }
        WritePool { jobs }
    }

    /// Runs `work` on the thread; `None` if the thread is gone.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            let _ = tx.send(work());
        });
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }
}

/// Starts the writer of `file` (its header written, `written` bytes long)
/// and returns the handle that feeds it.
pub fn start<W: Write + Send + 'static>(
    file: W,
    written: u64,
    encoding: &'static encoding_rs::Encoding,
    keep_input: bool,
    pool: WritePool,
    reports: Arc<dyn Reports>,
) -> CastRecorder {
    let (tx, rx) = mpsc::channel(SLOTS);
    let recorder = CastRecorder {
        tx,
        started: Instant::now(),
        keep_input,
        failed: Arc::default(),
        lost: Arc::default(),
        end: Arc::default(),
    };
    let writer = Writer {
        pool,
        sink: Some(Sink {
            file,
            decoder: encoding.new_decoder_without_bom_handling(),
            last: 0.0,
        }),
        written,
        failed: recorder.failed.clone(),
        end_slot: recorder.end.clone(),
        lost: recorder.lost.clone(),
        reports,
    };
    spawn_lasting(writer.run(rx));
    recorder
}

/// The writer task's state. See the module docs.
struct Writer<W> {
    /// Where batches are formatted and written.
    pool: WritePool,
    /// The file and what formats into it; `None` while a batch is on a
    /// blocking thread, or once writing failed.
    sink: Option<Sink<W>>,
    /// Bytes in the file so far (whole batches).
    written: u64,
    failed: Arc<AtomicBool>,
    end_slot: Arc<Mutex<Option<RecordingEnd>>>,
    lost: Arc<AtomicU64>,
    reports: Arc<dyn Reports>,
}

/// What turns events into lines in the file: moved to a blocking thread
/// with each batch (decoding and JSON escaping are the work, and they stay
/// off the event loop the PTY's actors run on) and back.
struct Sink<W> {
    file: W,
    decoder: encoding_rs::Decoder,
    /// The last event's time: times never go back (an input offered while
    /// an earlier output waited for room may arrive first).
    last: f64,
}

impl<W: Write> Sink<W> {
    /// Formats `batch` and writes it whole: the bytes written, and the end
    /// when the batch held it.
    fn write(&mut self, batch: Vec<Event>) -> std::io::Result<(u64, Option<RecordingEnd>)> {
        let mut out = Vec::new();
        let mut end = None;
        for event in batch {
            match event {
                Event::Output(t, bytes) => {
                    let text = self.decode(&bytes, false);
                    self.push(&mut out, t, Kind::Output, &text);
                }
                Event::Input(t, text) => self.push(&mut out, t, Kind::Input, &text),
                Event::Resize(t, cols, rows) => {
                    self.push(&mut out, t, Kind::Resize, &format!("{cols}x{rows}"))
                }
                Event::End(e) => {
                    // an incomplete character at the very end
                    let text = self.decode(&[], true);
                    let t = self.last;
                    self.push(&mut out, t, Kind::Output, &text);
                    end = Some(e);
                    break;
                }
            }
        }
        if !out.is_empty() {
            self.file.write_all(&out)?;
        }
        Ok((out.len() as u64, end))
    }

    fn decode(&mut self, bytes: &[u8], last: bool) -> String {
        let mut text = String::with_capacity(
            self.decoder
                .max_utf8_buffer_length(bytes.len())
                .unwrap_or(bytes.len() * 3 + 16),
        );
        let _ = self.decoder.decode_to_string(bytes, &mut text, last);
        text
    }

    fn push(&mut self, out: &mut Vec<u8>, t: f64, kind: Kind, text: &str) {
        if text.is_empty() {
            return;
        }
        self.last = self.last.max(t);
        push_event(out, self.last, kind, text);
    }
}

impl<W: Write + Send + 'static> Writer<W> {
    async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        let mut end = None;
        let mut batch = Vec::with_capacity(BATCH);
        while end.is_none() {
            if rx.recv_many(&mut batch, BATCH).await == 0 {
                break; // every handle dropped without an end
            }
            let taken = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            match self.sink.take() {
                Some(sink) => end = self.write(sink, taken).await,
                // failed: drained until the end
                None => {
                    end = taken.into_iter().find_map(|e| match e {
                        Event::End(e) => Some(e),
                        _ => None,
                    })
                }
            }
        }
        drop(rx);
        self.sink.take();
        let end = end
            .or_else(|| self.end_slot.lock().unwrap_or_else(|p| p.into_inner()).take())
            .unwrap_or(RecordingEnd {
                reason: "ended".to_owned(),
                exit_status: None,
            });
        let lost = self.lost.load(Ordering::Relaxed);
        if lost > 0 {
            log::warn!(events = lost; "recording: input or resize events lost while the disk was behind");
        }
        if !self.failed.load(Ordering::Relaxed) {
            self.reports.ended(end, self.written);
        }
    }

    /// Formats and writes `batch` on the writing thread; on failure,
    /// reports it and stops writing. The end, when the batch held it.
    async fn write(&mut self, mut sink: Sink<W>, batch: Vec<Event>) -> Option<RecordingEnd> {
        let done = self
            .pool
            .run(move || {
                let result = sink.write(batch);
                (sink, result)
            })
            .await;
        match done {
            Some((sink, Ok((n, end)))) => {
                self.written += n;
                self.sink = Some(sink);
                end
            }
            Some((_, Err(e))) => {
                self.fail(e.to_string());
                None
            }
            None => {
                self.fail("the writing thread is gone".to_owned());
                None
            }
        }
    }

    fn fail(&mut self, error: String) {
        self.failed.store(true, Ordering::Relaxed);
        self.sink = None;
        self.reports.failed(error, self.written);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc as std_mpsc;

    use futures_util::FutureExt;

    use super::*;

    /// What the writer reported.
    #[derive(Default)]
    struct Told(Mutex<Vec<String>>);

    impl Reports for Told {
        fn failed(&self, error: String, bytes: u64) {
            self.0.lock().unwrap().push(format!("failed {bytes}: {error}"));
        }
        fn ended(&self, end: RecordingEnd, bytes: u64) {
            self.0
                .lock()
                .unwrap()
                .push(format!("ended {bytes}: {}", end.reason));
        }
    }

    /// A disk that takes one write per permit, or fails every write.
    struct Disk {
        taken: Arc<Mutex<Vec<u8>>>,
        permits: Option<std_mpsc::Receiver<()>>,
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            match &self.permits {
                Some(permits) => {
                    let _ = permits.recv();
                    self.taken.lock().unwrap().extend_from_slice(buf);
                    Ok(buf.len())
                }
                None => Err(std::io::Error::from(std::io::ErrorKind::StorageFull)),
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn end() -> RecordingEnd {
        RecordingEnd {
            reason: "exit".into(),
            exit_status: Some(0),
        }
    }

    /// What the writer reported, once its task ended (it holds the only
    /// other reference to `told`, dropped as the task ends).
    async fn until_done(told: &Arc<Told>) -> Vec<String> {
        while Arc::strong_count(told) > 1 {
            tokio::task::yield_now().await;
        }
        told.0.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_slow_disk_makes_output_wait_and_loses_nothing() {
        let taken = Arc::new(Mutex::new(Vec::new()));
        let (permit, permits) = std_mpsc::channel();
        let told = Arc::new(Told::default());
        let disk = Disk {
            taken: taken.clone(),
            permits: Some(permits),
        };
        let rec = start(
            disk,
            0,
            encoding_rs::UTF_8,
            false,
            WritePool::start(),
            told.clone(),
        );
        // the first event is taken into a write the disk holds up; the
        // channel then takes SLOTS more, and the next must wait
        let mut waited = None;
        for n in 0..SLOTS + 10 {
            let mut sent = rec.output(Bytes::from(format!("line-{n}\n")));
            tokio::task::yield_now().await;
            if (&mut sent).now_or_never().is_none() {
                waited = Some((n, sent));
                break;
            }
        }
        let (n, pending) = waited.expect("output waits once the buffer is full");
        assert!(n > SLOTS / 2 && n <= SLOTS + 2, "waited at event {n}");
        // the disk catches up: the waiting output goes in, then the rest
        for _ in 0..1000 {
            let _ = permit.send(());
        }
        pending.await;
        for m in n + 1..n + 5 {
            rec.output(Bytes::from(format!("line-{m}\n"))).await;
        }
        rec.end(end());
        drop(rec);
        let said = until_done(&told).await;
        let text = String::from_utf8(taken.lock().unwrap().clone()).unwrap();
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()[2]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        let expected: Vec<String> = (0..n + 5).map(|i| format!("line-{i}\n")).collect();
        assert_eq!(lines.concat(), expected.concat(), "every byte, in order");
        assert_eq!(said, [format!("ended {}: exit", text.len())]);
    }

    #[tokio::test]
    async fn a_failed_write_is_reported_once_and_output_no_longer_waits() {
        let told = Arc::new(Told::default());
        let disk = Disk {
            taken: Arc::default(),
            permits: None,
        };
        let rec = start(
            disk,
            120,
            encoding_rs::UTF_8,
            false,
            WritePool::start(),
            told.clone(),
        );
        rec.output(Bytes::from_static(b"first")).await;
        while told.0.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        // a failed recording takes everything at once, however much
        for _ in 0..SLOTS * 4 {
            assert!(rec.output(Bytes::from_static(b"more")).now_or_never().is_some());
        }
        rec.end(end());
        drop(rec);
        let said = until_done(&told).await;
        assert_eq!(said.len(), 1, "reported once, and no end after it: {said:?}");
        assert!(said[0].starts_with("failed 120: "), "{said:?}");
    }

    #[tokio::test]
    async fn a_character_split_between_reads_is_recorded_whole_in_the_servers_encoding() {
        let taken = Arc::new(Mutex::new(Vec::new()));
        let (permit, permits) = std_mpsc::channel();
        for _ in 0..100 {
            permit.send(()).unwrap();
        }
        let told = Arc::new(Told::default());
        let disk = Disk {
            taken: taken.clone(),
            permits: Some(permits),
        };
        let rec = start(
            disk,
            0,
            encoding_rs::EUC_KR,
            true,
            WritePool::start(),
            told.clone(),
        );
        // "한" in EUC-KR is B0 A1... split between two reads
        let (encoded, _, _) = encoding_rs::EUC_KR.encode("한글");
        rec.output(Bytes::copy_from_slice(&encoded[..1])).await;
        rec.output(Bytes::copy_from_slice(&encoded[1..])).await;
        rec.input("typed");
        rec.resize(100, 30);
        rec.end(end());
        drop(rec);
        until_done(&told).await;
        let text = String::from_utf8(taken.lock().unwrap().clone()).unwrap();
        let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let output: String = events
            .iter()
            .filter(|e| e[1] == "o")
            .map(|e| e[2].as_str().unwrap())
            .collect();
        assert_eq!(output, "한글");
        assert!(events.iter().any(|e| e[1] == "i" && e[2] == "typed"));
        assert!(events.iter().any(|e| e[1] == "r" && e[2] == "100x30"));
    }
}
