//! [`PtyInfo`]: what is known of one PTY (what runs on it, whose it is,
//! where), as the book lists it and its recording names it. A leaf of the
//! `pty` module: the book and the recording seam both import it.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::ids::{PtyId, RunId, TerminalId};

/// What runs on a PTY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PtyKind {
    /// A STUB `ssh_command`.
    Command,
    /// A BMX5 script.
    Script,
    /// A workflow's command step.
    WorkflowStep,
    /// An operator terminal.
    Terminal,
}

impl PtyKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PtyKind::Command => "command",
            PtyKind::Script => "script",
            PtyKind::WorkflowStep => "workflow_step",
            PtyKind::Terminal => "terminal",
        }
    }
}

/// What the book knows of one PTY.
#[derive(Debug, Clone)]
pub struct PtyInfo {
    /// Its id.
    pub pty_id: PtyId,
    /// What runs on it.
    pub kind: PtyKind,
    /// Whose it is.
    pub user: Arc<str>,
    /// The server it runs on.
    pub server: String,
    /// The command (empty for an interactive shell).
    pub command: String,
    /// When it was opened.
    pub started: DateTime<Utc>,
    /// The operator terminal it is, if it is one.
    pub terminal_id: Option<TerminalId>,
    /// The workflow run it belongs to, for a workflow step.
    pub run_id: Option<RunId>,
    /// The step of that run (from 0).
    pub step: Option<usize>,
}

impl PtyInfo {
    /// A PTY of `kind` opened now by `user` on `server`.
    pub fn new(kind: PtyKind, user: Arc<str>, server: &str, command: &str) -> Self {
        PtyInfo {
            pty_id: PtyId::new(),
            kind,
            user,
            server: server.to_owned(),
            command: command.to_owned(),
            started: Utc::now(),
            terminal_id: None,
            run_id: None,
            step: None,
        }
    }
}
