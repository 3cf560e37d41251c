//! The memory benchmark's body: `cargo bench --bench memory` runs it with
//! [`Workload::FULL`], the suite's smoke run
//! (`bench::memory_benchmark_reports_idle_burst_and_after_per_allocator_on_a_tiny_workload`)
//! with a tiny one.
//!
//! Does a daemon give back the memory a burst took? For each allocator,
//! side by side in one run against the same sshd: the daemon's resident
//! memory idle after start (one command run, so the code paths are
//! warm), its peak while a command prints `bytes` of text through a
//! WebSocket, and idle again `settle` after the client left. The
//! allocators: glibc's malloc as the daemon ships it (which trims its
//! heap when idle, `src/limits/heap.rs`), glibc without that trim
//! (`PINKPAGE_HEAP_TRIM_S=0`, the daemon before), and mimalloc and jemalloc
//! put in place of malloc with `LD_PRELOAD` (Debian's libmimalloc2.0 and
//! libjemalloc2; a missing one is reported as such).

use std::fmt;
use std::time::Duration;

use serde_json::json;

use crate::support::daemon::{ServerEntry, TestApp};
use crate::support::sshd::{SshdOptions, SshdServer, TestUser};
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
            allocator: "glibc, trimmed when idle (shipped)",
            trim: true,
            preload: None,
        },
        Way {
            allocator: "glibc, never trimmed (before)",
            trim: false,
            preload: None,
        },
        Way {
            allocator: "mimalloc (LD_PRELOAD)",
            trim: false,
            preload: Some(MIMALLOC),
        },
        Way {
            allocator: "jemalloc (LD_PRELOAD)",
            trim: false,
            preload: Some(JEMALLOC),
        },
    ];
    for Way {
        allocator,
        trim,
        preload,
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
        if let Some(lib) = preload {
            builder = builder.env("LD_PRELOAD", lib);
        }
        let app = builder.spawn().await;
        flood(&app, w.warm_bytes).await;
        tokio::time::sleep(w.settle).await;
        let fresh = app.rss_kib();
        app.reset_peak_rss();
        flood(&app, w.bytes).await;
        let peak = app.peak_rss_kib();
        tokio::time::sleep(w.settle).await;
        let after = app.rss_kib();
        sides.push(Side {
            allocator,
            figures: Some(Figures { fresh, peak, after }),
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

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.workload;
        writeln!(
            f,
            "\n## Memory after a burst ({} MB through one WebSocket; read {:?} after)\n",
            w.bytes / 1_000_000,
            w.settle
        )?;
        writeln!(
            f,
            "| allocator | idle after start | peak in the burst | idle after it | after / fresh |\n|---|---|---|---|---|"
        )?;
        let mib = |kib: u64| kib as f64 / 1024.0;
        for side in &self.sides {
            match side.figures {
                None => writeln!(f, "| {} | not installed | | | |", side.allocator)?,
                Some(x) => writeln!(
                    f,
                    "| {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.2} |",
                    side.allocator,
                    mib(x.fresh),
                    mib(x.peak),
                    mib(x.after),
                    x.after as f64 / x.fresh as f64
                )?,
            }
        }
        Ok(())
    }
}
