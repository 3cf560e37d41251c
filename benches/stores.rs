//! Stores benchmark (issue 30: SQLite and PostgreSQL side by side). Run
//! with
//!
//! ```text
//! cargo bench --bench stores
//! ```
//!
//! The body is `tests/api/bench/stores.rs`, which the suite also runs with
//! a tiny workload; this runs the full one and prints the markdown table
//! for docs/benchmarks.md. It needs the tests' PostgreSQL cluster
//! (`scripts/test-env.sh`), no sshd and no daemon.

#[path = "../tests/api/bench/stats.rs"]
mod stats;

#[path = "../tests/api/support/mod.rs"]
mod support;

#[path = "../tests/api/bench/stores.rs"]
mod stores;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("stores benchmark: run with `cargo bench --bench stores`");
        return;
    }
    print!("{}", stores::run(stores::Workload::FULL));
}
