//! Test support: the real daemon, real OpenSSH servers on loopback and the
//! test user they serve, and a WebSocket client.
//!
//! - [`fixtures`]: where tests start: `app_with_server`, `with_servers`
//!   and the one temporary-directory fixture, `TempTree`.
//! - [`poll`]: `eventually`, the one bounded wait for state that has no
//!   event (pgrep, audit rows, files, REST status).
//! - [`remote`]: processes on the harness servers (`RemoteProcess`: seen
//!   running first, then ended).
//! - [`daemon`], [`sshd`], [`tcp`], [`ws`]: the parts themselves.
//!
//! Not every test module uses every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod daemon;
pub mod fixtures;
pub mod poll;
pub mod relay;
pub mod remote;
pub mod sshd;
pub mod tcp;
pub mod tmpfs;
pub mod ws;
