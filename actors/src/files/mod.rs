//! SFTP file work and remote scripts (BMX5), also used by DIFF.
//!
//! - [`sftp`]: [`sftp::SftpConn`], file operations with statuses clients can
//!   act on; [`sftp_error`]: how their failures are told.
//! - [`pool`]: `SftpPoolActor`, one client's SFTP sessions (one per
//!   server), closed when idle, when the client goes and when stopped.
//! - [`write`](mod@write): the one way a file is written over SFTP (temporary sibling,
//!   posix-rename, the replaced file's mode), for BMX5 and the relay.
//! - [`digest`]: SHA-256 in lowercase hex, for every caller.
//! - [`script`]: `ScriptRunActor`, upload a script, run it on a PTY,
//!   remove it.
//! - [`shell_quote`]: POSIX shell quoting of script arguments.
//! - [`temp_names`]: the names of the temporary files Pink-Page makes on
//!   servers, and the checks that recognise them.
//! - [`temp_files`]: records of the temporary files written on servers, and
//!   their removal at the next connection after a crash.

pub mod digest;
pub mod pool;
pub mod script;
pub mod sftp;
pub mod sftp_error;
pub mod shell_quote;
pub mod temp_files;
pub mod temp_names;
pub mod write;
