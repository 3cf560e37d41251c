//! The peer benchmark's body (issue 29 item 6): `cargo bench --bench peer`
//! runs it with [`Workload::FULL`], the suite's smoke run
//! (`bench::peer_benchmark_measures_the_daemon_and_webssh_side_by_side_on_a_tiny_workload`)
//! with a tiny one.
//!
//! The daemon's operator terminals (`/ws/v1/terminal`) and webssh
//! ([`Webssh`], huashengdun/webssh), side by side in one run, against one
//! harness sshd, both logging in as the test user with its password and
//! checking sshd's host key; each terminal is a login shell on a PTY, the
//! same commands typed into both:
//! - keystroke echo: `stty -icanon; cat >/dev/null` typed in, so the PTY
//!   echoes each key; one character in to its echo out, at each gap of
//!   [`Workload::gaps`] (a fast typist, a slow one), the two sides'
//!   keystrokes interleaved so both meet the same machine;
//! - output: `head -c N /dev/zero | base64` then a marker, from the Enter
//!   to the marker's arrival at the client, runs interleaved;
//! - each server's RSS: idle (one terminal at its prompt), its peak over
//!   the output runs (`VmHWM`, reset first), idle again after them, and
//!   with a client that stops reading (a socket with a small receive
//!   buffer that types a large output into a new terminal and never reads
//!   again), after [`Workload::stall`].
//!
//! The daemon runs with its defaults (the 100 ms output throttle, the 10 s
//! WebSocket timeout, the heap trimmed every 10 s), webssh with its own
//! (see [`Webssh::start`] for the few options a script needs).

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::json;

use super::stats::{median, percentile};
use crate::support::daemon::{reset_peak_rss, status_kib, TestApp};
use crate::support::sshd::{SshdOptions, SshdServer};
use crate::support::webssh::{Webssh, WebsshTerminal};
use crate::support::ws::WsClient;

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Keystrokes timed at each gap, on each side.
    pub keystrokes: usize,
    /// Time between two keystrokes: one run of keystrokes per gap.
    pub gaps: [Duration; 2],
    /// Bytes of zeros `base64` encodes per output run (it prints 4/3 of
    /// that, in 76-character lines).
    pub bytes: u64,
    /// Output runs on each side, interleaved.
    pub runs: usize,
    /// Idle time after the output before the RSS is read again: past the
    /// daemon's 10 s heap trim.
    pub settle: Duration,
    /// Bytes of zeros encoded for the client that stops reading.
    pub stall_bytes: u64,
    /// How long after that client stopped reading the RSS is read.
    pub stall: Duration,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        keystrokes: 100,
        gaps: [Duration::from_millis(150), Duration::from_millis(500)],
        bytes: 50_000_000,
        runs: 3,
        settle: Duration::from_secs(12),
        stall_bytes: 150_000_000,
        stall: Duration::from_secs(15),
    };
}

/// What one server measured.
#[derive(Debug, Default)]
pub struct Side {
    /// Milliseconds from a key sent to its echo, per keystroke, one list
    /// per gap of [`Workload::gaps`].
    pub echo_ms: [Vec<f64>; 2],
    /// MB/s (10^6 B/s) of terminal output the client received, per run.
    pub output_mb_s: Vec<f64>,
    /// RSS, KiB: one terminal idle at its prompt.
    pub idle_kib: u64,
    /// Peak RSS over the output runs, KiB.
    pub output_peak_kib: u64,
    /// RSS after the output and [`Workload::settle`], KiB.
    pub after_kib: u64,
    /// RSS [`Workload::stall`] after a client stopped reading, KiB.
    pub stalled_kib: u64,
    /// Peak RSS over that time, KiB.
    pub stalled_peak_kib: u64,
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    /// webssh's version.
    pub webssh_version: String,
    pub daemon: Side,
    pub webssh: Side,
}

/// Printed by the remote shell once a typed command line ran; typed with
/// quotes inside (`pinkpage-re''ady`) so the shell's echo of the line
/// itself does not match.
const READY: &str = "pinkpage-ready";
/// Printed after each output run.
const DONE: &str = "pinkpage-done";

/// A login shell on a PTY, on either server.
enum Terminal {
    Daemon { ws: WsClient, id: String },
    Webssh(WebsshTerminal),
}

impl Terminal {
    /// A daemon terminal on server `bench`, on a new connection (one that
    /// will stop reading when `slow`).
    async fn daemon(app: &TestApp, slow: bool) -> Terminal {
        let mut ws = if slow {
            WsClient::connect_slow_reader(app, "/ws/v1/terminal").await
        } else {
            WsClient::connect(app, "/ws/v1/terminal").await
        };
        let reply = ws
            .ask(
                json!({"type": "terminal_open", "server": "bench"}),
                "terminal_opened",
            )
            .await;
        assert_eq!(reply["type"], "terminal_opened", "{reply}");
        let id = reply["terminal_id"].as_str().unwrap().to_owned();
        Terminal::Daemon { ws, id }
    }

    async fn type_in(&mut self, text: &str) {
        match self {
            Terminal::Daemon { ws, id } => {
                ws.send(json!({"type": "terminal_input", "terminal_id": id, "data": text}))
                    .await
            }
            Terminal::Webssh(t) => t.type_in(text).await,
        }
    }

    /// The next piece of output.
    async fn output(&mut self) -> Vec<u8> {
        match self {
            Terminal::Daemon { ws, id } => loop {
                let f = ws.recv().await;
                match f["type"].as_str() {
                    Some("terminal_output") if f["terminal_id"] == id.as_str() => {
                        return f["data"].as_str().unwrap().as_bytes().to_vec()
                    }
                    Some("error") | Some("terminal_closed") => panic!("{f}"),
                    _ => {}
                }
            },
            Terminal::Webssh(t) => t.output().await,
        }
    }

    /// Reads output until `needle` has arrived; the bytes read.
    async fn until(&mut self, needle: &str) -> usize {
        let needle = needle.as_bytes();
        // what is searched: the tail of the last piece and the new one
        let mut window: Vec<u8> = Vec::new();
        let mut read = 0;
        loop {
            let piece = self.output().await;
            read += piece.len();
            window.extend_from_slice(&piece);
            if window.windows(needle.len()).any(|w| w == needle) {
                return read;
            }
            let keep = window.len().min(needle.len() - 1);
            window.drain(..window.len() - keep);
        }
    }

    /// Types `line` and Enter, then waits for [`READY`] printed after it.
    async fn run_line(&mut self, line: &str) {
        self.type_in(&format!("{line}; echo pinkpage-re''ady\r")).await;
        self.until(READY).await;
    }

    /// Runs `work` while this terminal's connection is read, as a live
    /// client's is: the daemon drops a client that answers no ping for
    /// its WebSocket timeout (10 s), and a terminal idles longer than
    /// that while the other side is measured. What arrives is a prompt at
    /// most, and is dropped.
    async fn alive_while<T>(&mut self, work: impl std::future::Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                done = &mut work => return done,
                // both reads are cancel-safe: a whole message or nothing
                _ = self.idle_read() => {}
            }
        }
    }

    /// Reads one message of an idle terminal (the daemon's: pings are
    /// answered by the read); webssh sends no pings, and nothing else to
    /// an idle terminal, so its side waits. A closed connection is found
    /// when the terminal is next used.
    async fn idle_read(&mut self) {
        match self {
            Terminal::Daemon { ws, .. } => {
                let frame = ws.try_recv(Duration::from_secs(3600)).await;
                if let Some(f) = &frame {
                    assert_ne!(f["type"], "terminal_closed", "{f}");
                } else {
                    std::future::pending::<()>().await
                }
            }
            Terminal::Webssh(_) => std::future::pending().await,
        }
    }

    async fn close(self) {
        match self {
            Terminal::Daemon { mut ws, id } => {
                ws.ask(
                    json!({"type": "terminal_close", "terminal_id": id}),
                    "terminal_closed",
                )
                .await;
                ws.close().await;
            }
            Terminal::Webssh(t) => t.close().await,
        }
    }
}

/// The two servers, each with what one of its terminals is doing.
struct Pair<T> {
    daemon: T,
    webssh: T,
}

impl Pair<Terminal> {
    /// Both terminals idle (and alive) for `time`.
    async fn idle(&mut self, time: Duration) {
        let wait = self.webssh.alive_while(tokio::time::sleep(time));
        self.daemon.alive_while(wait).await
    }
}

/// Runs the benchmark: one sshd, the daemon and webssh, then echo,
/// output and a stalled client, measured on both.
pub async fn run(w: Workload) -> Report {
    let sshd = SshdServer::start(SshdOptions::default());
    let app = TestApp::builder()
        .sshd("bench", &sshd)
        // the harness logs at debug, a line per packet for russh: the log
        // would be measured, not the terminal (startup's info says the port)
        .env("RUST_LOG", "warn,pinkpage::startup=info")
        .spawn()
        .await;
    let wssh = Webssh::start(&sshd);
    let pids = Pair {
        daemon: app.pid(),
        webssh: wssh.pid(),
    };
    let rss = |pid: u32| status_kib(pid, "VmRSS:");
    let (mut daemon, mut webssh) = (Side::default(), Side::default());

    // echo, in a terminal each; idle RSS with that terminal at its prompt
    let mut echo = Pair {
        daemon: Terminal::daemon(&app, false).await,
        webssh: Terminal::Webssh(wssh.open(None).await),
    };
    echo.daemon.run_line("true").await;
    echo.webssh.run_line("true").await;
    (daemon.idle_kib, webssh.idle_kib) = (rss(pids.daemon), rss(pids.webssh));
    for t in [&mut echo.daemon, &mut echo.webssh] {
        t.type_in("stty -icanon; echo pinkpage-re''ady; cat >/dev/null\r")
            .await;
        t.until(READY).await;
    }
    echoes(&mut echo, 3, Duration::from_millis(150)).await; // warm-up
    for (i, gap) in w.gaps.into_iter().enumerate() {
        (daemon.echo_ms[i], webssh.echo_ms[i]) = echoes(&mut echo, w.keystrokes, gap).await;
    }
    echo.daemon.close().await;
    echo.webssh.close().await;

    // output, runs interleaved, in a terminal each; the peak over them
    let mut out = Pair {
        daemon: Terminal::daemon(&app, false).await,
        webssh: Terminal::Webssh(wssh.open(None).await),
    };
    out.daemon.run_line("true").await;
    out.webssh.run_line("true").await;
    reset_peak_rss(pids.daemon);
    reset_peak_rss(pids.webssh);
    for _ in 0..w.runs {
        let run = output(&mut out.daemon, w.bytes);
        daemon.output_mb_s.push(out.webssh.alive_while(run).await);
        let run = output(&mut out.webssh, w.bytes);
        webssh.output_mb_s.push(out.daemon.alive_while(run).await);
    }
    daemon.output_peak_kib = status_kib(pids.daemon, "VmHWM:");
    webssh.output_peak_kib = status_kib(pids.webssh, "VmHWM:");
    // nothing to wait for: how much each gives back with time is measured
    out.idle(w.settle).await;
    (daemon.after_kib, webssh.after_kib) = (rss(pids.daemon), rss(pids.webssh));

    // a client that stops reading: both at once, each its own server
    let mut stalled = Pair {
        daemon: Terminal::daemon(&app, true).await,
        webssh: Terminal::Webssh(wssh.open(Some(4096)).await),
    };
    stalled.daemon.run_line("true").await;
    stalled.webssh.run_line("true").await;
    reset_peak_rss(pids.daemon);
    reset_peak_rss(pids.webssh);
    let flood = format!("head -c {} /dev/zero | base64\r", w.stall_bytes);
    stalled.daemon.type_in(&flood).await;
    stalled.webssh.type_in(&flood).await;
    // the workload: how long the client has not read when the RSS is read
    out.idle(w.stall).await;
    (daemon.stalled_kib, webssh.stalled_kib) = (rss(pids.daemon), rss(pids.webssh));
    daemon.stalled_peak_kib = status_kib(pids.daemon, "VmHWM:");
    webssh.stalled_peak_kib = status_kib(pids.webssh, "VmHWM:");
    drop(stalled);
    out.daemon.close().await;
    out.webssh.close().await;

    Report {
        workload: w,
        webssh_version: wssh.version.clone(),
        daemon,
        webssh,
    }
}

/// `count` keystrokes into each echoing terminal, interleaved (so both
/// see the machine as it is at that moment), who goes first alternating,
/// a pair every `gap`: each one's round trip, ms, the daemon's first.
async fn echoes(t: &mut Pair<Terminal>, count: usize, gap: Duration) -> (Vec<f64>, Vec<f64>) {
    let (mut daemon, mut webssh) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for i in 0..count {
        let key = ((b'a' + (i % 26) as u8) as char).to_string();
        tokio::time::sleep(gap).await; // the typist's pace, not a wait for an event
        if i % 2 == 0 {
            daemon.push(echo(&mut t.daemon, &key).await);
            webssh.push(echo(&mut t.webssh, &key).await);
        } else {
            webssh.push(echo(&mut t.webssh, &key).await);
            daemon.push(echo(&mut t.daemon, &key).await);
        }
    }
    (daemon, webssh)
}

/// One key's round trip to its echo, ms.
async fn echo(t: &mut Terminal, key: &str) -> f64 {
    let start = Instant::now();
    t.type_in(key).await;
    t.until(key).await;
    start.elapsed().as_secs_f64() * 1e3
}

/// One output run: `base64` of `bytes` zeros and a marker, from the Enter
/// to the marker; MB/s of what the client received.
async fn output(t: &mut Terminal, bytes: u64) -> f64 {
    let start = Instant::now();
    t.type_in(&format!(
        "head -c {bytes} /dev/zero | base64; echo pinkpage-do''ne\r"
    ))
    .await;
    let received = t.until(DONE).await;
    let secs = start.elapsed().as_secs_f64();
    // 4 characters per 3 bytes, and the PTY's \r\n for every 76
    assert!(
        received as u64 >= bytes / 3 * 4,
        "only {received} bytes of output arrived"
    );
    received as f64 / secs / 1e6
}

/// The markdown of docs/benchmarks.md.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.workload;
        let (d, p) = (&self.daemon, &self.webssh);
        let q = |v: &[f64], at: f64| percentile(v.to_vec(), at);
        let mib = |kib: u64| kib as f64 / 1024.0;
        writeln!(
            f,
            "\n## Peer: webssh {} ({} keystrokes at each gap; {} MB of zeros through `base64`, median of {} runs; {} MB for the client that stops reading, read after {:?})\n",
            self.webssh_version,
            w.keystrokes,
            w.bytes / 1_000_000,
            w.runs,
            w.stall_bytes / 1_000_000,
            w.stall,
        )?;
        writeln!(f, "| what | Pink-Page | webssh |\n|---|---|---|")?;
        for (i, gap) in w.gaps.iter().enumerate() {
            writeln!(
                f,
                "| keystroke echo, {} ms apart, p50 / p90 | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
                gap.as_millis(),
                q(&d.echo_ms[i], 0.5),
                q(&d.echo_ms[i], 0.9),
                q(&p.echo_ms[i], 0.5),
                q(&p.echo_ms[i], 0.9),
            )?;
        }
        writeln!(
            f,
            "| output to the client, median (runs) | {:.1} MB/s ({:.1?}) | {:.1} MB/s ({:.1?}) |",
            median(d.output_mb_s.clone()),
            d.output_mb_s,
            median(p.output_mb_s.clone()),
            p.output_mb_s,
        )?;
        let rows = [
            (
                "RSS idle, one terminal at its prompt".to_owned(),
                d.idle_kib,
                p.idle_kib,
            ),
            (
                "RSS peak during the output".to_owned(),
                d.output_peak_kib,
                p.output_peak_kib,
            ),
            (
                format!("RSS after the output, {:?} idle", w.settle),
                d.after_kib,
                p.after_kib,
            ),
            (
                format!("RSS {:?} after a client stopped reading", w.stall),
                d.stalled_kib,
                p.stalled_kib,
            ),
            (
                "RSS peak while that client did not read".to_owned(),
                d.stalled_peak_kib,
                p.stalled_peak_kib,
            ),
        ];
        for (what, ours, theirs) in rows {
            writeln!(f, "| {what} | {:.1} MiB | {:.1} MiB |", mib(ours), mib(theirs))?;
        }
        Ok(())
    }
}
