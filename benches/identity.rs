//! Identity benchmark (issue: identity and access). Run with
//!
//! ```text
//! sudo scripts/test-env.sh && cargo bench --bench identity
//! ```
//!
//! The body is `tests/api/bench/identity.rs`, which the suite also runs
//! with a tiny workload; this runs the full one and prints the markdown
//! table for docs/benchmarks.md.

#[path = "../tests/api/support/mod.rs"]
mod support;

#[path = "../tests/api/bench/stats.rs"]
mod stats;

#[path = "../tests/api/bench/identity.rs"]
mod identity;

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // the full run is not for the test profile
    if !std::env::args().any(|a| a == "--bench") {
        println!("identity benchmark: run with `cargo bench --bench identity`");
        return;
    }
    let mut w = identity::Workload::FULL;
    if let Some(n) = std::env::var("PINKPAGE_BENCH_SESSIONS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        w.sessions = n;
    }
    print!("{}", identity::run(w).await);
}
