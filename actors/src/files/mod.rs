//! SFTP file work and remote scripts (BMX5), also used by DIFF.
//!
//! - [`sftp`]: [`sftp::SftpConn`], file operations with statuses clients can
//!   act on.
//! - [`cache`]: one SFTP connection per server for one client, closed when
//!   idle.
//! - [`script`]: `ScriptRunActor`, upload a script, run it on a PTY,
//!   remove it.
//! - [`shell_quote`]: POSIX shell quoting of script arguments.

pub mod cache;
pub mod script;
pub mod sftp;
pub mod shell_quote;
