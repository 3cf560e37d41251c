//! What every domain's SQL here shares, as `sqlite::tx` does there:
//! applying a batch of records in one transaction, a savepoint per record
//! ([`apply_each`]), reading a row's columns without a panic on a value the
//! code does not expect ([`col`], [`int`], [`bad_text`]), and text that
//! PostgreSQL can hold ([`pg_text`]). A leaf: the domain files import it,
//! it imports none of them.

use std::borrow::Cow;

use deadpool_postgres::{Pool, Transaction};
use futures_util::future::BoxFuture;
use pinkpage_actors::{AppError, ErrorCode};
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use crate::store::{unavailable, Applied, Writes};

/// A read-only transaction with one snapshot for all its statements
/// (repeatable read): for the reads of several statements that must agree
/// (a run and its page, the chain and its rows).
pub async fn snapshot(
    client: &mut deadpool_postgres::Client,
) -> Result<Transaction<'_>, tokio_postgres::Error> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
}

/// `text` as PostgreSQL can store it: its text type cannot hold NUL
/// (SQLite's can), so each NUL becomes U+FFFD, the replacement character,
/// instead of the whole record being refused. For what a remote program
/// printed or an operator typed (outputs, commands), where a NUL can come.
pub fn pg_text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// One record's SQL, run inside the record's savepoint: the id the store
/// gave it, if any.
pub(super) type WriteOne<T> =
    for<'t> fn(&'t Transaction<'t>, &'t T) -> BoxFuture<'t, Result<Option<i64>, tokio_postgres::Error>>;

/// Applies `records` in order in one transaction: first all at once; when
/// one is refused, again, each in a savepoint of its own: a record that
/// breaks a constraint or carries a value its
/// column cannot take is rolled back to its savepoint and
/// [`Applied::Rejected`], and the batch goes on (as SQLite rolls back just
/// the failed statement); any other failure (the connection lost, the
/// database shutting down) fails the whole batch, nothing written: `Err`,
/// to be tried again.
pub(super) async fn apply_each<T: Sync>(pool: Pool, records: &[T], write: WriteOne<T>) -> Writes {
    let mut client = pool.get().await.map_err(pool_error)?;
    // the common case: every record stores, and no savepoint is needed
    // (two round trips a record fewer); a record refused spoils this
    // transaction, which is dropped (rolled back) for the careful way
    {
        let tx = client.transaction().await.map_err(db_error)?;
        let mut applied: Vec<Applied> = Vec::with_capacity(records.len());
        let mut refused = false;
        for record in records {
            match write(&tx, record).await {
                Ok(id) => applied.push(Applied::Written(id)),
                Err(e) if is_rejection(&e) => {
                    refused = true;
                    break;
                }
                Err(e) => return Err(db_error(e)),
            }
        }
        if !refused {
            tx.commit().await.map_err(db_error)?;
            return Ok(applied);
        }
    }
    let mut tx = client.transaction().await.map_err(db_error)?;
    let mut applied: Vec<Applied> = Vec::with_capacity(records.len());
    for record in records {
        let sp = tx.savepoint("record").await.map_err(db_error)?;
        let written = write(&sp, record).await;
        applied.push(settle(sp, written).await?);
    }
    tx.commit().await.map_err(db_error)?;
    Ok(applied)
}

/// Column `i` of `row`; a value of another type than the code reads (a
/// database changed by hand, or by a newer version) is the store's 40000,
/// not a panic.
pub(super) fn col<'r, T: FromSql<'r>>(row: &'r Row, i: usize) -> Result<T, AppError> {
    row.try_get(i).map_err(db_error)
}

/// A `BIGINT` column as the narrower integer of the record, checked.
pub(super) fn int<T: TryFrom<i64>>(row: &Row, i: usize) -> Result<T, AppError> {
    let n: i64 = col(row, i)?;
    T::try_from(n).map_err(|_| bad_value(row, i, &n.to_string()))
}

/// A nullable `BIGINT` column as the narrower integer of the record,
/// checked.
pub(super) fn opt_int<T: TryFrom<i64>>(row: &Row, i: usize) -> Result<Option<T>, AppError> {
    let n: Option<i64> = col(row, i)?;
    n.map(|n| T::try_from(n).map_err(|_| bad_value(row, i, &n.to_string())))
        .transpose()
}

/// A 0/1 `BIGINT` column as a flag (anything but 0 is set, as SQLite
/// reads it).
pub(super) fn flag(row: &Row, i: usize) -> Result<bool, AppError> {
    Ok(col::<i64>(row, i)? != 0)
}

/// A stored name this code does not know (a database written by a newer
/// version) in column `i`: an error of that row, not a panic.
pub(super) fn bad_text(row: &Row, i: usize, text: &str) -> AppError {
    bad_value(row, i, &format!("{text:?}"))
}

fn bad_value(row: &Row, i: usize, value: &str) -> AppError {
    let column = row.columns().get(i).map_or("?", |c| c.name());
    AppError::with_detail(
        ErrorCode::Database,
        format!("column {column}: unknown value {value}"),
    )
}

/// The 40000 of a pool that cannot hand out a connection (the database is
/// down, unreachable or refuses us).
pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> AppError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => unavailable(describe(&e)),
        PoolError::Timeout(_) => unavailable("no database connection within 5 s"),
        other => unavailable(other),
    }
}

/// A database error's words, without the parameters or rows it may quote
/// (a `DETAIL` can repeat a unique value, say a hash): the SQLSTATE, the
/// severity and the message.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.code().code(), db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// Maps a database failure to 40000 with its cause.
pub(crate) fn db_error(e: tokio_postgres::Error) -> AppError {
    AppError::with_detail(ErrorCode::Database, describe(&e))
}

/// Whether `e` is about the record rather than the store: a broken
/// constraint (class 23) or a value the column cannot take (class 22).
pub(crate) fn is_rejection(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| c.code().starts_with("23") || c.code().starts_with("22"))
}

/// Ends the savepoint `record` of one record of a batch with what writing
/// it gave: released when written, rolled back to when the record is
/// refused ([`Applied::Rejected`]); any other failure is the store's.
pub(crate) async fn settle(
    record: deadpool_postgres::Transaction<'_>,
    written: Result<Option<i64>, tokio_postgres::Error>,
) -> Result<Applied, AppError> {
    match written {
        Ok(id) => {
            record.commit().await.map_err(db_error)?;
            Ok(Applied::Written(id))
        }
        Err(e) if is_rejection(&e) => {
            record.rollback().await.map_err(db_error)?;
            Ok(Applied::Rejected(describe(&e)))
        }
        Err(e) => Err(db_error(e)),
    }
}

/// The SQL condition "every server of the run is one the reader may see",
/// for a column holding the run's servers as a JSON array, with the
/// allowed names bound at `param` as a JSON array text (NULL: every run;
/// `Visible::as_json`). PostgreSQL's twin of SQLite's `visible_on`.
pub fn visible_on(column: &str, param: &str) -> String {
    format!(
        "({param}::text IS NULL OR NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text({column}::jsonb) AS s(v) \
         WHERE s.v NOT IN (SELECT jsonb_array_elements_text({param}::text::jsonb))))"
    )
}
