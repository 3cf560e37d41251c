//! The memory benchmark's body: `cargo bench --bench memory` runs it with
//! [`Workload::FULL`], the suite's smoke run
//! (`bench::memory_benchmark_reports_idle_burst_and_after_per_allocator_on_a_tiny_workload`)
//! with a tiny one.
//!
//! Does a daemon give back the memory a burst took? For each allocator,
//! side by side in one run against the same sshd: the daemon's resident
//! memory idle after start (one command run, so the code paths are
//! warm), its peak while a command prints `bytes` of text through a
//! WebSocket (STUB's `ssh_command`) and then as much in an operator
//! terminal, and idle again `settle` after the clients left and the
//! terminal closed. The
//! allocators: glibc's malloc as the daemon ships it (one arena a core,
//! its heap trimmed every 10 s, `src/limits/heap.rs`), glibc as it was
//! before (glibc's default eight arenas a core on this 2-core machine,
//! `MALLOC_ARENA_MAX=16`, never trimmed, `PINKPAGE_HEAP_TRIM_S=0`), the
//! same trimmed, and mimalloc and jemalloc put in place of malloc with
//! `LD_PRELOAD` (Debian's libmimalloc2.0 and libjemalloc2; a missing one
//! is reported as such).

use std::fmt;
use std::time::Duration;

use serde_json::json;

use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::sshd::{SshdOptions, SshdServer, TestUser};
use crate::support::term::Terms;
use crate::support::ws::WsClient;

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Bytes the burst prints.
    pub bytes: u64,
    /// How long the daemon is left idle before its memory is read.
    pub settle: Duration,
    /// Bytes the warm-up command prints.
    pub warm_bytes: u64,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        bytes: 50_000_000,
        settle: Duration::from_secs(15),
        warm_bytes: 1000,
    };
}

/// One allocator's figures, KiB.
#[derive(Debug, Clone)]
pub struct Side {
    /// What ran.
    pub allocator: &'static str,
    /// `None` when its library is not installed.
    pub figures: Option<Figures>,
}

/// Resident memory of one daemon, KiB.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub fresh: u64,
    pub peak: u64,
    pub after: u64,
    /// glibc's heap idle after start, in use and free, bytes.
    pub heap_fresh: Option<(u64, u64)>,
    /// glibc's heap after, in use and free, bytes (from `/metrics`;
    /// `None` under another allocator, whose heap glibc does not see).
    pub heap: Option<(u64, u64)>,
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    pub sides: Vec<Side>,
}

/// One daemon's allocator: its name in the table, whether the daemon's
/// own trim runs, and the library put in place of malloc.
struct Way {
    allocator: &'static str,
    trim: bool,
    preload: Option<&'static str>,
    /// glibc's `MALLOC_ARENA_MAX`, when set.
    arenas: Option<&'static str>,
}

const MIMALLOC: &str = "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2";
const JEMALLOC: &str = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";

/// Runs the benchmark: one daemon per allocator, one after another.
pub async fn run(w: Workload) -> Report {
    let user = TestUser::get();
    let sshd = SshdServer::start(SshdOptions::default());
    let mut sides = Vec::new();
    let ways = [
        Way {
            allocator: "glibc, one arena a core, trimmed every 10 s (shipped)",
            trim: true,
            preload: None,
            arenas: None,
        },
        Way {
            allocator: "glibc, one arena a core, never trimmed",
            trim: false,
            preload: None,
            arenas: None,
        },
        Way {
            allocator: "glibc, 8 arenas a core, never trimmed (before)",
            trim: false,
            preload: None,
            arenas: Some("16"),
        },
        Way {
            allocator: "glibc, 8 arenas a core, trimmed every 10 s",
            trim: true,
            preload: None,
            arenas: Some("16"),
        },
        Way {
            allocator: "mimalloc (LD_PRELOAD)",
            trim: false,
            preload: Some(MIMALLOC),
            arenas: None,
        },
        Way {
            allocator: "jemalloc (LD_PRELOAD)",
            trim: false,
            preload: Some(JEMALLOC),
            arenas: None,
        },
    ];
    for Way {
        allocator,
        trim,
        preload,
        arenas,
    } in ways
    {
        if preload.is_some_and(|lib| !std::path::Path::new(lib).exists()) {
            sides.push(Side {
                allocator,
                figures: None,
            });
            continue;
        }
        let mut builder = TestApp::builder()
            .server(ServerEntry {
                name: "bench".into(),
                host: "127.0.0.1".into(),
                port: sshd.port(),
                username: user.name.clone(),
                password: None,
                key_file: Some(user.key_path.clone()),
                extra: String::new(),
            })
            .known_hosts(&sshd.known_hosts_line())
            .env("RUST_LOG", "warn,pinkpage::startup=info");
        if !trim {
            builder = builder.env("PINKPAGE_HEAP_TRIM_S", "0");
        }
        if let Some(n) = arenas {
            builder = builder.env("MALLOC_ARENA_MAX", n);
        }
        if let Some(lib) = preload {
            builder = builder.env("LD_PRELOAD", lib);
        }
        let app = builder.spawn().await;
        flood(&app, w.warm_bytes).await;
        through_a_terminal(&app, w.warm_bytes).await;
        tokio::time::sleep(w.settle).await;
        let fresh = app.rss_kib();
        let heap_fresh = if preload.is_none() {
            heap_figures(&app).await
        } else {
            None
        };
        app.reset_peak_rss();
        flood(&app, w.bytes).await;
        through_a_terminal(&app, w.bytes).await;
        let peak = app.peak_rss_kib();
        tokio::time::sleep(w.settle).await;
        let after = app.rss_kib();
        // under another allocator glibc's counters describe nothing
        let heap = if preload.is_none() {
            heap_figures(&app).await
        } else {
            None
        };
        sides.push(Side {
            allocator,
            figures: Some(Figures {
                fresh,
                peak,
                after,
                heap_fresh,
                heap,
            }),
        });
    }
    Report { workload: w, sides }
}

/// Prints `bytes` of text through a WebSocket and reads all of it.
async fn flood(app: &TestApp, bytes: u64) {
    let mut c = WsClient::stub(app).await;
    c.start_session().await;
    let command = format!("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {bytes}");
    c.send(json!({"type": "ssh_command", "server": "bench", "command": command}))
        .await;
    let mut chars = 0u64;
    loop {
        let f = c.recv().await;
        match f["type"].as_str() {
            Some("ssh_output") => chars += f["data"].as_str().unwrap().len() as u64,
            Some("ssh_command_complete") => break,
            Some("error") => panic!("{f}"),
            _ => {}
        }
    }
    assert!(chars >= bytes, "only {chars} of {bytes} bytes arrived");
    c.close().await;
}

/// The daemon's own view of glibc's heap, from `/metrics`.
async fn heap_figures(app: &TestApp) -> Option<(u64, u64)> {
    Some((
        app.metric("pinkpage_heap_in_use_bytes").await? as u64,
        app.metric("pinkpage_heap_free_bytes").await? as u64,
    ))
}

/// Prints `bytes` of text in an operator terminal (whose scrollback ring
/// keeps the last of it), reads all of it, and closes the terminal.
async fn through_a_terminal(app: &TestApp, bytes: u64) {
    let mut t = Terms::admin(app).await;
    let (id, _) = t.open("bench").await;
    let command = format!(
        "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {bytes}; echo; echo flood-done-$((6*7))\n"
    );
    t.type_in(&id, &command).await;
    t.output(&id, "flood-done-42").await;
    let closed = t
        .ask(
            json!({"type": "terminal_close", "terminal_id": id}),
            "terminal_closed",
        )
        .await;
    assert_eq!(closed["type"], "terminal_closed", "{closed}");
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.workload;
        writeln!(
            f,
            "\n## Memory after a burst ({} MB through a STUB command, then as much through an operator terminal; read {:?} after)\n",
            w.bytes / 1_000_000,
            w.settle
        )?;
        writeln!(
            f,
            "| allocator | idle after start | peak in the burst | idle after it | after / fresh | glibc heap in use, fresh / after | glibc heap free, fresh / after |\n|---|---|---|---|---|---|---|"
        )?;
        let mib = |kib: u64| kib as f64 / 1024.0;
        for side in &self.sides {
            match side.figures {
                None => writeln!(f, "| {} | not installed | | | | | |", side.allocator)?,
                Some(x) => {
                    let (used, free) = match (x.heap_fresh, x.heap) {
                        (Some(a), Some(b)) => (
                            format!(
                                "{:.1} / {:.1} MiB",
                                a.0 as f64 / 1048576.0,
                                b.0 as f64 / 1048576.0
                            ),
                            format!(
                                "{:.1} / {:.1} MiB",
                                a.1 as f64 / 1048576.0,
                                b.1 as f64 / 1048576.0
                            ),
                        ),
                        _ => ("-".to_owned(), "-".to_owned()),
                    };
                    writeln!(
                        f,
                        "| {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.2} | {used} | {free} |",
                        side.allocator,
                        mib(x.fresh),
                        mib(x.peak),
                        mib(x.after),
                        x.after as f64 / x.fresh as f64,
                    )?
                }
            }
        }
        Ok(())
    }
}
