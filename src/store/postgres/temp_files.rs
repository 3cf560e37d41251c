//! Records of temporary files on servers, in SQL (migration 6), the
//! PostgreSQL twin of `sqlite::temp_files`: inserted before a file is
//! created, deleted once it is renamed or removed; those a killed daemon
//! left are read at start-up (`left`).

use deadpool_postgres::{Pool, Transaction};
use futures_util::future::BoxFuture;
use pinkpage_actors::files::temp_files::{Machine, RecordedTempFile, TempFile, TempKind};
use pinkpage_actors::AppError;

use super::tx::{apply_each, col, int};
use super::tx::{db_error, pool_error};
use super::PgStore;
use crate::records::TempFileWrite;
use crate::store::{StoreFuture, TempFileStore, Writes};

/// Applies `writes` in order, in one transaction; an insert is written
/// with its id.
pub(super) async fn apply(pool: Pool, writes: Vec<TempFileWrite>) -> Writes {
    apply_each(pool, &writes, |tx, w| Box::pin(write(tx, w))).await
}

async fn write(tx: &Transaction<'_>, w: &TempFileWrite) -> Result<Option<i64>, tokio_postgres::Error> {
    match w {
        TempFileWrite::Insert(f) => insert(tx, f).await.map(Some),
        TempFileWrite::Delete(id) => tx
            .execute("DELETE FROM temp_files WHERE id = $1", &[id])
            .await
            .map(|_| None),
    }
}

async fn insert(tx: &Transaction<'_>, f: &TempFile) -> Result<i64, tokio_postgres::Error> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO temp_files (recorded_at, server, username, host, port, path, kind, instance)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .await?;
    let row = tx
        .query_one(
            &stmt,
            &[
                &crate::records::timestamp(crate::records::now()),
                &f.server,
                &f.machine.username,
                &f.machine.host,
                &i64::from(f.machine.port),
                &f.path,
                &f.kind.as_str(),
                &crate::records::instance(),
            ],
        )
        .await?;
    row.try_get(0)
}

/// Every record `instance` left: at start-up, before this daemon writes
/// any, so all of them are an earlier daemon's leftovers.
pub(super) async fn left(pool: Pool, instance: String) -> Result<Vec<RecordedTempFile>, AppError> {
    let client = pool.get().await.map_err(pool_error)?;
    let rows = client
        .query(
            "SELECT id, server, username, host, port, path, kind FROM temp_files WHERE instance = $1 ORDER BY id",
            &[&instance],
        )
        .await
        .map_err(db_error)?;
    let mut left = Vec::new();
    for row in &rows {
        let id: i64 = col(row, 0)?;
        let kind: String = col(row, 6)?;
        let Some(kind) = TempKind::parse(&kind) else {
            log::error!(id = id, kind = kind.as_str(); "a temporary-file record of an unknown kind; ignored");
            continue;
        };
        left.push(RecordedTempFile {
            attempts: 0,
            id: Some(id),
            file: TempFile {
                server: col(row, 1)?,
                machine: Machine {
                    username: col(row, 2)?,
                    host: col(row, 3)?,
                    port: int(row, 4)?,
                },
                path: col(row, 5)?,
                kind,
            },
        });
    }
    Ok(left)
}

impl TempFileStore for PgStore {
    fn apply(&self, writes: Vec<TempFileWrite>) -> BoxFuture<'static, Writes> {
        self.run(move |pool| apply(pool, writes))
    }

    fn left(&self, instance: &str) -> StoreFuture<Vec<RecordedTempFile>> {
        let instance = instance.to_owned();
        self.run(move |pool| left(pool, instance))
    }
}
