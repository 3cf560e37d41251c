//! Health benchmark (issue: scale on one node). Run with
//!
//! ```text
//! cargo bench --bench health
//! ```
//!
//! The body is `tests/api/bench/health.rs`, which the suite also runs
//! with a tiny workload; this runs the full one (1,000 servers on
//! loopback) and prints the markdown table for docs/benchmarks.md.

#[path = "../tests/api/support/mod.rs"]
mod support;

#[path = "../tests/api/bench/stats.rs"]
mod stats;

#[path = "../tests/api/bench/health.rs"]
mod health;

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // the full run is not for the test profile
    if !std::env::args().any(|a| a == "--bench") {
        println!("health benchmark: run with `cargo bench --bench health`");
        return;
    }
    print!("{}", health::run(health::Workload::FULL).await);
}
