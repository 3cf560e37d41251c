//! Workflow runs and their steps.
//!
//! Every write is a [`WorkflowWrite`], sent in order by the run's one
//! writer (`workflows::hub`): first the run row with one `pending` row per
//! planned step (so the history shows the whole plan from the first
//! moment), then each change, so a step's end never lands before its
//! start. Each
//! write also only moves a row forward (a finished step or run is never
//! touched again), so a write that arrives after the start-up recovery
//! marked the run `interrupted` changes nothing.

use std::collections::BTreeMap;

use actix::{Handler, Message};
use pinkpage_actors::workflow::plan::PlannedStep;
use pinkpage_actors::{AppError, ErrorBody};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::{db_error, StoreActor};

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewWorkflowRun {
    /// UUID v4.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// Connection id of the client that asked, or `rest`.
    pub actor: String,
    /// Who asked.
    pub user: String,
    /// From where.
    pub remote_addr: Option<String>,
    /// The bound parameter values.
    pub params: BTreeMap<String, String>,
    /// The plan.
    pub steps: Vec<PlannedStep>,
}

/// One change to a running run, applied in the order sent.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), AppError>")]
pub enum WorkflowWrite {
    /// A new run, `running`, with its steps `pending`; always the first.
    Create(NewWorkflowRun),
    /// Step `step` started.
    StepStarted {
        /// The run.
        run_id: String,
        /// The step.
        step: usize,
    },
    /// The run waits at pause `step`.
    Paused {
        /// The run.
        run_id: String,
        /// The step.
        step: usize,
    },
    /// Step `step` ended.
    StepFinished {
        /// The run.
        run_id: String,
        /// The step.
        step: usize,
        /// `succeeded`, `failed` or `cancelled`.
        status: &'static str,
        /// How long it took.
        duration_ms: u64,
        /// A command's exit status.
        exit_status: Option<u32>,
        /// Why it failed.
        error: Option<ErrorBody>,
        /// The last 64 KiB of its output.
        output_tail: String,
        /// Who confirmed a pause.
        confirmed_by: Option<String>,
    },
    /// The run ended; steps never reached become `skipped`.
    Finished {
        /// The run.
        run_id: String,
        /// `succeeded`, `failed` or `cancelled`.
        status: &'static str,
        /// Why it stopped.
        error: Option<ErrorBody>,
    },
}

/// A stored run, as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowRun {
    /// The run's id.
    pub run_id: String,
    /// The workflow's name.
    pub workflow: String,
    /// Connection id of the client that started it, or `rest`.
    pub actor: String,
    /// Who started it.
    pub user: Option<String>,
    /// From where.
    pub remote_addr: Option<String>,
    /// The parameter values it ran with.
    pub params: BTreeMap<String, String>,
    /// `running`, `paused`, `succeeded`, `failed`, `cancelled` or
    /// `interrupted` (the daemon stopped during the run).
    pub status: String,
    /// The step running or paused at, or the step that stopped the run.
    pub current_step: Option<usize>,
    /// When it started (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended; null while it runs.
    pub finished_at: Option<String>,
    /// Why it stopped.
    #[schema(value_type = Option<crate::api::error::ErrorBodySchema>)]
    pub error: Option<ErrorBody>,
}

/// One stored step.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowStep {
    /// Its position (0-based).
    pub index: usize,
    /// Its name.
    pub name: String,
    /// `command`, `transfer`, `batch` or `pause`.
    pub kind: String,
    /// The resolved step, as `workflow_plan` shows it.
    #[schema(value_type = Object)]
    pub plan: serde_json::Value,
    /// `pending`, `running`, `paused`, `succeeded`, `failed`, `cancelled`,
    /// `skipped` or `interrupted`.
    pub status: String,
    /// When it started.
    pub started_at: Option<String>,
    /// How long it took.
    pub duration_ms: Option<u64>,
    /// A command's exit status.
    pub exit_status: Option<u32>,
    /// Why it failed.
    #[schema(value_type = Option<crate::api::error::ErrorBodySchema>)]
    pub error: Option<ErrorBody>,
    /// The last 64 KiB of its output.
    pub output_tail: Option<String>,
    /// For a pause: who confirmed it.
    pub confirmed_by: Option<String>,
}

/// A run with its steps.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkflowRunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: WorkflowRun,
    /// Its steps, in order.
    pub steps: Vec<WorkflowStep>,
}

/// Runs, newest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<WorkflowRun>, AppError>")]
pub struct ListWorkflowRuns {
    /// Most rows to return.
    pub limit: u32,
    /// Rows to skip (for paging).
    pub offset: u32,
    /// Only runs of this workflow.
    pub workflow: Option<String>,
}

/// One run with its steps; `None` when unknown.
#[derive(Message)]
#[rtype(result = "Result<Option<WorkflowRunDetail>, AppError>")]
pub struct GetWorkflowRun(pub String);

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn error_json(e: &Option<ErrorBody>) -> Option<String> {
    e.as_ref().and_then(|e| serde_json::to_string(e).ok())
}

fn error_from(text: Option<String>) -> Option<ErrorBody> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

impl Handler<WorkflowWrite> for StoreActor {
    type Result = Result<(), AppError>;

    fn handle(&mut self, write: WorkflowWrite, _: &mut Self::Context) -> Self::Result {
        let conn = &mut self.conn;
        match write {
            WorkflowWrite::Create(run) => create(conn, run),
            WorkflowWrite::StepStarted { run_id, step } => {
                let tx = conn.transaction().map_err(db_error)?;
                tx.execute(
                    "UPDATE workflow_steps SET status = 'running', started_at = ?3
                     WHERE run_id = ?1 AND idx = ?2 AND status = 'pending'",
                    params![run_id, step as i64, now()],
                )
                .map_err(db_error)?;
                tx.execute(
                    "UPDATE workflow_runs SET status = 'running', current_step = ?2
                     WHERE run_id = ?1 AND status IN ('running', 'paused')",
                    params![run_id, step as i64],
                )
                .map_err(db_error)?;
                tx.commit().map_err(db_error)
            }
            WorkflowWrite::Paused { run_id, step } => {
                let tx = conn.transaction().map_err(db_error)?;
                tx.execute(
                    "UPDATE workflow_steps SET status = 'paused'
                     WHERE run_id = ?1 AND idx = ?2 AND status = 'running'",
                    params![run_id, step as i64],
                )
                .map_err(db_error)?;
                tx.execute(
                    "UPDATE workflow_runs SET status = 'paused' WHERE run_id = ?1 AND status = 'running'",
                    params![run_id],
                )
                .map_err(db_error)?;
                tx.commit().map_err(db_error)
            }
            WorkflowWrite::StepFinished {
                run_id,
                step,
                status,
                duration_ms,
                exit_status,
                error,
                output_tail,
                confirmed_by,
            } => {
                let tx = conn.transaction().map_err(db_error)?;
                tx.execute(
                    "UPDATE workflow_steps SET status = ?3, duration_ms = ?4, exit_status = ?5, error = ?6,
                        output_tail = ?7, confirmed_by = ?8
                     WHERE run_id = ?1 AND idx = ?2 AND status IN ('pending', 'running', 'paused')",
                    params![
                        run_id,
                        step as i64,
                        status,
                        duration_ms as i64,
                        exit_status,
                        error_json(&error),
                        output_tail,
                        confirmed_by
                    ],
                )
                .map_err(db_error)?;
                tx.execute(
                    "UPDATE workflow_runs SET status = 'running' WHERE run_id = ?1 AND status = 'paused'",
                    params![run_id],
                )
                .map_err(db_error)?;
                tx.commit().map_err(db_error)
            }
            WorkflowWrite::Finished {
                run_id,
                status,
                error,
            } => {
                let tx = conn.transaction().map_err(db_error)?;
                tx.execute(
                    "UPDATE workflow_runs SET status = ?2, finished_at = ?3, error = ?4
                     WHERE run_id = ?1 AND status IN ('running', 'paused')",
                    params![run_id, status, now(), error_json(&error)],
                )
                .map_err(db_error)?;
                tx.execute(
                    "UPDATE workflow_steps SET status = 'skipped' WHERE run_id = ?1 AND status = 'pending'",
                    params![run_id],
                )
                .map_err(db_error)?;
                tx.commit().map_err(db_error)
            }
        }
    }
}

/// Marks runs left `running` or `paused` by a daemon that stopped without
/// ending them as `interrupted` (their running step too, the steps never
/// reached `skipped`); how many. Runs when the store opens, before the
/// daemon serves, so no run of this daemon can be among them.
pub(crate) fn interrupt_left_runs(conn: &mut rusqlite::Connection) -> Result<usize, AppError> {
    let tx = conn.transaction().map_err(db_error)?;
    let left = "run_id IN (SELECT run_id FROM workflow_runs WHERE status IN ('running', 'paused'))";
    tx.execute(
        &format!("UPDATE workflow_steps SET status = 'interrupted' WHERE status IN ('running', 'paused') AND {left}"),
        [],
    )
    .map_err(db_error)?;
    tx.execute(
        &format!("UPDATE workflow_steps SET status = 'skipped' WHERE status = 'pending' AND {left}"),
        [],
    )
    .map_err(db_error)?;
    let n = tx
        .execute(
            "UPDATE workflow_runs SET status = 'interrupted', finished_at = ?1 WHERE status IN ('running', 'paused')",
            params![now()],
        )
        .map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    Ok(n)
}

fn create(conn: &mut rusqlite::Connection, r: NewWorkflowRun) -> Result<(), AppError> {
    let tx = conn.transaction().map_err(db_error)?;
    tx.execute(
        "INSERT INTO workflow_runs (run_id, workflow, actor, user, remote_addr, params, status, started_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7)",
        params![
            r.run_id,
            r.workflow,
            r.actor,
            r.user,
            r.remote_addr,
            serde_json::to_string(&r.params).unwrap_or_else(|_| "{}".to_owned()),
            now(),
        ],
    )
    .map_err(db_error)?;
    for step in &r.steps {
        tx.execute(
            "INSERT INTO workflow_steps (run_id, idx, name, kind, plan, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending')",
            params![
                r.run_id,
                step.index as i64,
                step.name,
                step.action.kind(),
                serde_json::to_string(step).unwrap_or_else(|_| "{}".to_owned()),
            ],
        )
        .map_err(db_error)?;
    }
    tx.commit().map_err(db_error)
}

const RUN_COLUMNS: &str =
    "run_id, workflow, actor, user, remote_addr, params, status, current_step, started_at, finished_at, error";

fn run_row(row: &Row<'_>) -> rusqlite::Result<WorkflowRun> {
    let params: String = row.get(5)?;
    Ok(WorkflowRun {
        run_id: row.get(0)?,
        workflow: row.get(1)?,
        actor: row.get(2)?,
        user: row.get(3)?,
        remote_addr: row.get(4)?,
        params: serde_json::from_str(&params).unwrap_or_default(),
        status: row.get(6)?,
        current_step: row.get::<_, Option<i64>>(7)?.map(|n| n as usize),
        started_at: row.get(8)?,
        finished_at: row.get(9)?,
        error: error_from(row.get(10)?),
    })
}

impl Handler<ListWorkflowRuns> for StoreActor {
    type Result = Result<Vec<WorkflowRun>, AppError>;

    fn handle(&mut self, q: ListWorkflowRuns, _: &mut Self::Context) -> Self::Result {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM workflow_runs
                 WHERE ?3 IS NULL OR workflow = ?3
                 ORDER BY seq DESC LIMIT ?1 OFFSET ?2"
            ))
            .map_err(db_error)?;
        let rows = stmt
            .query_map(params![q.limit, q.offset, q.workflow], run_row)
            .map_err(db_error)?;
        rows.collect::<Result<_, _>>().map_err(db_error)
    }
}

impl Handler<GetWorkflowRun> for StoreActor {
    type Result = Result<Option<WorkflowRunDetail>, AppError>;

    fn handle(&mut self, GetWorkflowRun(run_id): GetWorkflowRun, _: &mut Self::Context) -> Self::Result {
        let run = self
            .conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM workflow_runs WHERE run_id = ?1"),
                params![run_id],
                run_row,
            )
            .optional()
            .map_err(db_error)?;
        let Some(run) = run else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, name, kind, plan, status, started_at, duration_ms, exit_status, error,
                        output_tail, confirmed_by
                 FROM workflow_steps WHERE run_id = ?1 ORDER BY idx",
            )
            .map_err(db_error)?;
        let steps = stmt
            .query_map(params![run_id], |row| {
                let plan: String = row.get(3)?;
                Ok(WorkflowStep {
                    index: row.get::<_, i64>(0)? as usize,
                    name: row.get(1)?,
                    kind: row.get(2)?,
                    plan: serde_json::from_str(&plan).unwrap_or_default(),
                    status: row.get(4)?,
                    started_at: row.get(5)?,
                    duration_ms: row.get::<_, Option<i64>>(6)?.map(|n| n as u64),
                    exit_status: row.get(7)?,
                    error: error_from(row.get(8)?),
                    output_tail: row.get(9)?,
                    confirmed_by: row.get(10)?,
                })
            })
            .map_err(db_error)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error)?;
        Ok(Some(WorkflowRunDetail { run, steps }))
    }
}
