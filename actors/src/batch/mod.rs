//! Batch command runs (BMX4): [`run::BatchRunActor`] runs commands in order
//! per server over one connection, servers in parallel, with retries.
//!
//! Layout: [`group`] wraps each command so it dies whole, [`plan`] is the data (what a run is asked, what it reports),
//! [`link`] how a worker reaches its server and the cancel signal,
//! [`worker`] one server's commands with the retry rules, [`run`] the
//! actor that starts the workers and keeps the task contract.

pub mod group;
pub mod link;
pub mod plan;
pub mod run;
pub mod worker;

#[cfg(test)]
mod scripted;
