//! Command policy benchmark (issue 27). Run with
//!
//! ```text
//! sudo scripts/test-env.sh && cargo bench --bench policy
//! ```
//!
//! The body is `tests/api/bench/policy.rs`, which the suite also runs
//! with a tiny workload; this runs the full one and prints the markdown
//! table for docs/benchmarks.md.

#[path = "../tests/api/support/mod.rs"]
mod support;

#[path = "../tests/api/bench/stats.rs"]
mod stats;

// its echo measure and terminal helpers are the terminals benchmark's
#[path = "../tests/api/bench/terminals.rs"]
#[allow(dead_code)]
mod terminals;

#[path = "../tests/api/bench/policy.rs"]
mod policy;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // the full run is not for the test profile
    if !std::env::args().any(|a| a == "--bench") {
        println!("policy benchmark: run with `cargo bench --bench policy`");
        return;
    }
    print!("{}", policy::run(policy::Workload::FULL).await);
}
