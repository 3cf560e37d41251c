//! SSH over russh: connecting, checking host keys, authenticating, and what
//! a connected session offers (exec, PTY shells, SFTP).
//!
//! # Layout
//! - [`host_keys`]: pinned fingerprints and the known_hosts file.
//! - [`rotation`]: the key a server offers now against what we trust, and
//!   an admin's acceptance of a changed one.
//! - `connect`: [`connect`] and authentication; [`ConnectHook`], work other
//!   domains register to run on every new session before it is used.
//! - `handler`: the russh client handler (the host key decision).
//! - `session`: [`SshSession`], a connected and authenticated session.
//! - `exec`: [`SshSession::exec`], a command without a PTY, with caps and a
//!   timeout.
//! - `shell`: [`SshSession::open_shell`], an interactive PTY shell.
//! - `slots`: [`SessionSlots`], the cap on sessions per server.
//!
//! Every failure is an [`AppError`](crate::AppError) with a catalogue code
//! (20000-22001, 52000) and a detail naming the server and the cause.

pub mod host_keys;
mod known_hosts_file;
pub mod rotation;

pub use host_keys::{HostKeyMode, HostKeyPolicy};
mod connect;
mod exec;
mod handler;
mod session;
mod shell;
mod slots;

pub use connect::{connect, ConnectHook, ConnectHooks, SshOptions};
pub use exec::{connection_lost, keep_up_to, ExecLimits, ExecOutput, KILL_GRACE};
pub use session::SshSession;
pub use shell::{PtyRequest, ShellChannel, ShellEvent, ShellInput, ShellOutput};
pub use slots::{SessionSlot, SessionSlots};
