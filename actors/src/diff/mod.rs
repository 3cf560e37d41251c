//! Comparing two servers (DIFF).
//!
//! - [`compare`]: the pure comparisons (text or binary, unified diffs,
//!   directory trees), unit-tested without a network; its types are
//!   re-exported here.
//! - [`budget`]: the bytes all running diffs may hold, daemon-wide (53001).
//! - [`remote`]: fetching both sides at once (files and trees over SFTP,
//!   commands over SSH) and handing them to [`compare`].

pub mod budget;
pub mod compare;
pub mod remote;

pub use compare::*;
