//! Peer benchmark (issue 29 item 6): the daemon's terminals beside
//! huashengdun/webssh. Run with
//!
//! ```text
//! sudo scripts/test-env.sh && cargo bench --bench peer
//! ```
//!
//! The body is `tests/api/bench/peer.rs`, which the suite also runs with
//! a tiny workload; this runs the full one and prints the markdown table
//! for docs/benchmarks.md.

#[path = "../tests/api/support/mod.rs"]
mod support;

#[path = "../tests/api/bench/stats.rs"]
mod stats;

#[path = "../tests/api/bench/peer.rs"]
mod peer;

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // the full run is not for the test profile
    if !std::env::args().any(|a| a == "--bench") {
        println!("peer benchmark: run with `cargo bench --bench peer`");
        return;
    }
    print!("{}", peer::run(peer::Workload::FULL).await);
}
