//! The recordings index's SQL: starts, ends and removals through the
//! journal; the listing, one recording, start-up marking of recordings a
//! killed daemon left open, and the retention sweep's candidates.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::tx::apply_each;
use crate::records::recording::{Recording, RecordingState, RecordingWrite, RecordingsQuery};
use crate::records::{instance, timestamp};
use crate::store::Writes;

const COLUMNS: &str = "id, kind, user, server, command, terminal_id, run_id, step, started_at, ended_at, \
                       state, reason, exit_status, error, bytes, width, height, file";

/// Applies `writes` in order in one transaction. An end only ends a
/// recording still `recording` (an end after a start-up marked it
/// interrupted changes nothing); a start of a known id is rejected.
pub(super) fn apply(conn: &mut Connection, writes: &[RecordingWrite]) -> Writes {
    apply_each(conn, writes, |tx, w| {
        match w {
            RecordingWrite::Start(r) => {
                tx.execute(
                    &format!(
                        "INSERT INTO recordings ({COLUMNS}, instance) VALUES \
                         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
                    ),
                    params![
                        r.id,
                        r.kind,
                        r.user,
                        r.server,
                        r.command,
                        r.terminal_id,
                        r.run_id,
                        r.step,
                        timestamp(r.started_at),
                        r.ended_at.map(timestamp),
                        r.state.as_str(),
                        r.reason,
                        r.exit_status,
                        r.error,
                        r.bytes,
                        r.width,
                        r.height,
                        r.file,
                        instance(),
                    ],
                )?;
            }
            RecordingWrite::End {
                id,
                at,
                state,
                reason,
                exit_status,
                error,
                bytes,
            } => {
                tx.execute(
                    "UPDATE recordings SET ended_at = ?2, state = ?3, reason = ?4, exit_status = ?5, \
                     error = ?6, bytes = ?7 WHERE id = ?1 AND state = 'recording'",
                    params![
                        id,
                        timestamp(*at),
                        state.as_str(),
                        reason,
                        exit_status,
                        error,
                        bytes
                    ],
                )?;
            }
            RecordingWrite::Remove(id) => {
                tx.execute("DELETE FROM recordings WHERE id = ?1", [id])?;
            }
        }
        Ok(None)
    })
}

fn time(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let text: Option<String> = row.get(i)?;
    text.map(|t| {
        DateTime::parse_from_rfc3339(&t)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
            })
    })
    .transpose()
}

fn recording(row: &Row<'_>) -> rusqlite::Result<Recording> {
    let id: String = row.get(0)?;
    let state: String = row.get(10)?;
    Ok(Recording {
        pty_id: id.clone(),
        id,
        kind: row.get(1)?,
        user: row.get(2)?,
        server: row.get(3)?,
        command: row.get(4)?,
        terminal_id: row.get(5)?,
        run_id: row.get(6)?,
        step: row.get(7)?,
        started_at: time(row, 8)?.unwrap_or_default(),
        ended_at: time(row, 9)?,
        state: RecordingState::parse(&state).unwrap_or(RecordingState::Interrupted),
        reason: row.get(11)?,
        exit_status: row.get(12)?,
        error: row.get(13)?,
        bytes: row.get(14)?,
        width: row.get(15)?,
        height: row.get(16)?,
        file: row.get(17)?,
    })
}

/// The recordings `q` asks for, newest first.
pub(super) fn list(conn: &Connection, q: &RecordingsQuery) -> rusqlite::Result<Vec<Recording>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM recordings
         WHERE (?1 IS NULL OR user = ?1) AND (?2 IS NULL OR server = ?2)
           AND (?3 IS NULL OR started_at >= ?3) AND (?4 IS NULL OR started_at < ?4)
           AND (?5 IS NULL OR instr(command, ?5) > 0) AND (?6 IS NULL OR run_id = ?6)
           AND (?7 IS NULL OR server IN (SELECT value FROM json_each(?7)))
           AND (?8 IS NULL OR user = ?8)
         ORDER BY started_at DESC, id DESC LIMIT ?9 OFFSET ?10"
    ))?;
    let rows = stmt.query_map(
        params![
            q.user,
            q.server,
            q.since.map(timestamp),
            q.until.map(timestamp),
            q.text,
            q.run_id,
            q.visible.as_json(),
            q.owner,
            q.limit,
            q.offset,
        ],
        recording,
    )?;
    rows.collect()
}

/// One recording, whoever's it is (the caller judges access).
pub(super) fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Recording>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM recordings WHERE id = ?1"),
        [id],
        recording,
    )
    .optional()
}

/// Marks `instance`'s recordings still `recording` as `interrupted` (a
/// killed daemon left them open), at `at`; how many.
pub(super) fn interrupt_left(
    conn: &Connection,
    instance: &str,
    at: DateTime<Utc>,
) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE recordings SET state = 'interrupted', reason = 'interrupted', ended_at = ?2 \
         WHERE state = 'recording' AND instance = ?1",
        params![instance, timestamp(at)],
    )
}

/// What retention removes, oldest first, at most `limit`: finished
/// recordings started before `before`, then the oldest finished ones
/// while all of them together hold more than `max_bytes`.
pub(super) fn expired(
    conn: &Connection,
    before: DateTime<Utc>,
    max_bytes: u64,
    limit: u32,
) -> rusqlite::Result<Vec<Recording>> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM recordings WHERE state != 'recording' AND started_at < ?1 \
         ORDER BY started_at, id LIMIT ?2"
    ))?;
    let old = stmt.query_map(params![timestamp(before), limit], recording)?;
    for r in old {
        out.push(r?);
    }
    let total: i64 = conn.query_row("SELECT coalesce(sum(bytes), 0) FROM recordings", [], |r| r.get(0))?;
    let mut over = total - out.iter().map(|r| r.bytes).sum::<i64>() - max_bytes.min(i64::MAX as u64) as i64;
    if over > 0 && out.len() < limit as usize {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE state != 'recording' AND started_at >= ?1 \
             ORDER BY started_at, id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![timestamp(before), limit as usize - out.len()], recording)?;
        for r in rows {
            if over <= 0 {
                break;
            }
            let r = r?;
            over -= r.bytes;
            out.push(r);
        }
    }
    Ok(out)
}
