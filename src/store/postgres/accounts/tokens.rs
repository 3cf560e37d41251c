//! The `api_tokens` table on PostgreSQL: tokens for scripts, stored as
//! digests only. The twin of `crate::store::sqlite::accounts::tokens`.

use chrono::{Duration, Utc};
use deadpool_postgres::{Client, Transaction};
use pinkpage_actors::secret::Secret;
use tokio_postgres::Row;

use super::lock::changing;
use crate::accounts::token::{digest, Token};
use crate::accounts::{AccountError, TokenInfo};
use crate::records::timestamp as rfc3339;
use crate::store::postgres::tx::snapshot;

const TOKEN_COLUMNS: &str = "t.id, u.name, t.label, t.created_at, t.expires_at, t.revoked_at, t.last_used_at";

fn token_from_row(r: &Row) -> Result<TokenInfo, AccountError> {
    Ok(TokenInfo {
        id: r.try_get(0)?,
        user: r.try_get(1)?,
        label: r.try_get(2)?,
        created_at: r.try_get(3)?,
        expires_at: r.try_get(4)?,
        revoked_at: r.try_get(5)?,
        last_used_at: r.try_get(6)?,
    })
}

/// Creates a token for `user`, expiring after `expires_in` (`None`:
/// never). Returns its listing and the whole token, which exists nowhere
/// else: show it once.
pub async fn create_token(
    client: &mut Client,
    user: &str,
    label: &str,
    expires_in: Option<Duration>,
) -> Result<(TokenInfo, Secret), AccountError> {
    let now = Utc::now();
    let expires_at = crate::accounts::token::checked_request(label, now, expires_in)?;
    let tx = changing(client).await?;
    let user_id: i64 = tx
        .query_opt("SELECT id FROM users WHERE name = $1", &[&user])
        .await?
        .ok_or(AccountError::NotFound)?
        .try_get(0)?;
    let (id, full) = Token::generate();
    tx.execute(
        "INSERT INTO api_tokens (id, user_id, label, secret_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &id,
            &user_id,
            &label,
            &digest(full.expose()),
            &rfc3339(now),
            &expires_at.map(rfc3339),
        ],
    )
    .await?;
    let info = find_token(&tx, &id).await?.ok_or(AccountError::NotFound)?;
    tx.commit().await?;
    Ok((info, full))
}

/// Every token (of `user` when given), newest first.
pub async fn list_tokens(client: &mut Client, user: Option<&str>) -> Result<Vec<TokenInfo>, AccountError> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id
         WHERE $1::text IS NULL OR u.name = $1 ORDER BY t.created_at DESC, t.id"
    );
    let tx = snapshot(client).await?;
    let tokens = tx
        .query(&sql, &[&user])
        .await?
        .iter()
        .map(token_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit().await?;
    Ok(tokens)
}

/// Revokes a token; revoking it again keeps the first time.
pub async fn revoke_token(client: &mut Client, id: &str) -> Result<TokenInfo, AccountError> {
    let now = rfc3339(Utc::now());
    let tx = changing(client).await?;
    tx.execute(
        "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        &[&now, &id],
    )
    .await?;
    let info = find_token(&tx, id).await?.ok_or(AccountError::NotFound)?;
    tx.commit().await?;
    Ok(info)
}

/// Every token with its stored digest, in one query (what the daemon's
/// in-memory copy is loaded from).
pub(super) async fn list_tokens_with_digests(
    tx: &Transaction<'_>,
) -> Result<Vec<(TokenInfo, String)>, AccountError> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS}, t.secret_hash FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id"
    );
    tx.query(&sql, &[])
        .await?
        .iter()
        .map(|r| Ok((token_from_row(r)?, r.try_get(7)?)))
        .collect()
}

/// A token's listing by public id.
async fn find_token(tx: &Transaction<'_>, id: &str) -> Result<Option<TokenInfo>, AccountError> {
    let sql =
        format!("SELECT {TOKEN_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1");
    tx.query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(token_from_row)
        .transpose()
}
