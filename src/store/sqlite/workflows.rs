//! Workflow runs and their steps, in SQL (migration 5). Each write only
//! moves a row forward (its `WHERE` names the states it may leave), so a
//! write that arrives after the start-up marked the run `interrupted`
//! changes nothing.

use chrono::{DateTime, Utc};
use pinkpage_actors::ErrorBody;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::batch::bad_text;
use super::tx::{apply_each, visible_on};
use crate::records::workflow::{RunState, StepState, WorkflowRunsQuery};
use crate::records::{
    timestamp, NewWorkflowRun, Visible, WorkflowRun, WorkflowRunDetail, WorkflowStep, WorkflowWrite,
};
use crate::store::Writes;
use pinkpage_actors::workflow::plan::servers_of;

/// Applies `writes` in order, in one transaction.
pub(super) fn apply(conn: &mut Connection, writes: &[WorkflowWrite]) -> Writes {
    apply_each(conn, writes, |tx, w| write(tx, w).map(|()| None))
}

fn write(tx: &Connection, write: &WorkflowWrite) -> rusqlite::Result<()> {
    match write {
        WorkflowWrite::Create(run) => create(tx, run),
        WorkflowWrite::StepStarted { run_id, step, at } => {
            tx.execute(
                "UPDATE workflow_steps SET status = 'running', started_at = ?3
                 WHERE run_id = ?1 AND idx = ?2 AND status = 'pending'",
                params![run_id, *step as i64, timestamp(*at)],
            )?;
            tx.execute(
                "UPDATE workflow_runs SET status = 'running', current_step = ?2
                 WHERE run_id = ?1 AND status IN ('running', 'paused')",
                params![run_id, *step as i64],
            )?;
            Ok(())
        }
        WorkflowWrite::Paused { run_id, step } => {
            tx.execute(
                "UPDATE workflow_steps SET status = 'paused'
                 WHERE run_id = ?1 AND idx = ?2 AND status = 'running'",
                params![run_id, *step as i64],
            )?;
            tx.execute(
                "UPDATE workflow_runs SET status = 'paused' WHERE run_id = ?1 AND status = 'running'",
                params![run_id],
            )?;
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
                "UPDATE workflow_steps SET status = ?3, duration_ms = ?4, exit_status = ?5, error = ?6,
                    output_tail = ?7, confirmed_by = ?8
                 WHERE run_id = ?1 AND idx = ?2 AND status IN ('pending', 'running', 'paused')",
                params![
                    run_id,
                    *step as i64,
                    state.as_str(),
                    *duration_ms as i64,
                    exit_status,
                    error_json(error),
                    output_tail,
                    confirmed_by
                ],
            )?;
            tx.execute(
                "UPDATE workflow_runs SET status = 'running' WHERE run_id = ?1 AND status = 'paused'",
                params![run_id],
            )?;
            Ok(())
        }
        WorkflowWrite::Finished {
            run_id,
            state,
            error,
            at,
        } => {
            tx.execute(
                "UPDATE workflow_runs SET status = ?2, finished_at = ?3, error = ?4
                 WHERE run_id = ?1 AND status IN ('running', 'paused')",
                params![run_id, state.as_str(), timestamp(*at), error_json(error)],
            )?;
            tx.execute(
                "UPDATE workflow_steps SET status = 'skipped' WHERE run_id = ?1 AND status = 'pending'",
                params![run_id],
            )?;
            Ok(())
        }
    }
}

fn create(tx: &Connection, r: &NewWorkflowRun) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO workflow_runs (run_id, workflow, actor, user, remote_addr, params, status, started_at, instance, servers)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', ?7, ?8, ?9)",
        params![
            r.run_id,
            r.workflow,
            r.actor,
            r.user,
            r.remote_addr,
            serde_json::to_string(&r.params).unwrap_or_else(|_| "{}".to_owned()),
            timestamp(r.at),
            crate::records::instance(),
            serde_json::to_string(&servers_of(&r.steps)).unwrap_or_else(|_| "[]".to_owned()),
        ],
    )?;
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
        )?;
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
pub(super) fn interrupt_left(
    conn: &mut Connection,
    instance: &str,
    at: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let left = "run_id IN (SELECT run_id FROM workflow_runs WHERE status IN ('running', 'paused') AND instance = ?1)";
    tx.execute(
        &format!("UPDATE workflow_steps SET status = 'interrupted' WHERE status IN ('running', 'paused') AND {left}"),
        [instance],
    )?;
    tx.execute(
        &format!("UPDATE workflow_steps SET status = 'skipped' WHERE status = 'pending' AND {left}"),
        [instance],
    )?;
    let n = tx.execute(
        "UPDATE workflow_runs SET status = 'interrupted', finished_at = ?1
         WHERE status IN ('running', 'paused') AND instance = ?2",
        params![timestamp(at), instance],
    )?;
    tx.commit()?;
    Ok(n)
}

const RUN_COLUMNS: &str =
    "run_id, workflow, actor, user, remote_addr, params, status, current_step, started_at, finished_at, error";

fn run_row(row: &Row<'_>) -> rusqlite::Result<WorkflowRun> {
    let params: String = row.get(5)?;
    let status: String = row.get(6)?;
    Ok(WorkflowRun {
        run_id: row.get(0)?,
        workflow: row.get(1)?,
        actor: row.get(2)?,
        user: row.get(3)?,
        remote_addr: row.get(4)?,
        params: serde_json::from_str(&params).unwrap_or_default(),
        status: RunState::parse(&status).ok_or_else(|| bad_text(6, &status))?,
        current_step: row.get::<_, Option<i64>>(7)?.map(|n| n as usize),
        started_at: row.get(8)?,
        finished_at: row.get(9)?,
        error: error_from(row.get(10)?),
    })
}

/// Runs newest first.
pub(super) fn list(conn: &Connection, q: &WorkflowRunsQuery) -> rusqlite::Result<Vec<WorkflowRun>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM workflow_runs
         WHERE (?3 IS NULL OR workflow = ?3) AND {}
           AND (?5 = 0 OR status IN ('running', 'paused'))
         ORDER BY seq DESC LIMIT ?1 OFFSET ?2",
        visible_on("workflow_runs.servers", "?4")
    ))?;
    let rows = stmt.query_map(
        params![q.limit, q.offset, q.workflow, q.visible.as_json(), q.in_flight],
        run_row,
    )?;
    rows.collect()
}

/// One run with its steps; `None` when unknown.
pub(super) fn get(
    conn: &Connection,
    run_id: &str,
    visible: &Visible,
) -> rusqlite::Result<Option<WorkflowRunDetail>> {
    let run = conn
        .query_row(
            &format!(
                "SELECT {RUN_COLUMNS} FROM workflow_runs WHERE run_id = ?1 AND {}",
                visible_on("workflow_runs.servers", "?2")
            ),
            params![run_id, visible.as_json()],
            run_row,
        )
        .optional()?;
    let Some(run) = run else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT idx, name, kind, plan, status, started_at, duration_ms, exit_status, error,
                output_tail, confirmed_by
         FROM workflow_steps WHERE run_id = ?1 ORDER BY idx",
    )?;
    let steps = stmt
        .query_map(params![run_id], |row| {
            let plan: String = row.get(3)?;
            let status: String = row.get(4)?;
            Ok(WorkflowStep {
                index: row.get::<_, i64>(0)? as usize,
                name: row.get(1)?,
                kind: row.get(2)?,
                plan: serde_json::from_str(&plan).unwrap_or_default(),
                status: StepState::parse(&status).ok_or_else(|| bad_text(4, &status))?,
                started_at: row.get(5)?,
                duration_ms: row.get::<_, Option<i64>>(6)?.map(|n| n as u64),
                exit_status: row.get(7)?,
                error: error_from(row.get(8)?),
                output_tail: row.get(9)?,
                confirmed_by: row.get(10)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(WorkflowRunDetail { run, steps }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pinkpage_actors::workflow::plan::{Action, PlannedStep};

    use super::*;

    fn run(run_id: &str, servers: &[&str]) -> WorkflowWrite {
        WorkflowWrite::Create(NewWorkflowRun {
            run_id: run_id.into(),
            at: crate::records::now(),
            workflow: "w".into(),
            actor: "rest".into(),
            user: "ana".into(),
            remote_addr: None,
            params: BTreeMap::new(),
            steps: vec![PlannedStep {
                index: 0,
                name: "b".into(),
                continue_on_error: false,
                action: Action::Batch {
                    servers: servers.iter().map(|s| (*s).to_owned()).collect(),
                    commands: vec!["true".into()],
                    retries: 0,
                    retry_delay_s: 0.0,
                    stop_on_error: false,
                    timeout_s: 1.0,
                },
            }],
        })
    }

    #[test]
    fn a_reader_sees_only_runs_whose_every_server_it_may_use_and_pages_over_those() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        let writes = [
            run("web", &["web-1"]),
            run("both", &["web-1", "db-1"]),
            run("db", &["db-1"]),
        ];
        apply(&mut conn, &writes).unwrap();
        let query = |visible: Visible, offset: u32| WorkflowRunsQuery {
            limit: 1,
            offset,
            workflow: None,
            visible,
            in_flight: false,
        };
        let web = Visible::OnlyOn(vec!["web-1".into()]);
        let ids = |runs: Vec<WorkflowRun>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
        // one a page: the filter comes before the paging
        assert_eq!(ids(list(&conn, &query(web.clone(), 0)).unwrap()), ["web"]);
        assert!(list(&conn, &query(web.clone(), 1)).unwrap().is_empty());
        assert!(get(&conn, "both", &web).unwrap().is_none());
        assert!(get(&conn, "web", &web).unwrap().is_some());
        let all = WorkflowRunsQuery {
            limit: 10,
            ..query(Visible::All, 0)
        };
        assert_eq!(ids(list(&conn, &all).unwrap()), ["db", "both", "web"]);
    }
}
