//! The audit chain's SQL on PostgreSQL (the chain itself is
//! `crate::store::chain`): opening it (sealing at the first start),
//! appending linked rows, cutting a prefix, reading the head, verifying.
//!
//! Who owns the chain's end: the row lock on the chain's record. Every
//! append (any instance, the command line) first takes
//! `SELECT ... FROM audit_chain WHERE id = 1 FOR UPDATE` in its
//! transaction, then reads the last row's id and MAC, gives the new rows
//! the next ids and links them, and commits, which releases the lock. No
//! other writer can append between that read and the commit, so no two
//! rows link to the same predecessor or take the same id, across
//! instances. A cut takes the same lock before it reads anything, so it
//! never comes between an append's read and its commit either. ([`tail`]
//! takes it; no append reaches the table without it.)
//!
//! Reading (`pinkpage audit head`, `verify`) takes no lock: [`verify`]
//! reads one repeatable-read snapshot, a page of rows at a time, so
//! running instances go on appending and memory stays bounded.

use std::error::Error as StdError;

use bytes::BytesMut;
use deadpool_postgres::{Client, GenericClient, Transaction};
use pinkpage_actors::{AppError, ErrorCode};
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::Row;

use super::tx::db_error;
use super::tx::pg_text;
use crate::records::{timestamp, AuditCut, NewAuditEvent};
/// What `pinkpage audit verify` found: the same answer as on SQLite, so
/// the command line prints either alike.
pub use crate::store::chain::Verification;
use crate::store::chain::{
    existing_key, is_the_chains, AuditKey, Broken, Chain, ChainError, Field, Head, KeyFile, Mac, Problem,
    Verified, Walk, COLUMNS,
};

/// [`COLUMNS`] as SQL, for reading rows to link or verify (`user` is a
/// reserved word in PostgreSQL: quoted).
pub(super) const CHAIN_COLUMNS: &str = "id, instance, at, actor, \"user\", remote_addr, domain, action, server, target, outcome, code, command, exit_status, bytes, detail";

/// The lock that owns the chain's end (see the module docs): the chain
/// record's row, for the rest of the caller's transaction.
const LOCK_CHAIN: &str = "SELECT id FROM audit_chain WHERE id = 1 FOR UPDATE";

/// Rows read per query when walking the chain: verifying holds one page
/// at a time, however long the trail.
const PAGE: i64 = 1000;

impl ToSql for Field {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        // each value checks that its column takes it (the checked form)
        match self {
            Field::Null => Ok(IsNull::Yes),
            Field::Int(n) => n.to_sql_checked(ty, out),
            Field::Real(x) => x.to_sql_checked(ty, out),
            Field::Text(s) => s.to_sql_checked(ty, out),
            Field::Blob(b) => b.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // which variant it is decides; `to_sql` checks it against the type
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// The stored value of column `i` as a [`Field`], exactly as stored: the
/// column's type says which (BIGINT columns are `Int`, TEXT ones `Text`,
/// as [`Field::row`] writes them), NULL is `Null` whatever the column.
fn field(row: &Row, i: usize) -> Result<Field, tokio_postgres::Error> {
    let is = |ty: Type| row.columns().get(i).is_some_and(|c| *c.type_() == ty);
    Ok(if is(Type::INT8) {
        Field::int(row.try_get::<_, Option<i64>>(i)?)
    } else if is(Type::INT4) {
        Field::int(row.try_get::<_, Option<i32>>(i)?.map(i64::from))
    } else if is(Type::INT2) {
        Field::int(row.try_get::<_, Option<i16>>(i)?.map(i64::from))
    } else if is(Type::FLOAT8) {
        row.try_get::<_, Option<f64>>(i)?.map_or(Field::Null, Field::Real)
    } else if is(Type::BYTEA) {
        row.try_get::<_, Option<Vec<u8>>>(i)?
            .map_or(Field::Null, Field::Blob)
    } else {
        // TEXT (any other type, or no such column, fails here: a store
        // error)
        Field::text(row.try_get::<_, Option<&str>>(i)?)
    })
}

/// The fields of a row read with [`CHAIN_COLUMNS`] first.
pub(super) fn fields_of(row: &Row) -> Result<Vec<Field>, tokio_postgres::Error> {
    (0..COLUMNS.len()).map(|i| field(row, i)).collect()
}

/// The advisory lock the first start's sealing takes, so two instances
/// starting on a new database seal once.
const SEAL_LOCK: i64 = 0x0070_696e_6b63_6861;

fn store_error(e: tokio_postgres::Error) -> ChainError {
    ChainError::Store(super::tx::describe(&e))
}

/// The chain's one row: its genesis, its key's check value, when sealed.
async fn read_record(
    client: &impl GenericClient,
) -> Result<Option<(Head, String, String)>, tokio_postgres::Error> {
    let Some(r) = client
        .query_opt(
            "SELECT sealed_through, genesis_mac, key_check, sealed_at FROM audit_chain WHERE id = 1",
            &[],
        )
        .await?
    else {
        return Ok(None);
    };
    let genesis: String = r.try_get(1)?;
    Ok(Some((
        Head {
            id: r.try_get(0)?,
            // a record edited into nonsense links to nothing valid
            mac: Mac::from_hex(&genesis).unwrap_or(Mac([0; 32])),
        },
        r.try_get(2)?,
        r.try_get(3)?,
    )))
}

/// The chain of this database, with its key: for every instance's start
/// and the command line's account commands. On a database without a
/// chain yet it makes the key (when the file does not exist) and writes
/// the chain's record, once, under an advisory lock. A PostgreSQL database
/// starts with the chain (no rows come before it), so the genesis seals
/// no rows. A chain whose key is missing or another is refused.
pub async fn open_chain(client: &mut Client, key_file: &KeyFile) -> Result<Chain, ChainError> {
    if let Some((genesis, key_check, sealed_at)) = read_record(&*client).await.map_err(store_error)? {
        let key = existing_key(key_file, &key_check, &sealed_at)?;
        return Ok(Chain::new(key, genesis));
    }
    let key = key_file.load_or_create()?;
    let tx = client.transaction().await.map_err(store_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SEAL_LOCK])
        .await
        .map_err(store_error)?;
    let genesis =
        match read_record(&tx).await.map_err(store_error)? {
            // another instance sealed it meanwhile
            Some((genesis, key_check, _)) => {
                is_the_chains(&key, &key_check, key_file)?;
                genesis
            }
            None => {
                let rows: i64 = tx
                    .query_one("SELECT count(*) FROM audit_events", &[])
                    .await
                    .map_err(store_error)?
                    .get(0);
                if rows > 0 {
                    return Err(ChainError::Store(format!(
                    "the audit trail has {rows} rows but no chain record: it was written outside the daemon"
                )));
                }
                let (mac, _) = key.genesis().finish();
                tx.execute(
                "INSERT INTO audit_chain (id, sealed_through, sealed_rows, genesis_mac, key_check, sealed_at)
                 VALUES (1, 0, 0, $1, $2, $3)",
                &[&mac.to_hex(), &key.check_value().to_hex(), &timestamp(crate::records::now())],
            )
            .await
            .map_err(store_error)?;
                tx.commit().await.map_err(store_error)?;
                Head { id: 0, mac }
            }
        };
    Ok(Chain::new(key, genesis))
}

/// The chain's last link: the newest row's id and MAC, or the genesis when
/// no row follows it. A newest row without a valid MAC (only a hand in the
/// database makes one) is linked past as the genesis is; verifying names
/// it. Reads without a lock: for `head`, and for [`tail`] under its lock.
async fn last_link(client: &impl GenericClient, chain: &Chain) -> Result<Head, tokio_postgres::Error> {
    let last = client
        .query_opt("SELECT id, mac FROM audit_events ORDER BY id DESC LIMIT 1", &[])
        .await?;
    let genesis = chain.genesis();
    Ok(match last {
        None => genesis,
        Some(r) => {
            let id: i64 = r.try_get(0)?;
            let mac: Option<String> = r.try_get(1)?;
            Head {
                id: id.max(genesis.id),
                mac: mac.as_deref().and_then(Mac::from_hex).unwrap_or(genesis.mac),
            }
        }
    })
}

/// Takes the chain's end for the rest of `tx` ([`LOCK_CHAIN`]) and reads
/// it. Appends after it hold, whatever other writers do: each of them
/// waits here until `tx` ends, and `tx` reads the end in a statement
/// after the lock was granted, which (read committed: every statement has
/// a snapshot of its own) sees every append committed before. So `tx`
/// must be read committed (the default), never repeatable read, whose
/// one snapshot would predate the lock.
pub(super) async fn tail(tx: &Transaction<'_>, chain: &Chain) -> Result<Head, AppError> {
    // as SQLite's busy timeout: a writer stuck holding the chain (a
    // command line left waiting) fails this append after 5 s, which the
    // journal retries, instead of holding every instance's appends
    tx.batch_execute("SET LOCAL lock_timeout = '5s'")
        .await
        .map_err(db_error)?;
    if tx.query_opt(LOCK_CHAIN, &[]).await.map_err(db_error)?.is_none() {
        // every opening writes it before the store serves: only a hand in
        // the database removes it, and without it there is no lock
        return Err(AppError::with_detail(
            ErrorCode::Database,
            "the audit chain's record is missing: the trail cannot be appended to (run pinkpage audit verify)",
        ));
    }
    last_link(tx, chain).await.map_err(db_error)
}

/// The statement that inserts one linked row (prepared once per
/// connection).
pub(super) async fn insert_statement(
    client: &impl GenericClient,
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    client
        .prepare_cached(&format!(
            "INSERT INTO audit_events ({CHAIN_COLUMNS}, mac)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
        ))
        .await
}

/// Inserts `row` after `tail`, linked, with the next id; returns the new
/// end. The caller holds the chain's lock ([`tail`]).
pub(super) async fn append_one(
    client: &impl GenericClient,
    insert: &tokio_postgres::Statement,
    chain: &Chain,
    tail: Head,
    instance: &str,
    row: &NewAuditEvent,
) -> Result<Head, tokio_postgres::Error> {
    let id = tail.id + 1;
    let row = storable(row);
    let fields = Field::row(id, instance, &row);
    let mac = chain.link(&tail.mac, &fields);
    let mac_hex = mac.to_hex();
    let mut bind: Vec<&(dyn ToSql + Sync)> = fields.iter().map(|f| f as &(dyn ToSql + Sync)).collect();
    bind.push(&mac_hex);
    client.execute(insert, &bind).await?;
    Ok(Head { id, mac })
}

/// Inserts `rows` after `tail`, linked, with the next ids, all sent at
/// once: the links are made here first (each needs only the one before),
/// then the inserts go out together and the server runs them in the order
/// sent (the driver pipelines the queries polled together on one
/// connection), so a batch costs one round trip instead of one a row.
/// The caller holds the chain's lock ([`tail`]). On any failure the
/// transaction is spoiled: the caller drops it (a row refused on its own
/// merits is then written again, one savepoint a row, to find which).
pub(super) async fn append_pipelined(
    client: &impl GenericClient,
    chain: &Chain,
    mut tail: Head,
    instance: &str,
    rows: &[NewAuditEvent],
) -> Result<Vec<i64>, tokio_postgres::Error> {
    let insert = insert_statement(client).await?;
    let mut linked = Vec::with_capacity(rows.len());
    for row in rows {
        let id = tail.id + 1;
        let fields = Field::row(id, instance, &storable(row));
        let mac = chain.link(&tail.mac, &fields);
        linked.push((id, fields, mac.to_hex()));
        tail = Head { id, mac };
    }
    let insert = &insert;
    futures_util::future::try_join_all(linked.iter().map(|(_, fields, mac)| async move {
        let mut bind: Vec<&(dyn ToSql + Sync)> = fields.iter().map(|f| f as &(dyn ToSql + Sync)).collect();
        bind.push(mac);
        client.execute(insert, &bind).await
    }))
    .await?;
    Ok(linked.into_iter().map(|(id, _, _)| id).collect())
}

/// `row` as PostgreSQL can store it: a NUL (which its text cannot hold, and
/// which a typed command can carry) becomes U+FFFD before the row is
/// linked, so the trail keeps the row, and its MAC covers what is stored.
fn storable(row: &NewAuditEvent) -> std::borrow::Cow<'_, NewAuditEvent> {
    let texts = [
        &row.server,
        &row.target,
        &row.command,
        &row.user,
        &row.remote_addr,
    ];
    let has_nul = [&row.actor, &row.action, &row.domain]
        .iter()
        .any(|t| t.contains('\0'))
        || texts
            .iter()
            .any(|t| t.as_deref().is_some_and(|t| t.contains('\0')));
    if !has_nul {
        return std::borrow::Cow::Borrowed(row);
    }
    let clean = |t: &str| pg_text(t).into_owned();
    let mut owned = row.clone();
    for t in [&mut owned.actor, &mut owned.action, &mut owned.domain] {
        *t = clean(t);
    }
    for t in [
        &mut owned.server,
        &mut owned.target,
        &mut owned.command,
        &mut owned.user,
        &mut owned.remote_addr,
    ] {
        if let Some(v) = t.as_mut() {
            *v = clean(v);
        }
    }
    std::borrow::Cow::Owned(owned)
}

/// Appends `rows` after `tail`, linked, with the next ids; returns them
/// and the new end. The caller holds the chain's lock ([`tail`]).
pub(super) async fn append_after<'e>(
    client: &impl GenericClient,
    chain: &Chain,
    mut tail: Head,
    instance: &str,
    rows: impl IntoIterator<Item = &'e NewAuditEvent>,
) -> Result<(Vec<i64>, Head), tokio_postgres::Error> {
    let insert = insert_statement(client).await?;
    let mut ids = Vec::new();
    for row in rows {
        tail = append_one(client, &insert, chain, tail, instance, row).await?;
        ids.push(tail.id);
    }
    Ok((ids, tail))
}

/// Cuts the oldest rows (`AuditStore::cut`), as SQLite's `cut` does: every
/// row up to the last one before the first row at or after `before` (so
/// no younger row goes, even one written late), at most `limit` of them,
/// and records the cut in an `audit.cut` row with the link the chain now
/// starts from. The rows sealed at genesis go together, once all of them
/// are old enough, whatever `limit` says (they share one MAC). `None` when
/// nothing is old enough. Everything is read under the chain's lock, so
/// no append or other cut comes between the reads and the cut's row.
pub async fn cut(
    client: &mut Client,
    chain: &Chain,
    before: chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> Result<Option<AuditCut>, AppError> {
    let tx = client.transaction().await.map_err(db_error)?;
    let end = tail(&tx, chain).await?;
    let first_young: Option<i64> = tx
        .query_one(
            "SELECT min(id) FROM audit_events WHERE at >= $1",
            &[&timestamp(before)],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(db_error)?;
    let bounds = tx
        .query_one("SELECT min(id), max(id) FROM audit_events", &[])
        .await
        .map_err(db_error)?;
    let oldest: Option<i64> = bounds.try_get(0).map_err(db_error)?;
    let newest: Option<i64> = bounds.try_get(1).map_err(db_error)?;
    let (Some(oldest), Some(newest)) = (oldest, newest) else {
        return Ok(None);
    };
    let mut through = first_young.map_or(newest, |y| y - 1);
    let genesis = chain.genesis();
    if through < genesis.id {
        // the sealed rows share one MAC: they go together, once all are old
        through = 0;
    } else {
        // ids have no gaps, so this is at most `limit` rows (the sealed
        // ones excepted)
        let bounded = oldest.saturating_add(i64::from(limit.max(1)) - 1);
        through = through.min(bounded.max(genesis.id));
    }
    if through < oldest {
        return Ok(None);
    }
    let last_mac = if through == genesis.id {
        genesis.mac
    } else {
        let mac: Option<String> = tx
            .query_opt("SELECT mac FROM audit_events WHERE id = $1", &[&through])
            .await
            .and_then(|r| r.map(|r| r.try_get(0)).transpose())
            .map_err(db_error)?
            .flatten();
        mac.as_deref().and_then(Mac::from_hex).ok_or_else(|| {
            AppError::with_detail(
                ErrorCode::Database,
                format!("cannot cut the audit trail through row {through}: it has no valid MAC (run pinkpage audit verify)"),
            )
        })?
    };
    let rows = tx
        .execute("DELETE FROM audit_events WHERE id <= $1", &[&through])
        .await
        .map_err(db_error)?;
    let mut event = NewAuditEvent::new("system", "audit.cut");
    event.detail = Some(serde_json::json!({
        "through_id": through,
        "mac": last_mac.to_hex(),
        "rows": rows,
        "before": timestamp(before),
    }));
    let (ids, _) = append_after(&tx, chain, end, crate::records::instance(), [&event])
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    log::info!(through_id = through, rows = rows; "audit trail cut by retention");
    Ok(Some(AuditCut {
        through_id: through,
        rows,
        cut_id: ids[0],
    }))
}

/// The chain's key, checked, and where it begins: for reading. A database
/// without the chain's table (not migrated yet, or not Pink-Page's) has
/// no chain.
async fn read_chain(
    client: &impl GenericClient,
    key_file: &KeyFile,
) -> Result<(Head, AuditKey, bool), ChainError> {
    let record = read_record(client).await.map_err(|e| {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) {
            ChainError::NoChain
        } else {
            store_error(e)
        }
    })?;
    let (genesis, key_check, sealed_at) = record.ok_or(ChainError::NoChain)?;
    match existing_key(key_file, &key_check, &sealed_at) {
        Ok(key) => Ok((genesis, key, true)),
        // a chain record whose check value was changed still lets the rows
        // be checked with the key given: verifying says both
        Err(ChainError::WrongKey { .. }) => Ok((genesis, key_file.load()?, false)),
        Err(e) => Err(e),
    }
}

/// The head: the newest link (`pinkpage audit head`). Reads only.
pub async fn head(client: &impl GenericClient, key_file: &KeyFile) -> Result<Head, ChainError> {
    let (genesis, key, key_ok) = read_chain(client, key_file).await?;
    if !key_ok {
        return Err(ChainError::WrongKey {
            path: key_file.path().to_owned(),
        });
    }
    last_link(client, &Chain::new(key, genesis))
        .await
        .map_err(store_error)
}

/// Verifies the whole chain with the key, against `head` when given, in
/// one read snapshot (a repeatable-read, read-only transaction: appends of
/// running instances meanwhile are neither seen nor blocked): the sealed
/// rows against the genesis MAC (or, after a cut, that nothing the last
/// cut took is left), then every row after the start, in id order, a page
/// at a time (`pinkpage audit verify`).
pub async fn verify(
    client: &mut Client,
    key_file: &KeyFile,
    head: Option<Head>,
) -> Result<Verification, ChainError> {
    let tx = super::tx::snapshot(client).await.map_err(store_error)?;
    let (genesis, key, key_matches) = read_chain(&tx, key_file).await?;
    let chain = walk(&tx, &key, genesis, head).await.map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    Ok(Verification { key_matches, chain })
}

/// Feeds the rows with ids in `(after, through]`, in id order, a page at
/// a time, to `each` (with the row's id); stops early at `each`'s `Err`.
async fn rows_in_order<E>(
    client: &impl GenericClient,
    columns: &str,
    mut after: i64,
    through: i64,
    mut each: impl FnMut(i64, &Row) -> Result<Result<(), E>, tokio_postgres::Error>,
) -> Result<Result<(), E>, tokio_postgres::Error> {
    let page = client
        .prepare(&format!(
            "SELECT {columns} FROM audit_events WHERE id > $1 AND id <= $2 ORDER BY id LIMIT $3"
        ))
        .await?;
    loop {
        let rows = client.query(&page, &[&after, &through, &PAGE]).await?;
        for row in &rows {
            after = row.try_get(0)?;
            if let Err(stop) = each(after, row)? {
                return Ok(Err(stop));
            }
        }
        if (rows.len() as i64) < PAGE {
            return Ok(Ok(()));
        }
    }
}

async fn walk(
    client: &impl GenericClient,
    key: &AuditKey,
    genesis: Head,
    head: Option<Head>,
) -> Result<Result<Verified, Broken>, tokio_postgres::Error> {
    let last_cut = client
        .query_opt(
            "SELECT id, detail FROM audit_events WHERE action = 'audit.cut' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await?;
    let start = match last_cut {
        Some(row) => {
            let cut: i64 = row.try_get(0)?;
            let detail: Option<String> = row.try_get(1)?;
            let at = detail
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                .and_then(|d| {
                    let through = d["through_id"].as_i64()?;
                    let mac = Mac::from_hex(d["mac"].as_str()?)?;
                    Some(Head { id: through, mac })
                });
            let Some(start) = at else {
                return Ok(Err(Broken {
                    row: cut,
                    problem: Problem::BadCut,
                }));
            };
            let left: Option<i64> = client
                .query_one("SELECT min(id) FROM audit_events", &[])
                .await?
                .try_get(0)?;
            if let Some(left) = left.filter(|l| *l <= start.id) {
                return Ok(Err(Broken {
                    row: left,
                    problem: Problem::NotCut {
                        cut,
                        through: start.id,
                    },
                }));
            }
            start
        }
        None => {
            // (a PostgreSQL chain seals no rows; a copied-in trail might)
            let mut sealed = key.genesis();
            let Ok(()) = rows_in_order(client, CHAIN_COLUMNS, i64::MIN, genesis.id, |_, row| {
                sealed.row(&fields_of(row)?);
                Ok(Ok::<(), std::convert::Infallible>(()))
            })
            .await?;
            if !sealed.finish().0.matches(&genesis.mac) {
                return Ok(Err(Broken {
                    row: genesis.id,
                    problem: Problem::Sealed,
                }));
            }
            genesis
        }
    };
    let mut walk = match Walk::new(key, start, head) {
        Ok(walk) => walk,
        Err(broken) => return Ok(Err(broken)),
    };
    let columns = format!("{CHAIN_COLUMNS}, mac");
    let walked = rows_in_order(client, &columns, start.id, i64::MAX, |id, row| {
        let mac: Option<String> = row.try_get(COLUMNS.len()).ok().flatten();
        Ok(walk.row(id, &fields_of(row)?, mac.as_deref()))
    })
    .await?;
    Ok(walked.and_then(|()| walk.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_read_with_the_chains_columns() {
        assert_eq!(CHAIN_COLUMNS.replace('"', ""), COLUMNS.join(", "));
    }
}
