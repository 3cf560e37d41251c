//! What every domain's SQL shares: applying a batch of records in one
//! transaction, telling a record the store refuses from a store that
//! fails, and the 40000 of a database error. A leaf: the domain files
//! import it, it imports none of them.

use pinkpage_actors::{AppError, ErrorCode};
use rusqlite::{Connection, Transaction};

use crate::store::{Applied, Writes};

/// Applies `records` in order in one transaction: `write` stores one and
/// returns the id the store gave it, if any. A record that breaks a
/// constraint (SQLite rolls back just that statement and the transaction
/// goes on) is [`Applied::Rejected`]; any other failure (a full disk, a
/// lock held past the busy timeout, an I/O error) rolls the whole batch
/// back and is the store's: `Err`, to be tried again.
pub fn apply_each<T>(
    conn: &mut Connection,
    records: &[T],
    mut write: impl FnMut(&Transaction<'_>, &T) -> rusqlite::Result<Option<i64>>,
) -> Writes {
    let tx = conn.transaction().map_err(db_error)?;
    let mut applied = Vec::with_capacity(records.len());
    for record in records {
        match write(&tx, record) {
            Ok(id) => applied.push(Applied::Written(id)),
            Err(e) if is_rejection(&e) => applied.push(Applied::Rejected(e.to_string())),
            Err(e) => return Err(db_error(e)),
        }
    }
    tx.commit().map_err(db_error)?;
    Ok(applied)
}

/// Whether `e` is about the record rather than the store.
fn is_rejection(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => f.code == rusqlite::ErrorCode::ConstraintViolation,
        rusqlite::Error::ToSqlConversionFailure(_) => true,
        _ => false,
    }
}

/// Maps a rusqlite failure to 40000 with its cause.
pub(crate) fn db_error(e: rusqlite::Error) -> AppError {
    AppError::with_detail(ErrorCode::Database, e.to_string())
}

/// The SQL condition "every server of the run is one the reader may see",
/// for a table whose `column` holds the run's servers as a JSON array,
/// with the allowed names bound at `param` as a JSON array (NULL: every
/// run; `Visible::as_json`).
pub fn visible_on(column: &str, param: &str) -> String {
    format!(
        "({param} IS NULL OR NOT EXISTS (SELECT 1 FROM json_each({column}) AS s \
         WHERE s.value NOT IN (SELECT value FROM json_each({param}))))"
    )
}
