//! The accounts' lock on PostgreSQL: the one row of `auth_revision`, taken
//! first by every transaction that changes users, tokens or sessions (see
//! the module docs of `super`). A leaf: the accounts' files import it.

use deadpool_postgres::{Client, Transaction};

/// Starts a transaction that changes users, tokens or sessions, holding
/// the accounts' lock until it ends.
pub(super) async fn changing(client: &mut Client) -> Result<Transaction<'_>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT 1 FROM auth_revision WHERE id = 1 FOR UPDATE", &[])
        .await?;
    Ok(tx)
}
