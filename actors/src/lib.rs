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
//! - [`batch_run`]: `BatchRunActor`, one BMX4 batch run: commands in
//!   order per server over one connection, servers in parallel, retries.
//! - [`broadcast`]: `BroadcastActor`, the registry of every WebSocket
//!   connection and the fan-out of `session_status` / `server_health`.
//! - [`session_lock`]: `SessionLockActor`, one owner at a time.
//! - [`ssh_shell`]: `SshShellActor`, one interactive command on a PTY.
//! - [`transfer`]: `TransferActor`, a named server-to-server copy relayed
//!   over SFTP (temporary name, verify, rename).
//! - [`health`]: the per-server health status clients see, and the pure
//!   state machine (counters in, `is_healthy` out) behind it.
//! - [`health_check`]: one check (TCP connect + SSH banner) and the bounded
//!   concurrent sweep over every server.
//! - [`health_monitor`]: `HealthMonitorActor`, which sweeps on a timer and
//!   publishes every flip.
//! - [`output`]: the terminal output pipeline (throttle, redraws, decoding,
//!   stop phrases) and its async driver.
//! - [`sftp_ops`]: [`sftp_ops::SftpConn`], SFTP file operations (BMX5) with
//!   statuses clients can act on and writes that leave no partial file.
//! - [`sftp_cache`]: one SFTP connection per server for one client, closed
//!   when idle.
//! - [`shell_quote`]: POSIX shell quoting of script arguments.
//! - [`diff`]: the DIFF comparisons (text or binary, unified diffs,
//!   directory trees), pure and unit-tested.
//! - [`diff_remote`]: DIFF over the network: files and trees from two
//!   servers over SFTP, commands on two servers at once.
//! - [`script_run`]: `ScriptRunActor`, upload a script, run it on a PTY,
//!   remove it.

pub mod batch_run;
pub mod broadcast;
pub mod diff;
pub mod diff_remote;
pub mod error;
pub mod health;
pub mod health_check;
pub mod health_monitor;
pub mod ids;
pub mod output;
pub mod script_run;
pub mod secret;
pub mod server;
pub mod session_lock;
pub mod sftp_cache;
pub mod sftp_ops;
pub mod shell_quote;
pub mod ssh;
pub mod ssh_shell;
pub mod transfer;

pub use error::{AppError, ErrorBody, ErrorCode};
pub use ids::ConnectionId;
pub use secret::Secret;
