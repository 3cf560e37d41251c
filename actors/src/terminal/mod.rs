//! Interactive PTYs: STUB's `ssh_command` and BMX5 scripts, and the
//! operators' own terminals.
//!
//! - [`shell`]: `SshShellActor`, one command on a PTY from connect to the
//!   last byte of output.
//! - [`operator`]: `OperatorTerminal`, an operator's own shell that
//!   outlives its connection (detach and attach by offset, shares, idle).
//! - [`messages`]: what an `OperatorTerminal` is opened with, takes and
//!   sends.
//! - [`book`]: `TerminalBook`, every operator terminal, their shares and
//!   the limits on how many there are.
//! - [`seat`]: a terminal's place in the book and its live numbers (a
//!   leaf both of the above use).
//! - `channel`: the input queue and the output data both PTY actors use.
//! - [`idle`]: when an idle terminal is warned and closed.
//! - [`output`]: the output pipeline (throttle, `\r` redraws, decoding,
//!   stop phrases) and its async driver, pure and tested under paused time.

pub mod book;
mod channel;
pub mod idle;
pub mod messages;
pub mod operator;
pub mod output;
pub mod seat;
pub mod shell;
