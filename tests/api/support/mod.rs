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
//! - [`webssh`]: the peer the benchmarks measure the daemon against.
//!
//! Not every test module uses every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

/// Defines a test that runs once per command mode, as two tests
/// `<name>::exec` and `<name>::shell`, so both modes pass the same
/// end-to-end tests: `both_modes! { async fn name(mode) { ... } }`, the
/// body seeing `mode: Mode` and the enclosing module's items.
#[macro_export]
macro_rules! both_modes {
    ($(#[$meta:meta])* async fn $name:ident($mode:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::support::fixtures::Mode;

            async fn run($mode: Mode) $body

            #[tokio::test]
            async fn exec() {
                run(Mode::Exec).await
            }

            #[tokio::test]
            async fn shell() {
                run(Mode::Shell).await
            }
        }
    };
}

pub mod daemon;
pub mod fixtures;
pub mod poll;
pub mod postgres;
pub mod relay;
pub mod remote;
pub mod sshd;
pub mod tcp;
pub mod term;
pub mod tmpfs;
pub mod webssh;
pub mod ws;
