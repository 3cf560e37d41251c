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
//! instances.

use deadpool_postgres::Client;

use crate::records::timestamp;
use crate::store::chain::{existing_key, is_the_chains, Chain, ChainError, Head, KeyFile, Mac};

/// The advisory lock the first start's sealing takes, so two instances
/// starting on a new database seal once.
const SEAL_LOCK: i64 = 0x0070_696e_6b63_6861;

fn store_error(e: tokio_postgres::Error) -> ChainError {
    ChainError::Store(super::describe(&e))
}

/// The chain's one row: its genesis, its key's check value, when sealed.
async fn read_record(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Option<(Head, String, String)>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT sealed_through, genesis_mac, key_check, sealed_at FROM audit_chain WHERE id = 1",
            &[],
        )
        .await?
        .map(|r| {
            let genesis: String = r.get(1);
            (
                Head {
                    id: r.get(0),
                    // a record edited into nonsense links to nothing valid
                    mac: Mac::from_hex(&genesis).unwrap_or(Mac([0; 32])),
                },
                r.get(2),
                r.get(3),
            )
        }))
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
