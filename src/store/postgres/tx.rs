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

use super::{db_error, pool_error, settle};

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
use crate::store::{Applied, Writes};

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

/// Applies `records` in order in one transaction, each in a savepoint of
/// its own: a record that breaks a constraint or carries a value its
/// column cannot take is rolled back to its savepoint and
/// [`Applied::Rejected`], and the batch goes on (as SQLite rolls back just
/// the failed statement); any other failure (the connection lost, the
/// database shutting down) fails the whole batch, nothing written: `Err`,
/// to be tried again.
pub(super) async fn apply_each<T: Sync>(pool: Pool, records: &[T], write: WriteOne<T>) -> Writes {
    let mut client = pool.get().await.map_err(pool_error)?;
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
