//! Audit benchmark (issue 26: the keyed audit chain). Run with
//!
//! ```text
//! cargo bench --bench audit
//! ```
//!
//! The body is `tests/api/bench/audit.rs`, which the suite also runs with
//! a tiny workload; this runs the full one and prints the markdown table
//! for docs/benchmarks.md. It needs no sshd and no daemon: it appends to
//! database files of its own through the store's code.

#[path = "../tests/api/bench/stats.rs"]
mod stats;

#[path = "../tests/api/bench/audit.rs"]
mod audit;

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // the full run is not for the test profile
    if !std::env::args().any(|a| a == "--bench") {
        println!("audit benchmark: run with `cargo bench --bench audit`");
        return;
    }
    print!("{}", audit::run(audit::Workload::FULL));
}
