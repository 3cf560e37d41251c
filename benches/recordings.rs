//! Recordings benchmark (issue 26). Run with
//!
//! ```text
//! sudo scripts/test-env.sh && cargo bench --bench recordings
//! ```
//!
//! The body is `tests/api/bench/recordings.rs`, which the suite also runs
//! with a tiny workload; this runs the full one and prints the markdown
//! table for docs/benchmarks.md.

#[path = "../tests/api/support/mod.rs"]
mod support;

#[path = "../tests/api/bench/stats.rs"]
mod stats;

#[path = "../tests/api/bench/recordings.rs"]
mod recordings;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // the full run is not for the test profile
    if !std::env::args().any(|a| a == "--bench") {
        println!("recordings benchmark: run with `cargo bench --bench recordings`");
        return;
    }
    print!("{}", recordings::run(recordings::Workload::FULL).await);
}
