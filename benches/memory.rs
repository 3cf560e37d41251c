//! Memory benchmark (issue: scale on one node). Run with
//!
//! ```text
//! sudo scripts/test-env.sh && cargo bench --bench memory
//! ```
//!
//! The body is `tests/api/bench/memory.rs`, which the suite also runs
//! with a tiny workload; this runs the full one (50 MB per burst) and
//! prints the markdown table for docs/benchmarks.md.

#[path = "../tests/api/support/mod.rs"]
mod support;

#[path = "../tests/api/bench/memory.rs"]
mod memory;

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // the full run is not for the test profile
    if !std::env::args().any(|a| a == "--bench") {
        println!("memory benchmark: run with `cargo bench --bench memory`");
        return;
    }
    print!("{}", memory::run(memory::Workload::FULL).await);
}
