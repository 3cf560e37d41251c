//! Operator terminals benchmark (issue 25). Run with
//!
//! ```text
//! sudo scripts/test-env.sh && cargo bench --bench terminals
//! ```
//!
//! The body is `tests/api/bench/terminals.rs`, which the suite also runs
//! with a tiny workload; this runs the full one and prints the markdown
//! table for docs/benchmarks.md.

#[path = "../tests/api/support/mod.rs"]
mod support;

#[path = "../tests/api/bench/stats.rs"]
mod stats;

#[path = "../tests/api/bench/terminals.rs"]
mod terminals;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // the full run is not for the test profile
    if !std::env::args().any(|a| a == "--bench") {
        println!("terminals benchmark: run with `cargo bench --bench terminals`");
        return;
    }
    // PINKPAGE_BENCH_TERMINALS=50 for a smaller load (the table says so)
    let mut w = terminals::Workload::FULL;
    if let Some(n) = std::env::var("PINKPAGE_BENCH_TERMINALS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        w.terminals = n;
    }
    print!("{}", terminals::run(w).await);
}
