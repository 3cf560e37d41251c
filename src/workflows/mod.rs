//! Workflow runs on the daemon's side: from a caller's request to a
//! running `WorkflowRunActor`, and from its notices to frames, store rows
//! and audit rows.
//!
//! - [`prepare`]: looks the workflow up (23002), binds the parameters
//!   (10001) and checks every server against the caller's scope (10003):
//!   all before anything runs; `workflow_plan` stops here.
//! - [`hub`]: `WorkflowHub`, the one actor that starts runs (taking the
//!   session lock for a caller who does not hold it), keeps the runs in
//!   flight (who may confirm or cancel them, who watches them), writes
//!   their history in order and audits every start, step, confirmation,
//!   cancel and end.
//! - [`frames`]: the wire frames of a run.
//!
//! Runs are not tied to a connection: a run that took the lock itself goes
//! on when the client that started it disconnects, and any connection of
//! the same user (or an administrator), or REST, may confirm or cancel it.
//! A run started by a connection that already held the lock works under
//! that connection's lock instead, as its task: ending the session or
//! disconnecting cancels it, as it would a command.

pub mod feed;
pub mod frames;
pub mod hub;
pub mod prepare;

pub use hub::WorkflowHub;
pub use prepare::{prepare, Prepared};
