//! Helpers shared by the integration tests: real OpenSSH servers on
//! loopback and the test user they serve.
//!
//! Not every test module uses every helper (the health tests restart
//! servers, the SSH layer tests do not), hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod sshd;
