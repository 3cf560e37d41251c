//! Health transitions in SQL (migration 2), the PostgreSQL twin of
//! `sqlite::health`: one row each time a server's `is_healthy` flips, at
//! the time of the check that decided it.

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use futures_util::future::BoxFuture;
use pinkpage_actors::health::HealthTransition;
use pinkpage_actors::AppError;

use super::tx::{apply_each, col, flag};
use super::tx::{db_error, pool_error};
use super::PgStore;
use crate::records::HealthEvent;
use crate::store::{HealthStore, StoreFuture, Writes};

/// Records `transitions` in order, in one transaction.
pub(super) async fn record(pool: Pool, transitions: Vec<HealthTransition>) -> Writes {
    apply_each(pool, &transitions, |tx, t| {
        Box::pin(async move { insert(tx, t).await.map(Some) })
    })
    .await
}

async fn insert(tx: &Transaction<'_>, t: &HealthTransition) -> Result<i64, tokio_postgres::Error> {
    let s = &t.status;
    // A transition always follows a check, so last_checked is set; the
    // fallback only guards against a future caller that forgets it.
    let at = s
        .last_checked
        .clone()
        .unwrap_or_else(|| crate::records::timestamp(crate::records::now()));
    let stmt = tx
        .prepare_cached(
            "INSERT INTO health_events (at, server, host, healthy, previous, error, latency_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .await?;
    let row = tx
        .query_one(
            &stmt,
            &[
                &at,
                &s.server_name,
                &s.host,
                &i64::from(s.is_healthy.unwrap_or(false)),
                &t.previous.map(i64::from),
                &s.last_error,
                &s.latency_ms,
            ],
        )
        .await?;
    row.try_get(0)
}

pub(super) async fn list(pool: Pool, server: String, limit: u32) -> Result<Vec<HealthEvent>, AppError> {
    let client = pool.get().await.map_err(pool_error)?;
    let stmt = client
        .prepare_cached(
            "SELECT id, at, server, host, healthy, previous, error, latency_ms
             FROM health_events WHERE server = $1 ORDER BY id DESC LIMIT $2",
        )
        .await
        .map_err(db_error)?;
    let rows = client
        .query(&stmt, &[&server, &i64::from(limit)])
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|r| {
            Ok(HealthEvent {
                id: col(r, 0)?,
                at: col(r, 1)?,
                server_name: col(r, 2)?,
                host: col(r, 3)?,
                is_healthy: flag(r, 4)?,
                previous: col::<Option<i64>>(r, 5)?.map(|p| p != 0),
                error: col(r, 6)?,
                latency_ms: col(r, 7)?,
            })
        })
        .collect()
}

impl HealthStore for PgStore {
    fn record(&self, transitions: Vec<HealthTransition>) -> BoxFuture<'static, Writes> {
        self.run(move |pool| record(pool, transitions))
    }

    fn list(&self, server: String, limit: u32) -> StoreFuture<Vec<HealthEvent>> {
        self.run(move |pool| list(pool, server, limit))
    }

    fn expire(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<u64> {
        self.run(move |pool| super::retention::expire_health(pool, before, limit))
    }
}
