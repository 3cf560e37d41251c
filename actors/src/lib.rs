//! The Pink-Page engine: actors, their typed messages, SSH over russh and the
//! error catalogue. It knows nothing of HTTP or JSON framing; the daemon
//! (`pinkpage`) talks to it through typed messages and `Recipient`s.
//!
//! # Layout
//! Cross-cutting pieces at the top, then one folder per domain.
//! - [`error`]: the catalogue of five-digit codes and [`error::AppError`].
//! - [`secret`]: [`secret::Secret`], a string that never prints.
//! - [`access`]: who is asking ([`access::Principal`]), roles and needs.
//! - [`server`]: configured servers and transfers, as the engine sees them.
//! - [`ids`]: connection ids.
//! - [`ssh`]: connecting, authenticating and checking host keys with russh;
//!   exec, PTY shells and SFTP on a connected session.
//! - [`task`]: the task contract every work actor keeps (`Stop`, one
//!   `Finished` carrying its `task_id`) and the connection-side `TaskSlot`.
//! - [`broadcast`]: `BroadcastActor`, the registry of every WebSocket
//!   connection and the fan-out of `session_status` / `server_health`.
//! - [`lock`]: `SessionLockActor`, one owner at a time.
//! - [`shell_mode`]: commands typed into the login shell on a PTY
//!   (`command_mode = "shell"`): the typed lines, the markers, a captured
//!   run for BMX4 and `diff_command`.
//! - [`terminal`]: `SshShellActor` (one interactive command on a PTY) and
//!   the output pipeline (throttle, redraws, decoding, stop phrases).
//! - [`transfer`]: `TransferActor`, a named server-to-server copy relayed
//!   over SFTP (temporary name, verify, rename).
//! - [`health`]: per-server health: the pure state machine, one check, the
//!   bounded sweep and `HealthMonitorActor`.
//! - [`batch`]: `BatchRunActor`, one BMX4 batch run (plan, workers with
//!   retries, the actor that keeps the task contract).
//! - [`files`]: SFTP file operations (BMX5), the one SFTP write path,
//!   `SftpPoolActor` (a client's SFTP sessions), `ScriptRunActor`, SHA-256
//!   and shell quoting.
//! - [`diff`]: the DIFF comparisons (pure) and fetching both sides.
//! - [`workflow`]: named, parameterised step sequences (definitions,
//!   parameter binding, plans) and `WorkflowRunActor`, one run under the
//!   session lock.
//! - `testing` (tests only: `cfg(test)` or the `testing` feature): helpers
//!   every test of the workspace shares, such as `eventually`.

pub mod access;
pub mod batch;
pub mod broadcast;
pub mod diff;
pub mod error;
pub mod files;
pub mod health;
pub mod ids;
pub mod lock;
pub mod secret;
pub mod server;
pub mod shell_mode;
pub mod ssh;
pub mod task;
pub mod terminal;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transfer;
pub mod workflow;

pub use error::{AppError, ErrorBody, ErrorCode};
pub use ids::{ConnectionId, OwnerId, RunId};
pub use secret::Secret;
