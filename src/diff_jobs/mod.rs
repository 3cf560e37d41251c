//! Diff jobs, shared by the DIFF WebSocket domain (`crate::ws::diff`) and
//! the REST handlers (`crate::api::diff`), so neither imports the other:
//!
//! - [`requests`]: the request bodies both take (`diff_files`, `diff_dirs`,
//!   `diff_command`, without the WebSocket `type`) and the reply object
//!   both answer;
//! - [`job`]: [`DiffJob`], a request validated once (fields checked, servers
//!   resolved) and then run against the servers;
//! - `audit`: [`DiffJob::audit_event`], the audit row both write;
//! - [`task`]: `DiffJobActor`, a job of a WebSocket client run as a task
//!   (the task contract: stop, wind down, one `Finished`).

mod audit;
pub mod job;
pub mod requests;
pub mod task;

pub use self::job::{DiffJob, DEFAULT_COMMAND_TIMEOUT, MAX_COMMAND_TIMEOUT_S, MAX_CONTEXT, MAX_DIR_ENTRIES};
pub use self::requests::{DiffCommandRequest, DiffDirsRequest, DiffFilesRequest, DiffReply, FileRef};
