//! Workflow benchmark (issue: workflows). Run with
//!
//! ```text
//! sudo scripts/test-env.sh && cargo bench --bench workflows
//! ```
//!
//! The body is `tests/api/bench/workflows.rs`, which the suite also runs
//! with a tiny workload; this runs the full one and prints the markdown
//! table for docs/benchmarks.md.

#[path = "../tests/api/support/mod.rs"]
mod support;

#[path = "../tests/api/bench/stats.rs"]
mod stats;

#[path = "../tests/api/bench/workflows.rs"]
mod workflows;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // the full run is not for the test profile
    if !std::env::args().any(|a| a == "--bench") {
        println!("workflows benchmark: run with `cargo bench --bench workflows`");
        return;
    }
    print!("{}", workflows::run(workflows::Workload::FULL).await);
}
