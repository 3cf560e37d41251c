//! Workflow runs on the daemon's side: from a caller's request to a
//! running `WorkflowRunActor`, and from its notices to records and to the
//! events its watchers are told.
//!
//! - [`prepare`]: looks the workflow up (23002), binds the parameters
//!   (10001) and checks every server against the caller's scope (10003):
//!   all before anything runs; `workflow_plan` stops here.
//! - [`registry`]: the runs in flight and the decisions about them (who may
//!   confirm, cancel or watch; where each stands).
//! - [`history`]: a run's history rows and audit rows, from its notices.
//! - [`events`]: the typed events watchers are told; each front door
//!   renders them (`ws::stub` as frames).
//! - [`feed`]: one watcher's ordered, bounded queue of events.
//! - [`hub`]: `WorkflowHub`, the one actor that starts runs (taking the
//!   session lock for a caller who does not hold it), keeps the runs in
//!   flight and turns their notices into records and events.
//!
//! Runs are not tied to a connection: a run that took the lock itself goes
//! on when the client that started it disconnects, and any connection of
//! the same user (or an administrator), or REST, may confirm, cancel or
//! watch it. A run started by a connection that already held the lock
//! works under that connection's lock instead, as its task: ending the
//! session or disconnecting cancels it, as it would a command.

pub mod events;
pub mod feed;
pub mod history;
pub mod hub;
pub mod prepare;
pub mod registry;

pub use hub::WorkflowHub;
pub use prepare::{prepare, Prepared};
