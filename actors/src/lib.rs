//! The Pink-Page engine: actors, their typed messages, SSH over russh and the
//! error catalogue. It knows nothing of HTTP or JSON framing; the daemon
//! (`pinkpage`) talks to it through typed messages and `Recipient`s.
//!
//! # Layout
//! - [`error`]: the catalogue of five-digit codes and [`error::AppError`].
//! - [`secret`]: [`secret::Secret`], a string that never prints.
//! - [`server`]: configured servers and transfers, as the engine sees them.
//! - [`ssh`]: connecting, authenticating and checking host keys with russh;
//!   exec, PTY shells and SFTP on a connected session.

pub mod error;
pub mod secret;
pub mod server;
pub mod ssh;

pub use error::{AppError, ErrorBody, ErrorCode};
pub use secret::Secret;
