//! Applies the schema's steps ([`crate::store::migrations`]) on
//! PostgreSQL: `pinkpage_schema` holds how many have been applied. Each
//! runs once, in its own transaction (PostgreSQL's DDL is transactional),
//! in order. Instances starting together migrate one at a time: each takes
//! a transaction-scoped advisory lock first and reads the version under
//! it, so the second finds the first's work done.

use deadpool_postgres::Client;

use crate::store::migrations::MIGRATIONS;

/// The advisory lock key every instance's migration takes (an arbitrary
/// constant: "pinkpage" in ASCII, folded into 63 bits).
const MIGRATION_LOCK: i64 = 0x0070_696e_6b70_6167;

/// Applies every step the database has not seen yet.
pub async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS pinkpage_schema (version BIGINT NOT NULL)")
        .await
        .or_else(|e| {
            // two instances creating it at once: one loses the race on the
            // catalog's unique indexes (of tables: 42P07, of their row
            // types: 42710, or the raw 23505), and the table is there
            if e.code()
                .is_some_and(|c| matches!(c.code(), "23505" | "42P07" | "42710"))
            {
                Ok(())
            } else {
                Err(e)
            }
        })?;
    loop {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let applied: i64 = match tx.query_opt("SELECT version FROM pinkpage_schema", &[]).await? {
            Some(row) => row.get(0),
            None => {
                tx.execute("INSERT INTO pinkpage_schema (version) VALUES (0)", &[])
                    .await?;
                0
            }
        };
        let Some(step) = MIGRATIONS.get(applied as usize) else {
            return tx.commit().await;
        };
        tx.batch_execute(step.postgres).await?;
        tx.execute("UPDATE pinkpage_schema SET version = $1", &[&(applied + 1)])
            .await?;
        tx.commit().await?;
        log::info!(version = applied + 1; "database migrated");
    }
}

/// How many steps the database has applied (0: none, or not ours yet).
pub async fn version(client: &Client) -> Result<i64, tokio_postgres::Error> {
    version_of(client).await
}

/// [`version`] on any connection.
pub async fn version_of(client: &tokio_postgres::Client) -> Result<i64, tokio_postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('pinkpage_schema') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_opt("SELECT version FROM pinkpage_schema", &[])
        .await?
        .map(|r| r.get(0))
        .unwrap_or(0))
}
