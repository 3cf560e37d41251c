//! The Pink-Page engine: actors, their typed messages, SSH over russh and the
//! error catalogue. It knows nothing of HTTP or JSON framing; the daemon
//! (`pinkpage`) talks to it through typed messages and `Recipient`s.
//!
//! # Layout
//! - [`error`]: the catalogue of five-digit codes and [`error::AppError`].
//! - [`secret`]: [`secret::Secret`], a string that never prints.
//! - [`server`]: configured servers and transfers, as the engine sees them.
//! - [`ids`]: connection ids.
//! - [`ssh`]: connecting, authenticating and checking host keys with russh;
//!   exec, PTY shells and SFTP on a connected session.
//! - [`broadcast`]: `BroadcastActor`, the registry of every WebSocket
//!   connection and the fan-out of `session_status` / `server_health`.
//! - [`session_lock`]: `SessionLockActor`, one owner at a time.
//! - [`ssh_shell`]: `SshShellActor`, one interactive command on a PTY.
//! - [`transfer`]: `TransferActor`, a named server-to-server copy relayed
//!   over SFTP (temporary name, verify, rename).
//! - [`health`]: the per-server health status clients see.
//! - [`output`]: the terminal output pipeline (throttle, redraws, decoding,
//!   stop phrases) and its async driver.

pub mod broadcast;
pub mod error;
pub mod health;
pub mod ids;
pub mod output;
pub mod secret;
pub mod server;
pub mod session_lock;
pub mod ssh;
pub mod ssh_shell;
pub mod transfer;

pub use error::{AppError, ErrorBody, ErrorCode};
pub use ids::ConnectionId;
pub use secret::Secret;
