//! Test support: the real daemon, real OpenSSH servers on loopback and the
//! test user they serve, and a WebSocket client.
//!
//! Not every test module uses every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod daemon;
pub mod relay;
pub mod remote;
pub mod sshd;
pub mod tcp;
pub mod ws;
