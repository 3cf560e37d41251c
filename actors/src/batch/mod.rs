//! Batch command runs (BMX4): [`run::BatchRunActor`] runs commands in order
//! per server over one connection, servers in parallel, with retries.

pub mod run;
