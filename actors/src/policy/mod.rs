//! Command policy: rules that allow a command, refuse it, or hold it until
//! a second person approves it.
//!
//! - [`rules`]: a rule (what it matches, where it applies, what it does),
//!   the ordered [`rules::CommandPolicy`] and its verdict on one command.
//! - [`words`]: how a command is cut into shell words for a `words` rule.
//! - [`line`]: the line an operator types at an interactive prompt, taken
//!   from the keystrokes as they pass (echo is never held back), and what
//!   is sent to the shell instead of the Enter of a refused line.
//!
//! Pure logic: no actors, no I/O. The daemon holds the review queue (who
//! may approve, the timeout, the audit rows); the engine only waits on a
//! [`Gate`] it is given before a held command starts.

pub mod line;
pub mod rules;
pub mod words;

use futures_util::future::BoxFuture;

use crate::error::AppError;

/// What a held command waits on before it starts: `Ok` once approved, the
/// refusal (55001 rejected, 55002 timed out, ...) otherwise. Dropping it
/// withdraws the request (the work was cancelled while it waited).
pub type Gate = BoxFuture<'static, Result<(), AppError>>;

/// Asked before a command runs from a string where the engine starts it
/// itself (each BMX4 command at its turn, a workflow's command step when
/// it starts). Made by the daemon for one caller: it judges with the
/// caller's role, records refusals and holds, and tells the caller.
pub trait CommandCheck: Send + Sync {
    /// `Err`: refused (nothing runs). `Ok(None)`: runs now.
    /// `Ok(Some(gate))`: held; runs once the gate opens.
    fn check(&self, server: &crate::server::ServerSpec, command: &str) -> Result<Option<Gate>, AppError>;
}

/// A [`CommandCheck`], or none (everything runs): what plans carry.
#[derive(Clone, Default)]
pub struct Checks(Option<std::sync::Arc<dyn CommandCheck>>);

impl Checks {
    /// Every command asked of `check`.
    pub fn new(check: std::sync::Arc<dyn CommandCheck>) -> Checks {
        Checks(Some(check))
    }

    /// No check: everything runs.
    pub fn none() -> Checks {
        Checks(None)
    }

    /// See [`CommandCheck::check`].
    pub fn check(&self, server: &crate::server::ServerSpec, command: &str) -> Result<Option<Gate>, AppError> {
        match &self.0 {
            Some(check) => check.check(server, command),
            None => Ok(None),
        }
    }
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Checks(some)"
        } else {
            "Checks(none)"
        })
    }
}
