//! BMX4 runs and their per-command results, in SQL (migration 3).

use chrono::{DateTime, Utc};
use pinkpage_actors::batch::plan::{CommandResult, CommandStatus};
use pinkpage_actors::{AppError, ErrorCode};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::tx::{apply_each, visible_on};
use crate::records::batch::{ResultsPage, RESULTS_PAGE_MAX_BYTES};
use crate::records::{
    timestamp, BatchEnd, BatchRun, BatchRunDetail, BatchRunStatus, BatchWrite, NewBatchRun, Visible,
};
use crate::store::Writes;

/// Applies `writes` in order, in one transaction.
pub(super) fn apply(conn: &mut Connection, writes: &[BatchWrite]) -> Writes {
    apply_each(conn, writes, |tx, w| match w {
        BatchWrite::Create(r) => create(tx, r).map(|()| None),
        BatchWrite::Result(r) => result(tx, r).map(|()| None),
        BatchWrite::End(e) => end(tx, e).map(|()| None),
    })
}

fn create(conn: &Connection, r: &NewBatchRun) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO batch_runs (run_id, actor, started_at, status, servers, commands,
            stop_on_error, retries, retry_delay_ms, timeout_s, user, remote_addr, instance)
         VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            r.run_id,
            r.actor,
            timestamp(r.at),
            to_json(&r.servers),
            to_json(&r.commands),
            r.stop_on_error,
            r.retries,
            r.retry_delay_ms as i64,
            r.timeout_s,
            r.user,
            r.remote_addr,
            crate::records::instance(),
        ],
    )?;
    Ok(())
}

fn result(conn: &Connection, r: &CommandResult) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO batch_results (run_id, server, idx, command, status, exit_status,
            exit_signal, stdout, stderr, truncated, attempts, duration_ms, error_code, error_detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            r.run_id,
            r.server,
            r.index as i64,
            r.command,
            r.status.as_str(),
            r.exit_status,
            r.exit_signal,
            r.stdout,
            r.stderr,
            r.truncated,
            r.attempts,
            r.duration_ms as i64,
            r.error.as_ref().map(|e| e.code.code()),
            r.error.as_ref().and_then(|e| e.detail.clone()),
        ],
    )?;
    Ok(())
}

/// Finishes a run still `running`. A run that is not (a second end, or one
/// the start-up marked `interrupted`) is left as it is and logged: only
/// its recorder ends a run, once, so this must be looked into.
fn end(conn: &Connection, e: &BatchEnd) -> rusqlite::Result<()> {
    let changed = conn.execute(
        "UPDATE batch_runs SET status = ?2, finished_at = ?3, succeeded = ?4, failed = ?5,
            skipped = ?6, duration_ms = ?7
         WHERE run_id = ?1 AND status = 'running'",
        params![
            e.run_id,
            e.status.as_str(),
            timestamp(e.at),
            e.succeeded,
            e.failed,
            e.skipped,
            e.duration_ms as i64
        ],
    )?;
    if changed == 0 {
        log::error!(run_id = e.run_id.as_str(); "batch run was not running when its end was written");
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

fn from_json(text: String) -> Vec<String> {
    serde_json::from_str(&text).unwrap_or_default()
}

const RUN_COLUMNS: &str = "run_id, actor, started_at, finished_at, status, servers, commands, stop_on_error,
    retries, retry_delay_ms, timeout_s, succeeded, failed, skipped, duration_ms, user, remote_addr";

/// A run row (in [`RUN_COLUMNS`] order) and its commands.
fn run_from_row(r: &Row<'_>) -> rusqlite::Result<(BatchRun, Vec<String>)> {
    let commands = from_json(r.get(6)?);
    let status: String = r.get(4)?;
    let run = BatchRun {
        run_id: r.get(0)?,
        actor: r.get(1)?,
        started_at: r.get(2)?,
        finished_at: r.get(3)?,
        status: BatchRunStatus::parse(&status).ok_or_else(|| bad_text(4, &status))?,
        servers: from_json(r.get(5)?),
        command_count: commands.len(),
        stop_on_error: r.get(7)?,
        retries: r.get(8)?,
        retry_delay_ms: r.get::<_, i64>(9)? as u64,
        timeout_s: r.get(10)?,
        succeeded: r.get(11)?,
        failed: r.get(12)?,
        skipped: r.get(13)?,
        duration_ms: r.get::<_, Option<i64>>(14)?.map(|d| d as u64),
        user: r.get(15)?,
        remote_addr: r.get(16)?,
    };
    Ok((run, commands))
}

/// A stored name this code does not know (a database written by a newer
/// version): an error of that row, not a panic.
pub(super) fn bad_text(column: usize, text: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("unknown value {text:?}").into(),
    )
}

/// Runs `visible` allows, newest first.
pub(super) fn list(
    conn: &Connection,
    limit: u32,
    offset: u32,
    visible: &Visible,
) -> rusqlite::Result<Vec<BatchRun>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RUN_COLUMNS} FROM batch_runs WHERE {} ORDER BY seq DESC LIMIT ?1 OFFSET ?2",
        visible_on("batch_runs.servers", "?3")
    ))?;
    let rows = stmt.query_map(params![limit, offset, visible.as_json()], |r| {
        run_from_row(r).map(|(run, _)| run)
    })?;
    rows.collect()
}

fn result_from_row(run_id: &str, r: &Row<'_>) -> rusqlite::Result<CommandResult> {
    let code: Option<u32> = r.get(11)?;
    let detail: Option<String> = r.get(12)?;
    let status: String = r.get(3)?;
    let status = match status.as_str() {
        "succeeded" => CommandStatus::Succeeded,
        "failed" => CommandStatus::Failed,
        "skipped" => CommandStatus::Skipped,
        other => return Err(bad_text(3, other)),
    };
    Ok(CommandResult {
        run_id: run_id.to_owned(),
        server: r.get(0)?,
        index: r.get::<_, i64>(1)? as usize,
        command: r.get(2)?,
        status,
        exit_status: r.get(4)?,
        exit_signal: r.get(5)?,
        stdout: r.get(6)?,
        stderr: r.get(7)?,
        truncated: r.get(8)?,
        attempts: r.get(9)?,
        duration_ms: r.get::<_, i64>(10)? as u64,
        error: code.map(|code| AppError {
            code: ErrorCode::from_code(code).unwrap_or(ErrorCode::Internal),
            detail,
        }),
    })
}

/// One run with a page of its results: at most `page.limit` from
/// `page.offset`, and at most [`RESULTS_PAGE_MAX_BYTES`] of output, read
/// one row at a time (a page cut at the byte bound never had the rest in
/// memory); `None` when unknown.
pub(super) fn get(
    conn: &Connection,
    run_id: &str,
    page: ResultsPage,
    visible: &Visible,
) -> rusqlite::Result<Option<BatchRunDetail>> {
    let found = conn
        .query_row(
            &format!(
                "SELECT {RUN_COLUMNS} FROM batch_runs WHERE run_id = ?1 AND {}",
                visible_on("batch_runs.servers", "?2")
            ),
            params![run_id, visible.as_json()],
            run_from_row,
        )
        .optional()?;
    let Some((run, commands)) = found else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT server, idx, command, status, exit_status, exit_signal, stdout, stderr, truncated,
            attempts, duration_ms, error_code, error_detail
         FROM batch_results WHERE run_id = ?1 ORDER BY server, idx LIMIT ?2 OFFSET ?3",
    )?;
    let rows = stmt.query_map(params![run_id, page.limit, page.offset as i64], |r| {
        result_from_row(run_id, r)
    })?;
    let mut results: Vec<CommandResult> = Vec::new();
    let mut bytes = 0usize;
    for row in rows {
        let result = row?;
        let size = result.stdout.len() + result.stderr.len();
        if !results.is_empty() && bytes + size > RESULTS_PAGE_MAX_BYTES {
            break;
        }
        bytes += size;
        results.push(result);
    }
    let results_total: i64 = conn.query_row(
        "SELECT COUNT(*) FROM batch_results WHERE run_id = ?1",
        params![run_id],
        |r| r.get(0),
    )?;
    let results_total = results_total.max(0) as u64;
    let end = page.offset + results.len() as u64;
    Ok(Some(BatchRunDetail {
        run,
        commands,
        results,
        results_total,
        next_offset: (end < results_total).then_some(end),
    }))
}

/// Marks `instance`'s runs still `running` as `interrupted`, at `at`; how
/// many. Their results so far stay as stored.
pub(super) fn interrupt_left(
    conn: &Connection,
    instance: &str,
    at: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE batch_runs SET status = 'interrupted', finished_at = ?1 WHERE status = 'running' AND instance = ?2",
        params![timestamp(at), instance],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(run_id: &str, servers: &[&str]) -> BatchWrite {
        BatchWrite::Create(NewBatchRun {
            run_id: run_id.into(),
            at: crate::records::now(),
            actor: "c".into(),
            user: Some("ana".into()),
            remote_addr: None,
            servers: servers.iter().map(|s| (*s).to_owned()).collect(),
            commands: vec!["true".into()],
            stop_on_error: false,
            retries: 0,
            retry_delay_ms: 0,
            timeout_s: None,
        })
    }

    #[test]
    fn a_reader_sees_only_batch_runs_whose_every_server_it_may_use() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut conn).unwrap();
        apply(
            &mut conn,
            &[run("web", &["web-1"]), run("both", &["web-1", "db-1"])],
        )
        .unwrap();
        let web = Visible::OnlyOn(vec!["web-1".into()]);
        let listed: Vec<String> = list(&conn, 10, 0, &web)
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(listed, ["web"]);
        assert!(get(&conn, "both", ResultsPage::FIRST, &web).unwrap().is_none());
        assert!(get(&conn, "both", ResultsPage::FIRST, &Visible::All)
            .unwrap()
            .is_some());
        assert_eq!(list(&conn, 10, 0, &Visible::All).unwrap().len(), 2);
    }
}
