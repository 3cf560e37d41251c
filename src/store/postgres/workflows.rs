//! Workflow runs and their steps, in SQL (migration 5), the PostgreSQL
//! twin of `sqlite::workflows`. Each write only moves a row forward (its
//! `WHERE` names the states it may leave), so a write that arrives after
//! the start-up marked the run `interrupted` changes nothing.

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use futures_util::future::BoxFuture;
use pinkpage_actors::workflow::plan::servers_of;
use pinkpage_actors::{AppError, ErrorBody};
use tokio_postgres::Row;

use super::tx::{apply_each, bad_text, col, opt_int, pg_text};
use super::tx::{db_error, pool_error, visible_on};
use super::PgStore;
use crate::records::workflow::{RunState, StepState, WorkflowRunsQuery};
use crate::records::{
    timestamp, NewWorkflowRun, Visible, WorkflowRun, WorkflowRunDetail, WorkflowStep, WorkflowWrite,
};
use crate::store::{Expired, StoreFuture, WorkflowStore, Writes};

/// Applies `writes` in order, in one transaction.
pub(super) async fn apply(pool: Pool, writes: Vec<WorkflowWrite>) -> Writes {
    apply_each(pool, &writes, |tx, w| {
        Box::pin(async move { write(tx, w).await.map(|()| None) })
    })
    .await
}

async fn write(tx: &Transaction<'_>, write: &WorkflowWrite) -> Result<(), tokio_postgres::Error> {
    match write {
        WorkflowWrite::Create(run) => create(tx, run).await,
        WorkflowWrite::StepStarted { run_id, step, at } => {
            tx.execute(
                "UPDATE workflow_steps SET status = 'running', started_at = $3
                 WHERE run_id = $1 AND idx = $2 AND status = 'pending'",
                &[run_id, &(*step as i64), &timestamp(*at)],
            )
            .await?;
            tx.execute(
                "UPDATE workflow_runs SET status = 'running', current_step = $2
                 WHERE run_id = $1 AND status IN ('running', 'paused')",
                &[run_id, &(*step as i64)],
            )
            .await?;
            Ok(())
        }
        WorkflowWrite::Paused { run_id, step } => {
            tx.execute(
                "UPDATE workflow_steps SET status = 'paused'
                 WHERE run_id = $1 AND idx = $2 AND status = 'running'",
                &[run_id, &(*step as i64)],
            )
            .await?;
            tx.execute(
                "UPDATE workflow_runs SET status = 'paused' WHERE run_id = $1 AND status = 'running'",
                &[run_id],
            )
            .await?;
            Ok(())
        }
        WorkflowWrite::StepFinished {
            run_id,
            step,
            state,
            duration_ms,
            exit_status,
            error,
            output_tail,
            confirmed_by,
        } => {
            tx.execute(
                "UPDATE workflow_steps SET status = $3, duration_ms = $4, exit_status = $5, error = $6,
                    output_tail = $7, confirmed_by = $8
                 WHERE run_id = $1 AND idx = $2 AND status IN ('pending', 'running', 'paused')",
                &[
                    run_id,
                    &(*step as i64),
                    &state.as_str(),
                    &(*duration_ms as i64),
                    &exit_status.map(i64::from),
                    &error_json(error),
                    &pg_text(output_tail),
                    confirmed_by,
                ],
            )
            .await?;
            tx.execute(
                "UPDATE workflow_runs SET status = 'running' WHERE run_id = $1 AND status = 'paused'",
                &[run_id],
            )
            .await?;
            Ok(())
        }
        WorkflowWrite::Finished {
            run_id,
            state,
            error,
            at,
        } => {
            tx.execute(
                "UPDATE workflow_runs SET status = $2, finished_at = $3, error = $4
                 WHERE run_id = $1 AND status IN ('running', 'paused')",
                &[run_id, &state.as_str(), &timestamp(*at), &error_json(error)],
            )
            .await?;
            tx.execute(
                "UPDATE workflow_steps SET status = 'skipped' WHERE run_id = $1 AND status = 'pending'",
                &[run_id],
            )
            .await?;
            Ok(())
        }
    }
}

async fn create(tx: &Transaction<'_>, r: &NewWorkflowRun) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO workflow_runs (run_id, workflow, actor, \"user\", remote_addr, params, status, started_at, instance, servers)
             VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $8, $9)",
        &[
            &r.run_id,
            &r.workflow,
            &r.actor,
            &r.user,
            &r.remote_addr,
            &serde_json::to_string(&r.params).unwrap_or_else(|_| "{}".to_owned()),
            &timestamp(r.at),
            &crate::records::instance(),
            &serde_json::to_string(&servers_of(&r.steps)).unwrap_or_else(|_| "[]".to_owned()),
        ],
    )
    .await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO workflow_steps (run_id, idx, name, kind, plan, status)
                 VALUES ($1, $2, $3, $4, $5, 'pending')",
        )
        .await?;
    for step in &r.steps {
        tx.execute(
            &stmt,
            &[
                &r.run_id,
                &(step.index as i64),
                &step.name,
                &step.action.kind(),
                &serde_json::to_string(step).unwrap_or_else(|_| "{}".to_owned()),
            ],
        )
        .await?;
    }
    Ok(())
}

fn error_json(e: &Option<ErrorBody>) -> Option<String> {
    e.as_ref().and_then(|e| serde_json::to_string(e).ok())
}

fn error_from(text: Option<String>) -> Option<ErrorBody> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

/// Marks `instance`'s runs left `running` or `paused` by a daemon that
/// stopped without ending them as `interrupted` (their running step too,
/// the steps never reached `skipped`), at `at`; how many.
pub(super) async fn interrupt_left(
    pool: Pool,
    instance: String,
    at: DateTime<Utc>,
) -> Result<usize, AppError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(db_error)?;
    let left = "run_id IN (SELECT run_id FROM workflow_runs WHERE status IN ('running', 'paused') AND instance = $1)";
    tx.execute(
        &format!("UPDATE workflow_steps SET status = 'interrupted' WHERE status IN ('running', 'paused') AND {left}"),
        &[&instance],
    )
    .await
    .map_err(db_error)?;
    tx.execute(
        &format!("UPDATE workflow_steps SET status = 'skipped' WHERE status = 'pending' AND {left}"),
        &[&instance],
    )
    .await
    .map_err(db_error)?;
    let n = tx
        .execute(
            "UPDATE workflow_runs SET status = 'interrupted', finished_at = $1
             WHERE status IN ('running', 'paused') AND instance = $2",
            &[&timestamp(at), &instance],
        )
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(n as usize)
}

const RUN_COLUMNS: &str =
    "run_id, workflow, actor, \"user\", remote_addr, params, status, current_step, started_at, finished_at, error";

fn run_row(row: &Row) -> Result<WorkflowRun, AppError> {
    let params: String = col(row, 5)?;
    let status: String = col(row, 6)?;
    Ok(WorkflowRun {
        run_id: col(row, 0)?,
        workflow: col(row, 1)?,
        actor: col(row, 2)?,
        user: col(row, 3)?,
        remote_addr: col(row, 4)?,
        params: serde_json::from_str(&params).unwrap_or_default(),
        status: RunState::parse(&status).ok_or_else(|| bad_text(row, 6, &status))?,
        current_step: col::<Option<i64>>(row, 7)?.map(|n| n as usize),
        started_at: col(row, 8)?,
        finished_at: col(row, 9)?,
        error: error_from(col(row, 10)?),
    })
}

/// Runs newest first.
pub(super) async fn list(pool: Pool, q: WorkflowRunsQuery) -> Result<Vec<WorkflowRun>, AppError> {
    let client = pool.get().await.map_err(pool_error)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs
             WHERE ($3::text IS NULL OR workflow = $3) AND {}
               AND (NOT $5::boolean OR status IN ('running', 'paused'))
             ORDER BY seq DESC LIMIT $1 OFFSET $2",
            visible_on("workflow_runs.servers", "$4")
        ))
        .await
        .map_err(db_error)?;
    let rows = client
        .query(
            &stmt,
            &[
                &i64::from(q.limit),
                &i64::from(q.offset),
                &q.workflow,
                &q.visible.as_json(),
                &q.in_flight,
            ],
        )
        .await
        .map_err(db_error)?;
    rows.iter().map(run_row).collect()
}

/// One run with its steps; `None` when unknown or not `visible`. One
/// read-only snapshot, so the run and its steps agree.
pub(super) async fn get(
    pool: Pool,
    run_id: String,
    visible: Visible,
) -> Result<Option<WorkflowRunDetail>, AppError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = super::tx::snapshot(&mut client).await.map_err(db_error)?;
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE run_id = $1 AND {}",
            visible_on("workflow_runs.servers", "$2")
        ))
        .await
        .map_err(db_error)?;
    let run = tx
        .query_opt(&stmt, &[&run_id, &visible.as_json()])
        .await
        .map_err(db_error)?;
    let Some(run) = run.as_ref().map(run_row).transpose()? else {
        return Ok(None);
    };
    let stmt = tx
        .prepare_cached(
            "SELECT idx, name, kind, plan, status, started_at, duration_ms, exit_status, error,
                    output_tail, confirmed_by
             FROM workflow_steps WHERE run_id = $1 ORDER BY idx",
        )
        .await
        .map_err(db_error)?;
    let rows = tx.query(&stmt, &[&run_id]).await.map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    let steps = rows
        .iter()
        .map(|row| {
            let plan: String = col(row, 3)?;
            let status: String = col(row, 4)?;
            Ok(WorkflowStep {
                index: col::<i64>(row, 0)? as usize,
                name: col(row, 1)?,
                kind: col(row, 2)?,
                plan: serde_json::from_str(&plan).unwrap_or_default(),
                status: StepState::parse(&status).ok_or_else(|| bad_text(row, 4, &status))?,
                started_at: col(row, 5)?,
                duration_ms: col::<Option<i64>>(row, 6)?.map(|n| n as u64),
                exit_status: opt_int(row, 7)?,
                error: error_from(col(row, 8)?),
                output_tail: col(row, 9)?,
                confirmed_by: col(row, 10)?,
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    Ok(Some(WorkflowRunDetail { run, steps }))
}

impl WorkflowStore for PgStore {
    fn apply(&self, writes: Vec<WorkflowWrite>) -> BoxFuture<'static, Writes> {
        self.run(move |pool| apply(pool, writes))
    }

    fn list(&self, query: WorkflowRunsQuery) -> StoreFuture<Vec<WorkflowRun>> {
        self.run(move |pool| list(pool, query))
    }

    fn get(&self, run_id: String, visible: Visible) -> StoreFuture<Option<WorkflowRunDetail>> {
        self.run(move |pool| get(pool, run_id, visible))
    }

    fn interrupt_left(&self, instance: &str, at: DateTime<Utc>) -> StoreFuture<usize> {
        let instance = instance.to_owned();
        self.run(move |pool| interrupt_left(pool, instance, at))
    }

    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Expired> {
        self.run(move |pool| {
            super::retention::expire_runs(pool, &crate::store::migrations::WORKFLOW_RUNS, before, limit)
        })
    }
}
