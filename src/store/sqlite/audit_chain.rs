//! The audit chain's SQL (the chain itself is `crate::store::chain`):
//! opening it (sealing the rows from before it at the first start with a
//! key), appending linked rows, cutting a prefix, reading the head, and
//! verifying.
//!
//! Who owns the chain's end: the database's write lock. Every append
//! (the store's two threads, the command line in another process, a cut)
//! runs in a `BEGIN IMMEDIATE` transaction, which takes SQLite's one write
//! lock before it reads anything; it reads the last row's id and MAC,
//! gives the new rows the next ids itself and links them, and commits. No
//! other writer can append between that read and the commit, so no two
//! rows link to the same predecessor or take the same id. (A deferred
//! transaction would read first and could find, when it comes to write,
//! that another writer committed since: SQLITE_BUSY_SNAPSHOT.)

use pinkpage_actors::{AppError, ErrorCode};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row, ToSql, Transaction, TransactionBehavior};

use super::tx::db_error;
use crate::records::{timestamp, NewAuditEvent};
use crate::store::chain::{
    existing_key, is_the_chains, AuditKey, Broken, Chain, ChainError, Field, Head, KeyFile, Mac, Problem,
    Verification, Verified, Walk, COLUMNS,
};

/// [`COLUMNS`] as SQL, for reading rows to link or verify.
pub(super) const CHAIN_COLUMNS: &str =
    "id, instance, at, actor, user, remote_addr, domain, action, server, target, outcome, code, command, exit_status, bytes, detail";

/// The chain's one row.
struct ChainRecord {
    genesis: Head,
    key_check: String,
    sealed_at: String,
}

impl ToSql for Field {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Field::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Field::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Field::Real(x) => ToSqlOutput::Borrowed(ValueRef::Real(*x)),
            Field::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Field::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// A stored value as a [`Field`], exactly as stored.
fn field(value: ValueRef<'_>) -> Field {
    match value {
        ValueRef::Null => Field::Null,
        ValueRef::Integer(n) => Field::Int(n),
        ValueRef::Real(x) => Field::Real(x),
        ValueRef::Text(t) => Field::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Field::Blob(b.to_vec()),
    }
}

/// The fields of a row read with [`CHAIN_COLUMNS`] first.
pub(super) fn fields_of(row: &Row<'_>) -> rusqlite::Result<Vec<Field>> {
    (0..COLUMNS.len()).map(|i| row.get_ref(i).map(field)).collect()
}

fn read_record(conn: &Connection) -> rusqlite::Result<Option<ChainRecord>> {
    conn.query_row(
        "SELECT sealed_through, genesis_mac, key_check, sealed_at FROM audit_chain WHERE id = 1",
        [],
        |r| {
            let genesis: String = r.get(1)?;
            Ok(ChainRecord {
                genesis: Head {
                    id: r.get(0)?,
                    // a record edited into nonsense links to nothing valid
                    mac: Mac::from_hex(&genesis).unwrap_or(Mac([0; 32])),
                },
                key_check: r.get(2)?,
                sealed_at: r.get(3)?,
            })
        },
    )
    .optional()
}

fn store_error(e: rusqlite::Error) -> ChainError {
    ChainError::Store(e.to_string())
}

/// The chain of this database, with its key: for the daemon's start and
/// the command line's account commands (both write rows). On a database
/// that has no chain yet it makes the key (when the file does not exist)
/// and seals every row there is under the genesis MAC, once: two
/// processes starting at once seal once, in turn under the write lock.
/// A chain whose key is missing or another is refused, never re-keyed.
pub fn open_chain(conn: &mut Connection, key_file: &KeyFile) -> Result<Chain, ChainError> {
    if let Some(record) = read_record(conn).map_err(store_error)? {
        let key = existing_key(key_file, &record.key_check, &record.sealed_at)?;
        return Ok(Chain::new(key, record.genesis));
    }
    let key = key_file.load_or_create()?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(store_error)?;
    let genesis = match read_record(&tx).map_err(store_error)? {
        // another process sealed it meanwhile (with the same key file)
        Some(record) => {
            drop(tx);
            is_the_chains(&key, &record.key_check, key_file)?;
            record.genesis
        }
        None => {
            let genesis = seal(&tx, &key).map_err(store_error)?;
            tx.commit().map_err(store_error)?;
            genesis
        }
    };
    Ok(Chain::new(key, genesis))
}

/// Seals every row there is under one genesis MAC and writes the chain's
/// record. Inside the caller's write transaction.
fn seal(tx: &Transaction<'_>, key: &AuditKey) -> rusqlite::Result<Head> {
    let mut genesis = key.genesis();
    let mut through = 0;
    {
        let mut stmt = tx.prepare(&format!("SELECT {CHAIN_COLUMNS} FROM audit_events ORDER BY id"))?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            through = row.get(0)?;
            genesis.row(&fields_of(row)?);
        }
    }
    let (mac, sealed) = genesis.finish();
    tx.execute(
        "INSERT INTO audit_chain (id, sealed_through, sealed_rows, genesis_mac, key_check, sealed_at)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)",
        params![
            through,
            sealed as i64,
            mac.to_hex(),
            key.check_value().to_hex(),
            timestamp(crate::records::now())
        ],
    )?;
    if sealed > 0 {
        log::info!(rows = sealed, through = through; "audit rows from before the chain sealed under the genesis MAC");
    }
    Ok(Head { id: through, mac })
}

/// The chain's last link: the newest row's id and MAC, or the genesis when
/// no row follows it. A newest row without a valid MAC (only a hand in the
/// file makes one) is linked past as the genesis is; verifying names it.
pub(super) fn tail(conn: &Connection, chain: &Chain) -> rusqlite::Result<Head> {
    let last: Option<(i64, Option<String>)> = conn
        .query_row(
            "SELECT id, mac FROM audit_events ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let genesis = chain.genesis();
    Ok(match last {
        None => genesis,
        Some((id, mac)) => Head {
            id: id.max(genesis.id),
            mac: mac.as_deref().and_then(Mac::from_hex).unwrap_or(genesis.mac),
        },
    })
}

/// Appends `rows` after `tail`, linked, with the next ids; returns them.
/// The caller holds the write lock (see the module docs).
pub(super) fn append_after<'e>(
    conn: &Connection,
    chain: &Chain,
    mut tail: Head,
    instance: &str,
    rows: impl IntoIterator<Item = &'e NewAuditEvent>,
) -> rusqlite::Result<(Vec<i64>, Head)> {
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO audit_events ({CHAIN_COLUMNS}, mac)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    ))?;
    let mut ids = Vec::new();
    for row in rows {
        let id = tail.id + 1;
        let fields = Field::row(id, instance, row);
        let mac = chain.link(&tail.mac, &fields);
        let mac_hex = mac.to_hex();
        let mut bind: Vec<&dyn ToSql> = fields.iter().map(|f| f as &dyn ToSql).collect();
        bind.push(&mac_hex);
        stmt.execute(bind.as_slice())?;
        tail = Head { id, mac };
        ids.push(id);
    }
    Ok((ids, tail))
}

/// Cuts the oldest rows (`AuditStore::cut`; public for the tests that
/// attack it on a real daemon's file): every row up to the last one before the first
/// row at or after `before` (so no younger row goes, even one written
/// late), at most `limit` of them, and records the cut in an `audit.cut`
/// row with the link the chain now starts from. The rows sealed at
/// genesis go together, once all of them are old enough, whatever
/// `limit` says (they share one MAC). `None` when nothing is old enough.
pub fn cut(
    conn: &mut Connection,
    chain: &Chain,
    before: chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> Result<Option<crate::records::AuditCut>, AppError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_error)?;
    let first_young: Option<i64> = tx
        .query_row(
            "SELECT min(id) FROM audit_events WHERE at >= ?1",
            [timestamp(before)],
            |r| r.get(0),
        )
        .map_err(db_error)?;
    let (oldest, newest): (Option<i64>, Option<i64>) = tx
        .query_row("SELECT min(id), max(id) FROM audit_events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(db_error)?;
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
            .query_row("SELECT mac FROM audit_events WHERE id = ?1", [through], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db_error)?
            .flatten();
        mac.as_deref().and_then(Mac::from_hex).ok_or_else(|| {
            AppError::with_detail(
                ErrorCode::Database,
                format!("cannot cut the audit trail through row {through}: it has no valid MAC (run pinkpage audit verify)"),
            )
        })?
    };
    let end = tail(&tx, chain).map_err(db_error)?;
    let rows = tx
        .execute("DELETE FROM audit_events WHERE id <= ?1", [through])
        .map_err(db_error)? as u64;
    let mut event = NewAuditEvent::new("system", "audit.cut");
    event.detail = Some(serde_json::json!({
        "through_id": through,
        "mac": last_mac.to_hex(),
        "rows": rows,
        "before": timestamp(before),
    }));
    let (ids, _) = append_after(&tx, chain, end, crate::records::instance(), [&event]).map_err(db_error)?;
    tx.commit().map_err(db_error)?;
    log::info!(through_id = through, rows = rows; "audit trail cut by retention");
    Ok(Some(crate::records::AuditCut {
        through_id: through,
        rows,
        cut_id: ids[0],
    }))
}

/// Opens the database for `pinkpage audit head` and `verify`: reads only
/// (`query_only`), never creates or migrates, and works beside a running
/// daemon (WAL: a read sees one snapshot and blocks no writer).
pub fn open_read_only(path: &std::path::Path) -> Result<Connection, ChainError> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| ChainError::Store(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(store_error)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(store_error)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(store_error)?;
    if (version as usize) < CHAIN_MIGRATION {
        return Err(ChainError::NoChain);
    }
    Ok(conn)
}

/// The migration that made the chain's table.
const CHAIN_MIGRATION: usize = 10;

/// The chain's key, checked, and where it begins: for reading.
fn read_chain(conn: &Connection, key_file: &KeyFile) -> Result<(ChainRecord, AuditKey, bool), ChainError> {
    let record = read_record(conn)
        .map_err(store_error)?
        .ok_or(ChainError::NoChain)?;
    match existing_key(key_file, &record.key_check, &record.sealed_at) {
        Ok(key) => Ok((record, key, true)),
        // a chain record whose check value was changed still lets the rows
        // be checked with the key given: verifying says both
        Err(ChainError::WrongKey { .. }) => Ok((record, key_file.load()?, false)),
        Err(e) => Err(e),
    }
}

/// The head: the newest link (`pinkpage audit head`).
pub fn head(conn: &Connection, key_file: &KeyFile) -> Result<Head, ChainError> {
    let (record, key, key_ok) = read_chain(conn, key_file)?;
    if !key_ok {
        return Err(ChainError::WrongKey {
            path: key_file.path().to_owned(),
        });
    }
    tail(conn, &Chain::new(key, record.genesis)).map_err(store_error)
}

/// Verifies the whole chain with the key, against `head` when given, in
/// one read snapshot: the sealed rows against the genesis MAC (or, after a
/// cut, that nothing the last cut took is left), then every row after the
/// start, in id order.
pub fn verify(
    conn: &mut Connection,
    key_file: &KeyFile,
    head: Option<Head>,
) -> Result<Verification, ChainError> {
    let tx = conn.transaction().map_err(store_error)?;
    let (record, key, key_matches) = read_chain(&tx, key_file)?;
    let chain = walk(&tx, &key, record.genesis, head).map_err(store_error)?;
    Ok(Verification { key_matches, chain })
}

fn walk(
    conn: &Connection,
    key: &AuditKey,
    genesis: Head,
    head: Option<Head>,
) -> rusqlite::Result<Result<Verified, Broken>> {
    let last_cut: Option<(i64, Option<String>)> = conn
        .query_row(
            "SELECT id, detail FROM audit_events WHERE action = 'audit.cut' ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let start = match last_cut {
        Some((cut, detail)) => {
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
            let left: Option<i64> = conn.query_row("SELECT min(id) FROM audit_events", [], |r| r.get(0))?;
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
            let mut sealed = key.genesis();
            let mut stmt = conn.prepare(&format!(
                "SELECT {CHAIN_COLUMNS} FROM audit_events WHERE id <= ?1 ORDER BY id"
            ))?;
            let mut rows = stmt.query([genesis.id])?;
            while let Some(row) = rows.next()? {
                sealed.row(&fields_of(row)?);
            }
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
    let mut stmt = conn.prepare(&format!(
        "SELECT {CHAIN_COLUMNS}, mac FROM audit_events WHERE id > ?1 ORDER BY id"
    ))?;
    let mut rows = stmt.query([start.id])?;
    while let Some(row) = rows.next()? {
        let mac: Option<String> = row.get(COLUMNS.len()).ok().flatten();
        if let Err(broken) = walk.row(row.get(0)?, &fields_of(row)?, mac.as_deref()) {
            return Ok(Err(broken));
        }
    }
    Ok(walk.finish())
}

#[cfg(test)]
mod tests;
