//! The audit trail's SQL on PostgreSQL, as SQLite's `audit`: append
//! (linked into the chain, see `audit_chain`), list, page for export, and
//! the start-up record of work a killed daemon left unfinished.
//!
//! Who owns what: each method is one task on the store's runtime with one
//! pooled connection and one transaction (`super::PgStore::run`). The
//! chain's end belongs to whoever holds the chain record's row lock
//! (`audit_chain::tail`), across instances and the command line; nothing
//! else is shared but the read-only [`Chain`].

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, GenericClient, Transaction};
use futures_util::future::BoxFuture;
use pinkpage_actors::{AppError, ErrorCode};
use tokio_postgres::Row;

use super::audit_chain::{append_after, append_one, append_pipelined, insert_statement, tail};
use super::tx::{db_error, describe, pool_error};
use super::PgStore;
use crate::records::audit::{work_actions, LeftWork, WorkRow};
use crate::records::{audit::Outcome, timestamp, AuditCut, AuditEvent, AuditQuery, NewAuditEvent};
use crate::store::chain::Chain;
use crate::store::{Applied, AuditStore, StoreFuture, Writes};

/// Writes one event inside the caller's transaction `tx`, linked into the
/// chain; returns its id. Takes the chain's lock for the rest of `tx`
/// (`audit_chain::tail`), so the command line can write an account change
/// and its row in one transaction, as on SQLite, whatever the daemons
/// append meanwhile.
pub async fn insert_audit(tx: &Transaction<'_>, chain: &Chain, e: &NewAuditEvent) -> Result<i64, AppError> {
    let end = tail(tx, chain).await?;
    let (ids, _) = append_after(tx, chain, end, crate::records::instance(), [e])
        .await
        .map_err(db_error)?;
    Ok(ids[0])
}

/// Appends `rows` in one transaction, linked into the chain, under its
/// lock: all at once ([`append_pipelined`]), the common case; when that
/// fails on a row's value, again one row at a time ([`append_each`]).
pub async fn append(client: &mut Client, chain: &Chain, rows: &[NewAuditEvent]) -> Writes {
    {
        let tx = client.transaction().await.map_err(db_error)?;
        let end = tail(&tx, chain).await?;
        match append_pipelined(&tx, chain, end, crate::records::instance(), rows).await {
            Ok(ids) => {
                tx.commit().await.map_err(db_error)?;
                return Ok(ids.into_iter().map(|id| Applied::Written(Some(id))).collect());
            }
            // a row refused: the transaction is dropped (rolled back) and
            // the batch written again, one savepoint a row, to find it
            Err(e) if refuses_value(&e) => {}
            Err(e) => return Err(db_error(e)),
        }
    }
    append_each(client, chain, rows).await
}

/// Appends `rows` in one transaction, linked into the chain, under its
/// lock. Each row is written in a savepoint of its own: a row PostgreSQL
/// cannot store (class 22: text with a NUL character, which SQLite takes)
/// is rolled back alone and [`Applied::Rejected`], and takes no id, so the
/// next row links where it would have and the chain skips nothing. Any
/// other failure (a unique id taken included: only a writer outside the
/// lock makes one, and the row is not at fault) leaves the whole batch to
/// be tried again.
async fn append_each(client: &mut Client, chain: &Chain, rows: &[NewAuditEvent]) -> Writes {
    let mut tx = client.transaction().await.map_err(db_error)?;
    let mut end = tail(&tx, chain).await?;
    let insert = insert_statement(&tx).await.map_err(db_error)?;
    let mut applied = Vec::with_capacity(rows.len());
    for row in rows {
        let record = tx.savepoint("audit_row").await.map_err(db_error)?;
        match append_one(&record, &insert, chain, end, crate::records::instance(), row).await {
            Ok(linked) => {
                record.commit().await.map_err(db_error)?;
                end = linked;
                applied.push(Applied::Written(Some(linked.id)));
            }
            Err(e) if refuses_value(&e) => {
                record.rollback().await.map_err(db_error)?;
                applied.push(Applied::Rejected(describe(&e)));
            }
            Err(e) => return Err(db_error(e)),
        }
    }
    tx.commit().await.map_err(db_error)?;
    Ok(applied)
}

/// Whether `e` refuses a value of the row (class 22, data exception)
/// rather than the store failing.
fn refuses_value(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| c.code().starts_with("22"))
}

/// Rows of work read per query at start-up: the scan holds one page and
/// the work still open, however long the last daemon ran.
const WORK_PAGE: i64 = 1000;

/// As SQLite's `interrupt_left_work_and_start`: finds the commands,
/// transfers and scripts `instance`'s previous daemon started and never
/// ended (only rows since its previous `daemon.start` are read; an
/// `.interrupted` row closes its start), records each as
/// `<kind>.interrupted`, stamped now, under the same actor, user and server
/// as its start, with the start's time and row in `detail`; then writes
/// this daemon's `daemon.start`. One transaction. The rows are read before
/// the chain's lock is taken, so a long scan never holds up the other
/// instances' appends: `instance`'s work rows are written by its daemon
/// only, and it does not serve yet. Returns the `.interrupted` actions
/// written.
pub(super) async fn interrupt_left_work_and_start(
    client: &mut Client,
    chain: &Chain,
    instance: &str,
) -> Result<Vec<String>, AppError> {
    let tx = client.transaction().await.map_err(db_error)?;
    let mut rows = left_work(&tx, instance).await?;
    let written: Vec<String> = rows.iter().map(|e| e.action.clone()).collect();
    rows.push(NewAuditEvent::new("system", "daemon.start"));
    let end = tail(&tx, chain).await?;
    for event in &mut rows {
        // the time of discovery, as late as the lock lets it be
        event.at = crate::records::now();
    }
    append_after(&tx, chain, end, crate::records::instance(), &rows)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(written)
}

/// The `.interrupted` rows to write for the work `instance` left open,
/// oldest start first (SQLite's `interrupt_left_work`, without the
/// writing).
async fn left_work(client: &impl GenericClient, instance: &str) -> Result<Vec<NewAuditEvent>, AppError> {
    let since: i64 = client
        .query_one(
            "SELECT coalesce(max(id), 0) FROM audit_events WHERE action = 'daemon.start' AND instance = $1",
            &[&instance],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(db_error)?;
    let actions = work_actions();
    let page = client
        .prepare(
            "SELECT id, at, actor, action, server, command, \"user\", remote_addr, detail, domain, target
             FROM audit_events
             WHERE id > $1 AND instance = $2 AND action = ANY($3) ORDER BY id LIMIT $4",
        )
        .await
        .map_err(db_error)?;
    let mut left = LeftWork::default();
    let mut after = since;
    loop {
        let rows = client
            .query(&page, &[&after, &instance, &actions, &WORK_PAGE])
            .await
            .map_err(db_error)?;
        for row in &rows {
            after = row.try_get(0).map_err(db_error)?;
            left.follow(work_row(row).map_err(db_error)?);
        }
        if (rows.len() as i64) < WORK_PAGE {
            break;
        }
    }
    Ok(left.interrupted())
}

/// A row read by [`left_work`]'s query.
fn work_row(row: &Row) -> Result<WorkRow, tokio_postgres::Error> {
    Ok(WorkRow {
        id: row.try_get(0)?,
        at: row.try_get(1)?,
        actor: row.try_get(2)?,
        action: row.try_get(3)?,
        server: row.try_get(4)?,
        command: row.try_get(5)?,
        user: row.try_get(6)?,
        remote_addr: row.try_get(7)?,
        detail: row.try_get(8)?,
        domain: row.try_get(9)?,
        target: row.try_get(10)?,
    })
}

/// The columns a stored event is read with ([`event_of`]): the chain's,
/// then the MAC (a unit test holds them together).
const EVENT_COLUMNS: &str = "id, instance, at, actor, \"user\", remote_addr, domain, action, server, target, outcome, code, command, exit_status, bytes, detail, mac";

/// Column `i` of `r`, or the 40000 of a value of another type.
fn get<'r, T: tokio_postgres::types::FromSql<'r>>(r: &'r Row, i: usize) -> Result<T, AppError> {
    r.try_get(i).map_err(db_error)
}

/// A stored event read with [`EVENT_COLUMNS`].
fn event_of(r: &Row) -> Result<AuditEvent, AppError> {
    let broken = |why: String| AppError::with_detail(ErrorCode::Database, why);
    let at: String = get(r, 2)?;
    let action: String = get(r, 7)?;
    let domain: Option<String> = get(r, 6)?;
    let outcome: Option<String> = get(r, 10)?;
    let outcome = match outcome {
        None => None,
        Some(o) => Some(Outcome::parse(&o).ok_or_else(|| {
            broken(format!(
                "audit row has an unknown outcome '{o}' (run pinkpage audit verify)"
            ))
        })?),
    };
    let detail: Option<String> = get(r, 15)?;
    let code: Option<i64> = get(r, 11)?;
    Ok(AuditEvent {
        id: get(r, 0)?,
        instance: get(r, 1)?,
        event: NewAuditEvent {
            at: DateTime::parse_from_rfc3339(&at)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| broken(format!("audit row has a time that is not RFC 3339 ('{at}'): {e}")))?,
            actor: get(r, 3)?,
            user: get(r, 4)?,
            remote_addr: get(r, 5)?,
            domain: domain.unwrap_or_else(|| crate::records::audit::domain_of(&action).to_owned()),
            action,
            server: get(r, 8)?,
            target: get(r, 9)?,
            outcome,
            code: code.and_then(|c| u32::try_from(c).ok()),
            command: get(r, 12)?,
            exit_status: get(r, 13)?,
            bytes: get(r, 14)?,
            detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
        },
        mac: get(r, 16)?,
    })
}

/// `expr` with ASCII letters lowered and nothing else: SQLite's `lower`
/// (PostgreSQL's follows the locale, which would find a search for `É` in
/// no row that has it).
fn ascii_lower(expr: &str) -> String {
    format!("translate({expr}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')")
}

/// Events newest first (see [`AuditQuery`]): every filter in the query, so
/// a page is full whatever it filters. The same conditions as SQLite's
/// `list`.
async fn list(client: &impl GenericClient, q: &AuditQuery) -> Result<Vec<AuditEvent>, AppError> {
    let contains = |column: &str| {
        format!(
            "strpos({}, $8) > 0",
            ascii_lower(&format!("coalesce({column}, '')"))
        )
    };
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events
             WHERE ($1::bigint IS NULL OR id < $1) AND ($2::text IS NULL OR action = $2)
               AND ($3::text IS NULL OR \"user\" = $3)
               AND ($4::text IS NULL OR server = $4) AND ($5::text IS NULL OR domain = $5)
               AND ($6::text IS NULL OR at >= $6) AND ($7::text IS NULL OR at < $7)
               AND ($8::text IS NULL OR {} OR {} OR {})
             ORDER BY id DESC LIMIT $9",
            contains("command"),
            contains("target"),
            contains("detail"),
        ))
        .await
        .map_err(db_error)?;
    let rows = client
        .query(
            &stmt,
            &[
                &q.before_id,
                &q.action,
                &q.user,
                &q.server,
                &q.domain,
                &q.since.map(timestamp),
                &q.until.map(timestamp),
                &q.text.as_ref().map(|t| t.to_ascii_lowercase()),
                &i64::from(q.limit),
            ],
        )
        .await
        .map_err(db_error)?;
    rows.iter().map(event_of).collect()
}

/// At most `limit` events with ids above `after_id`, oldest first: a page
/// of the export (`GET /api/v1/audit/export`).
async fn page_after(
    client: &impl GenericClient,
    after_id: i64,
    limit: u32,
) -> Result<Vec<AuditEvent>, AppError> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .await
        .map_err(db_error)?;
    let rows = client
        .query(&stmt, &[&after_id, &i64::from(limit)])
        .await
        .map_err(db_error)?;
    rows.iter().map(event_of).collect()
}

impl AuditStore for PgStore {
    fn append(&self, rows: Vec<NewAuditEvent>) -> BoxFuture<'static, Writes> {
        let chain = self.chain.clone();
        self.run(move |pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            append(&mut client, &chain, &rows).await
        })
    }

    fn list(&self, query: AuditQuery) -> StoreFuture<Vec<AuditEvent>> {
        self.run(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            list(&client, &query).await
        })
    }

    fn page_after(&self, after_id: i64, limit: u32) -> StoreFuture<Vec<AuditEvent>> {
        self.run(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            page_after(&client, after_id, limit).await
        })
    }

    fn cut(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Option<AuditCut>> {
        let chain = self.chain.clone();
        self.run(move |pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            super::audit_chain::cut(&mut client, &chain, before, limit).await
        })
    }

    fn interrupt_left_work_and_start(&self, instance: &str) -> StoreFuture<Vec<String>> {
        let instance = instance.to_owned();
        let chain = self.chain.clone();
        self.run(move |pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            interrupt_left_work_and_start(&mut client, &chain, &instance).await
        })
    }
}

#[cfg(test)]
mod tests;
