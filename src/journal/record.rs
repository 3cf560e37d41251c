//! What the journal carries: a [`Record`] of one of the [`Stream`]s, and
//! the [`Class`] that decides its share of the bound.

use pinkpage_actors::health::HealthTransition;

use crate::records::recording::RecordingWrite;
use crate::records::{BatchWrite, NewAuditEvent, TempFileWrite, WorkflowWrite};

/// The streams; order is kept within each, not across them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The audit trail.
    Audit = 0,
    /// BMX4 runs and results.
    Batch = 1,
    /// Workflow runs and steps.
    Workflow = 2,
    /// Health transitions.
    Health = 3,
    /// Records of temporary files on servers.
    TempFile = 4,
    /// The index of PTY recordings.
    Recording = 5,
}

/// How many streams there are.
pub const STREAMS: usize = 6;

impl Stream {
    /// Every stream, in index order.
    pub const ALL: [Stream; STREAMS] = [
        Stream::Audit,
        Stream::Batch,
        Stream::Workflow,
        Stream::Health,
        Stream::TempFile,
        Stream::Recording,
    ];

    /// The stream at `i` (`i < STREAMS`).
    pub fn from_index(i: usize) -> Stream {
        Self::ALL[i]
    }

    /// Its name in logs and in the `records.dropped` row.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Audit => "audit",
            Stream::Batch => "batch",
            Stream::Workflow => "workflow",
            Stream::Health => "health",
            Stream::TempFile => "temp_file",
            Stream::Recording => "recording",
        }
    }
}

/// Which share of the bound a record may use (see `super::queue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The rows of work: audit rows, run records, health, temporary files.
    Work,
    /// Bulk output (a batch result, a workflow step's output).
    Bulk,
    /// Rows anyone can cause without signing in (failed logins).
    Anonymous,
}

/// One record on its way to the store.
#[derive(Debug, Clone)]
pub enum Record {
    /// An audit row.
    Audit(NewAuditEvent),
    /// A change to a BMX4 run.
    Batch(BatchWrite),
    /// A change to a workflow run.
    Workflow(WorkflowWrite),
    /// A health transition.
    Health(HealthTransition),
    /// A change to the records of temporary files.
    TempFile(TempFileWrite),
    /// A change to the recordings index.
    Recording(RecordingWrite),
}

impl Record {
    /// Its stream.
    pub fn stream(&self) -> Stream {
        match self {
            Record::Audit(_) => Stream::Audit,
            Record::Batch(_) => Stream::Batch,
            Record::Workflow(_) => Stream::Workflow,
            Record::Health(_) => Stream::Health,
            Record::TempFile(_) => Stream::TempFile,
            Record::Recording(_) => Stream::Recording,
        }
    }

    /// Its size in memory, near enough.
    pub fn weight(&self) -> usize {
        match self {
            Record::Audit(e) => e.weight(),
            Record::Batch(w) => w.weight(),
            Record::Workflow(w) => w.weight(),
            Record::Health(t) => 256 + t.status.last_error.as_ref().map_or(0, String::len),
            Record::TempFile(w) => w.weight(),
            Record::Recording(w) => w.weight(),
        }
    }

    /// Its share of the bound.
    pub fn class(&self) -> Class {
        match self {
            Record::Audit(e) if e.is_anonymous() => Class::Anonymous,
            Record::Batch(w) if w.is_bulk() => Class::Bulk,
            Record::Workflow(w) if w.is_bulk() => Class::Bulk,
            _ => Class::Work,
        }
    }

    /// What it is, for the line that logs its loss (never command text or
    /// output).
    pub fn describe(&self) -> String {
        match self {
            Record::Audit(e) => format!(
                "audit row {} by {} on {}",
                e.action,
                e.user.as_deref().unwrap_or("-"),
                e.server.as_deref().unwrap_or("-")
            ),
            Record::Batch(BatchWrite::Create(r)) => format!("batch run {} (start)", r.run_id),
            Record::Batch(BatchWrite::Result(r)) => {
                format!("batch run {} result {}#{}", r.run_id, r.server, r.index)
            }
            Record::Batch(BatchWrite::End(e)) => format!("batch run {} (end)", e.run_id),
            Record::Workflow(w) => format!("workflow run {} ({})", w.run_id(), workflow_kind(w)),
            Record::Health(t) => format!("health transition of {}", t.status.server_name),
            Record::TempFile(TempFileWrite::Insert(f)) => {
                format!("temporary file record {} on {}", f.path, f.server)
            }
            Record::TempFile(TempFileWrite::Delete(id)) => format!("removal of temporary file record {id}"),
            Record::Recording(w) => format!("recording index change of {}", w.id()),
        }
    }
}

fn workflow_kind(w: &WorkflowWrite) -> &'static str {
    match w {
        WorkflowWrite::Create(_) => "start",
        WorkflowWrite::StepStarted { .. } => "step start",
        WorkflowWrite::Paused { .. } => "pause",
        WorkflowWrite::StepFinished { .. } => "step end",
        WorkflowWrite::Finished { .. } => "end",
    }
}

impl From<NewAuditEvent> for Record {
    fn from(e: NewAuditEvent) -> Self {
        Record::Audit(e)
    }
}

impl From<BatchWrite> for Record {
    fn from(w: BatchWrite) -> Self {
        Record::Batch(w)
    }
}

impl From<WorkflowWrite> for Record {
    fn from(w: WorkflowWrite) -> Self {
        Record::Workflow(w)
    }
}

impl From<HealthTransition> for Record {
    fn from(t: HealthTransition) -> Self {
        Record::Health(t)
    }
}

impl From<RecordingWrite> for Record {
    fn from(w: RecordingWrite) -> Self {
        Record::Recording(w)
    }
}

impl From<TempFileWrite> for Record {
    fn from(w: TempFileWrite) -> Self {
        Record::TempFile(w)
    }
}

/// How a recorded record ended, as its receipt tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Stored; with the id the store gave it, where it gives one.
    Written(Option<i64>),
    /// The store refused it on its own merits (logged).
    Rejected(String),
    /// Dropped: the journal's bound was full (logged and counted).
    Dropped,
    /// Not stored yet, and the store fails: it waits in the journal and is
    /// written once the store recovers (given by `Journal::settled`).
    Waiting,
}
