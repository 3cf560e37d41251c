//! Test support: the real daemon and real sshd servers.
//!
//! Each test binary module uses a subset of these helpers.
#![allow(dead_code)]

pub mod daemon;
pub mod tcp;
