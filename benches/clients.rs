//! Idle-clients benchmark (issue: scale on one node). Run with
//!
//! ```text
//! cargo bench --bench clients
//! ```
//!
//! The body is `tests/api/bench/clients.rs`, which the suite also runs
//! with a tiny workload; this runs the full one (10,000 clients over four
//! client processes, which are this executable run again) and prints the
//! markdown table for docs/benchmarks.md.

#[path = "../tests/api/support/mod.rs"]
mod support;

#[path = "../tests/api/bench/stats.rs"]
mod stats;

#[path = "../tests/api/bench/clients.rs"]
mod clients;

#[tokio::main]
async fn main() {
    if std::env::var_os(clients::CLIENT_ENV).is_some() {
        return clients::client_process().await;
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not, and
    // the full run is not for the test profile
    if !std::env::args().any(|a| a == "--bench") {
        println!("clients benchmark: run with `cargo bench --bench clients`");
        return;
    }
    let exe = vec![std::env::current_exe().unwrap().display().to_string()];
    print!("{}", clients::run(clients::Workload::FULL, &exe).await);
}
