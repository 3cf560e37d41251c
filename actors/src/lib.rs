//! The Pink-Page engine: actors, their typed messages, SSH over russh and the
//! error catalogue. It knows nothing of HTTP or JSON framing; the daemon
//! (`pinkpage`) talks to it through typed messages and `Recipient`s.
//!
//! # Layout, lowest layer first
//! A module imports its own layer and those below, never one above
//! (`tests/api/layers.rs` in the daemon checks it).
//! 1. [`error`] (the catalogue of five-digit codes and
//!    [`error::AppError`]), [`secret`] ([`secret::Secret`], a string that
//!    never prints), [`ids`] (connection, run and owner ids), [`access`]
//!    (who is asking, roles and needs), `testing` (tests only: `cfg(test)`
//!    or the `testing` feature; `eventually` and friends).
//! 2. [`server`] (configured servers and transfers, as the engine sees
//!    them) and [`task`] (the task contract every work actor keeps: `Stop`,
//!    one `Finished` carrying its `task_id`; the connection-side
//!    `TaskSlot`), and [`metrics`] (every series `/metrics` shows, named
//!    once, and the counters work moves as it happens).
//! 3. [`ssh`]: connecting, authenticating and checking host keys with
//!    russh; exec, PTY shells and SFTP on a connected session; the
//!    `ConnectHook` other domains plug into. Beside it, [`policy`]:
//!    command rules, their verdicts and the line typed at an interactive
//!    prompt.
//! 4. [`pty`] (every running PTY as others may see it: its scrollback
//!    ring, its watchers, the book `GET /api/v1/ptys` lists),
//!    [`shell_mode`] (commands typed into the login shell on a PTY: the
//!    typed lines, the markers, a captured run for BMX4 and
//!    `diff_command`) and [`health`] (the pure state machine, one check,
//!    the bounded sweep and `HealthMonitorActor`).
//! 5. [`terminal`] (`SshShellActor`, one interactive command on a PTY;
//!    `OperatorTerminal`, an operator's own shell that outlives its
//!    connection; the output pipeline: throttle, redraws, decoding, stop
//!    phrases) and
//!    [`broadcast`] (`BroadcastActor`: every WebSocket connection and the
//!    fan-out of `session_status` / `server_health`).
//! 6. [`files`] (SFTP file operations, the one SFTP write path,
//!    `SftpPoolActor`, `ScriptRunActor`, temporary files and their
//!    recovery) and [`lock`] (`SessionLockActor`, one holder at a time).
//! 7. [`batch`] (`BatchRunActor`, one BMX4 run: plan, workers with
//!    retries) and [`transfer`] (`TransferActor`, a server-to-server copy
//!    relayed over SFTP: temporary name, verify, rename).
//! 8. [`diff`] (the DIFF comparisons and fetching both sides) and
//!    [`workflow`] (definitions, parameter binding, plans and
//!    `WorkflowRunActor`, one run under the session lock).

pub mod access;
pub mod batch;
pub mod broadcast;
pub mod diff;
pub mod error;
pub mod files;
pub mod health;
pub mod ids;
pub mod lock;
pub mod metrics;
pub mod policy;
pub mod pty;
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
pub use ids::{ConnectionId, OwnerId, PtyId, RunId, TerminalId};
pub use secret::Secret;
