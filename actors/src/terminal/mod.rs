//! Interactive commands on a PTY (STUB's `ssh_command`, BMX5 scripts).
//!
//! - [`shell`]: `SshShellActor`, one command on a PTY from connect to the
//!   last byte of output.
//! - [`output`]: the output pipeline (throttle, `\r` redraws, decoding,
//!   stop phrases) and its async driver, pure and tested under paused time.

pub mod output;
pub mod shell;
