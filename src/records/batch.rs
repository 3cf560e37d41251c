//! BMX4 batch runs: a run's record ([`NewBatchRun`]), each command's
//! result (the engine's [`CommandResult`], the one definition of a batch
//! result), and the run's end ([`BatchEnd`]); written in that order as
//! [`BatchWrite`]s by the run's one recorder (`ws::bmx4::recorder`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use pinkpage_actors::batch::plan::CommandResult;
use serde::Serialize;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchRunStatus {
    /// Commands are running.
    Running,
    /// Every command ran (or was skipped after a failure).
    Completed,
    /// Stopped before it finished (a cancel, its client gone).
    Cancelled,
    /// Left running by a daemon that was killed; marked at the next start.
    Interrupted,
}

impl BatchRunStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchRunStatus::Running => "running",
            BatchRunStatus::Completed => "completed",
            BatchRunStatus::Cancelled => "cancelled",
            BatchRunStatus::Interrupted => "interrupted",
        }
    }

    /// The status stored as `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Running, Self::Completed, Self::Cancelled, Self::Interrupted]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewBatchRun {
    /// UUID v4, made by whoever accepted the request.
    pub run_id: String,
    /// When it started.
    pub at: DateTime<Utc>,
    /// Connection id of the client that asked.
    pub actor: String,
    /// The signed-in user who asked.
    pub user: Option<String>,
    /// The client's address.
    pub remote_addr: Option<String>,
    /// Server names.
    pub servers: Vec<String>,
    /// Command lines, in order.
    pub commands: Vec<String>,
    /// Whether a failure stops a server's run.
    pub stop_on_error: bool,
    /// Extra attempts per command.
    pub retries: u32,
    /// Pause between attempts.
    pub retry_delay_ms: u64,
    /// Per-attempt timeout.
    pub timeout_s: Option<f64>,
}

/// A run's end.
#[derive(Debug, Clone)]
pub struct BatchEnd {
    /// Which run.
    pub run_id: String,
    /// When it ended.
    pub at: DateTime<Utc>,
    /// `Completed` or `Cancelled`.
    pub status: BatchRunStatus,
    /// Commands that succeeded.
    pub succeeded: u32,
    /// Commands that failed.
    pub failed: u32,
    /// Commands skipped.
    pub skipped: u32,
    /// Run time.
    pub duration_ms: u64,
}

/// One change to a run's record, applied in the order sent. An end only
/// finishes a run still `running`, so a run is finished once, and an end
/// that comes after the start-up marked the run `interrupted` changes
/// nothing.
#[derive(Debug, Clone)]
pub enum BatchWrite {
    /// The run, `running`; always the first.
    Create(NewBatchRun),
    /// One command's result.
    Result(Arc<CommandResult>),
    /// The run's end.
    End(BatchEnd),
}

impl BatchWrite {
    /// Its size in memory, near enough (a result carries up to two output
    /// caps).
    pub fn weight(&self) -> usize {
        match self {
            BatchWrite::Create(r) => {
                256 + r.commands.iter().map(String::len).sum::<usize>()
                    + r.servers.iter().map(String::len).sum::<usize>()
            }
            BatchWrite::Result(r) => 256 + r.stdout.len() + r.stderr.len() + r.command.len(),
            BatchWrite::End(_) => 128,
        }
    }

    /// Bulk output, which may never crowd out the rows of the audit trail.
    pub fn is_bulk(&self) -> bool {
        matches!(self, BatchWrite::Result(_))
    }
}

/// A stored run, as listed (without its commands and results).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchRun {
    /// The run's id.
    pub run_id: String,
    /// Connection id of the client that started it.
    pub actor: String,
    /// The user who started it (null for runs from before sign-in existed).
    pub user: Option<String>,
    /// The client's address.
    pub remote_addr: Option<String>,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended; null while running.
    pub finished_at: Option<String>,
    /// Where it stands.
    pub status: BatchRunStatus,
    /// Server names.
    pub servers: Vec<String>,
    /// How many commands per server.
    pub command_count: usize,
    /// Whether a failure stopped a server's run.
    pub stop_on_error: bool,
    /// Extra attempts per command.
    pub retries: u32,
    /// Pause between attempts.
    pub retry_delay_ms: u64,
    /// Per-attempt timeout, seconds.
    pub timeout_s: Option<f64>,
    /// Commands that succeeded.
    pub succeeded: u32,
    /// Commands that failed.
    pub failed: u32,
    /// Commands skipped (after a failure, an unreachable server or a cancel).
    pub skipped: u32,
    /// Run time; null while running.
    pub duration_ms: Option<u64>,
}

/// A run with one page of its results.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchRunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: BatchRun,
    /// Command lines, in order.
    pub commands: Vec<String>,
    /// One page of the results by server, then index.
    pub results: Vec<CommandResult>,
    /// How many results the run has stored in all.
    pub results_total: u64,
    /// The `offset` of the next page; null when this page is the last.
    pub next_offset: Option<u64>,
}

/// Most bytes of output (stdout and stderr) one page of results carries:
/// with 1,000 results of up to 2 MiB each a whole run could be gigabytes
/// in one response; a page ends early at this bound instead (always with
/// at least one result, so paging moves on).
pub const RESULTS_PAGE_MAX_BYTES: usize = 16 << 20;

/// Which page of a run's results: at most `limit` from `offset`, and at
/// most [`RESULTS_PAGE_MAX_BYTES`] of output.
#[derive(Debug, Clone, Copy)]
pub struct ResultsPage {
    /// Most results to return.
    pub limit: u32,
    /// Results to skip.
    pub offset: u64,
}

impl ResultsPage {
    /// The first page (as many results as a page may hold).
    pub const FIRST: ResultsPage = ResultsPage {
        limit: 1000,
        offset: 0,
    };
}
