//! The STUB domain's wire types: what a client may send and what the
//! domain sends back (besides the common frames of `ws::protocol`).

use serde::{Deserialize, Serialize};

/// What a STUB client may send (besides `ping`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StubRequest {
    /// Take the session lock.
    StartSession,
    /// Stop my tasks and release the lock; with `take_over`, end the
    /// session another connection of the same user holds (a second tab).
    EndSession {
        /// End the session of another connection of this user, as if it
        /// had sent `end_session` itself.
        #[serde(default)]
        take_over: bool,
    },
    /// Run a command on a PTY.
    SshCommand {
        /// Server name.
        server: String,
        /// Command line; empty for an interactive login shell.
        command: String,
        /// Finish when this text appears.
        stop_phrase: Option<String>,
        /// Finish after this many seconds.
        timeout_s: Option<f64>,
        /// Flush interval for this command.
        throttle_ms: Option<u64>,
    },
    /// Keystrokes for the running command.
    SshInput {
        /// Text to write (`\u0003` is Ctrl-C).
        data: String,
    },
    /// Terminal size changed.
    Resize {
        /// Columns (1-1000).
        cols: u32,
        /// Rows (1-1000).
        rows: u32,
    },
    /// Stop the running command, or (with `run_id`) a workflow run.
    Cancel {
        /// The workflow run to cancel; without it, this connection's task.
        run_id: Option<String>,
    },
    /// What a configured transfer would copy now (a dry run).
    ScpTransferPlan {
        /// Transfer name.
        transfer_name: String,
    },
    /// Run a configured transfer.
    ScpTransfer {
        /// Transfer name.
        transfer_name: String,
    },
    /// Show what a workflow run would do, running nothing.
    WorkflowPlan {
        /// The workflow's name.
        workflow: String,
        /// Parameter values by name (strings or whole numbers).
        #[serde(default)]
        params: std::collections::BTreeMap<String, serde_json::Value>,
    },
    /// Run a workflow under the session lock.
    WorkflowRun {
        /// The workflow's name.
        workflow: String,
        /// Parameter values by name (strings or whole numbers).
        #[serde(default)]
        params: std::collections::BTreeMap<String, serde_json::Value>,
    },
    /// Answer the pause a run waits at.
    WorkflowConfirm {
        /// The run.
        run_id: String,
    },
    /// Follow a run in flight: `workflow_state`, then its frames.
    WorkflowWatch {
        /// The run.
        run_id: String,
    },
    /// Answer a command held for review (approvers only, never one's own).
    CommandReview {
        /// The hold (`command_review_requested`'s `held_id`).
        held_id: String,
        /// `approve` or `reject`.
        decision: crate::reviews::Decision,
        /// Why (kept in the audit row).
        #[serde(default)]
        comment: String,
    },
}

/// What the STUB domain sends (besides the common frames).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StubReply<'a> {
    /// The lock is yours.
    SessionStarted {
        /// Your connection id.
        owner: String,
    },
    /// The lock is released.
    SessionEnded,
    /// A `command_review` was taken: the requester's command runs
    /// (`approve`) or is refused with 55001 (`reject`).
    CommandReviewed {
        /// The hold.
        held_id: &'a str,
        /// The answer given.
        decision: crate::reviews::Decision,
    },
    /// The command was accepted and is connecting.
    SshCommandStarted {
        /// Server name.
        server: &'a str,
        /// The command's PTY, as `GET /api/v1/ptys` lists it and
        /// `terminal_watch` names it.
        #[serde(skip_serializing_if = "Option::is_none")]
        pty_id: Option<&'a str>,
    },
    /// Output.
    SshOutput {
        /// Server name.
        server: &'a str,
        /// Decoded text.
        data: &'a str,
    },
    /// The command is over.
    SshCommandComplete {
        /// Server name.
        server: &'a str,
        /// `exit`, `stop_phrase`, `timeout`, `cancelled` or `error`.
        reason: &'a str,
        /// The exit status, when it exited.
        exit_status: Option<u32>,
    },
    /// The terminal size was recorded.
    Resized {
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
}
