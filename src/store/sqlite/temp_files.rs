//! Records of temporary files on servers, in SQL (migration 6): inserted
//! before a file is created, deleted once it is renamed or removed; those
//! a killed daemon left are read at start-up (`left`).

use pinkpage_actors::files::temp_files::{Machine, RecordedTempFile, TempFile, TempKind};
use rusqlite::{params, Connection};

use super::tx::apply_each;
use crate::records::TempFileWrite;
use crate::store::Writes;

/// Applies `writes` in order, in one transaction; an insert is written
/// with its id.
pub(super) fn apply(conn: &mut Connection, writes: &[TempFileWrite]) -> Writes {
    apply_each(conn, writes, |tx, w| match w {
        TempFileWrite::Insert(f) => insert(tx, f).map(Some),
        TempFileWrite::Delete(id) => tx
            .execute("DELETE FROM temp_files WHERE id = ?1", params![id])
            .map(|_| None),
    })
}

fn insert(conn: &Connection, f: &TempFile) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO temp_files (recorded_at, server, username, host, port, path, kind, instance)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            crate::records::timestamp(crate::records::now()),
            f.server,
            f.machine.username,
            f.machine.host,
            f.machine.port,
            f.path,
            f.kind.as_str(),
            crate::records::instance(),
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Every record `instance` left: at start-up, before this daemon writes
/// any, so all of them are an earlier daemon's leftovers.
pub(super) fn left(conn: &Connection, instance: &str) -> rusqlite::Result<Vec<RecordedTempFile>> {
    let mut stmt = conn.prepare(
        "SELECT id, server, username, host, port, path, kind FROM temp_files WHERE instance = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([instance], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            Machine {
                username: row.get(2)?,
                host: row.get(3)?,
                port: row.get(4)?,
            },
            row.get::<_, String>(5)?,
            row.get::<_, String>(6)?,
        ))
    })?;
    let mut left = Vec::new();
    for row in rows {
        let (id, server, machine, path, kind) = row?;
        let Some(kind) = TempKind::parse(&kind) else {
            log::error!(id = id, kind = kind.as_str(); "a temporary-file record of an unknown kind; ignored");
            continue;
        };
        left.push(RecordedTempFile {
            attempts: 0,
            id: Some(id),
            file: TempFile {
                server,
                machine,
                path,
                kind,
            },
        });
    }
    Ok(left)
}
