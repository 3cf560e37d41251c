//! Terminal benchmark (issue: STUB). Run with
//!
//! ```text
//! sudo scripts/test-env.sh && cargo bench --bench terminal
//! ```
//!
//! The body is `tests/api/bench/terminal.rs`, which the suite also runs
//! with a tiny workload; this runs the full one and prints the markdown
//! table for docs/benchmarks.md.

#[path = "../tests/api/support/mod.rs"]
mod support;

#[path = "../tests/api/bench/stats.rs"]
mod stats;

#[path = "../tests/api/bench/terminal.rs"]
mod terminal;

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // the full run is not for the test profile
    if !std::env::args().any(|a| a == "--bench") {
        println!("terminal benchmark: run with `cargo bench --bench terminal`");
        return;
    }
    print!("{}", terminal::run(terminal::Workload::FULL).await);
}
