//! The `web_sessions` table on PostgreSQL: server-side sign-in sessions,
//! found by the digest of their cookie value (the cookie itself is never
//! stored), and the `session_log` its triggers write (migration 9): every
//! session started or ended gets the next number of
//! `auth_revision.sessions`, under that row's lock, so the numbers follow
//! commit order across instances and a daemon catches up by reading what
//! changed after the number it has seen ([`session_changes`]). The twin of
//! `crate::store::sqlite::accounts::sessions`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, Transaction};
use tokio_postgres::Row;

use super::lock::changing;
use crate::accounts::token::new_public_id;
use crate::accounts::{AccountError, SessionChanges, SessionRow, StartedSession};
use crate::records::timestamp as rfc3339;

const SESSION_COLUMNS: &str =
    "s.id, s.secret_hash, u.name, s.created_at, s.last_seen_at, s.expires_at, s.remote_addr, s.seq";

fn session_from_row(r: &Row) -> Result<SessionRow, AccountError> {
    Ok(SessionRow {
        id: r.try_get(0)?,
        secret_hash: r.try_get(1)?,
        user: r.try_get(2)?,
        created_at: r.try_get(3)?,
        last_seen_at: r.try_get(4)?,
        expires_at: r.try_get(5)?,
        remote_addr: r.try_get(6)?,
        seq: r.try_get(7)?,
    })
}

/// Starts a session for `user` (who must exist and not be disabled),
/// ending at `expires_at` at the latest, and ends the user's oldest
/// sessions so that at most `per_user` (at least 1) remain with the new
/// one; both or neither, under the accounts' lock (`super::changing`), so
/// two sign-ins of one user on two instances at once never leave more
/// than `per_user`, nor a session of an account disabled meanwhile.
/// `secret_hash` is [`crate::accounts::token::digest`] of the cookie value
/// from [`crate::accounts::token::new_session_secret`]; the public id is
/// made here.
pub async fn create_session(
    client: &mut Client,
    user: &str,
    secret_hash: &str,
    expires_at: DateTime<Utc>,
    remote_addr: Option<&str>,
    per_user: usize,
) -> Result<StartedSession, AccountError> {
    let tx = changing(client).await?;
    let row = tx
        .query_opt("SELECT id, disabled FROM users WHERE name = $1", &[&user])
        .await?
        .ok_or(AccountError::NotFound)?;
    let user_id: i64 = row.try_get(0)?;
    let disabled: i64 = row.try_get(1)?;
    if disabled != 0 {
        return Err(AccountError::Invalid("the account is disabled".to_owned()));
    }
    let keep = i64::try_from(per_user.max(1) - 1).unwrap_or(i64::MAX);
    let mut ended = tx
        .query(
            "SELECT id FROM web_sessions WHERE user_id = $1 ORDER BY seq DESC, id DESC OFFSET $2",
            &[&user_id, &keep],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?;
    ended.reverse(); // oldest first
    for old in &ended {
        tx.execute("DELETE FROM web_sessions WHERE id = $1", &[old])
            .await?;
    }
    let id = new_public_id();
    let now = rfc3339(Utc::now());
    // the BEFORE INSERT trigger gives the row its number in the log
    tx.execute(
        "INSERT INTO web_sessions (id, secret_hash, user_id, created_at, last_seen_at, expires_at, remote_addr)
         VALUES ($1, $2, $3, $4, $4, $5, $6)",
        &[&id, &secret_hash, &user_id, &now, &rfc3339(expires_at), &remote_addr],
    )
    .await?;
    let session = get_session(&tx, &id).await?.ok_or(AccountError::NotFound)?;
    tx.commit().await?;
    Ok(StartedSession { session, ended })
}

/// A session by public id.
async fn get_session(tx: &Transaction<'_>, id: &str) -> Result<Option<SessionRow>, AccountError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM web_sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1"
    );
    tx.query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(session_from_row)
        .transpose()
}

/// Every session, oldest first.
pub(super) async fn list_sessions(tx: &Transaction<'_>) -> Result<Vec<SessionRow>, AccountError> {
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM web_sessions s JOIN users u ON u.id = s.user_id
         ORDER BY s.seq, s.id"
    );
    tx.query(&sql, &[]).await?.iter().map(session_from_row).collect()
}

/// Ends one session (sign-out); whether it existed.
pub async fn delete_session(client: &mut Client, id: &str) -> Result<bool, AccountError> {
    let tx = changing(client).await?;
    let gone = tx
        .execute("DELETE FROM web_sessions WHERE id = $1", &[&id])
        .await?;
    tx.commit().await?;
    Ok(gone > 0)
}

/// Ends every session of `user`; how many there were.
pub(super) async fn delete_sessions_of(tx: &Transaction<'_>, user: &str) -> Result<u64, AccountError> {
    Ok(tx
        .execute(
            "DELETE FROM web_sessions WHERE user_id = (SELECT id FROM users WHERE name = $1)",
            &[&user],
        )
        .await?)
}

/// Records activity on sessions (for their idle lifetime), in one
/// statement; a session ended meanwhile is skipped, and of one session
/// given twice the last time counts. Not a change of access: neither the
/// revision nor the session log moves.
pub(super) async fn touch_sessions(
    tx: &Transaction<'_>,
    seen: Vec<(String, DateTime<Utc>)>,
) -> Result<(), AccountError> {
    if seen.is_empty() {
        return Ok(());
    }
    let last: HashMap<String, DateTime<Utc>> = seen.into_iter().collect();
    let (ids, times): (Vec<String>, Vec<String>) = last.into_iter().map(|(id, at)| (id, rfc3339(at))).unzip();
    tx.execute(
        "UPDATE web_sessions s SET last_seen_at = t.at
         FROM unnest($1::text[], $2::text[]) AS t(id, at) WHERE s.id = t.id",
        &[&ids, &times],
    )
    .await?;
    Ok(())
}

/// Removes sessions whose absolute lifetime ended by `now` and those
/// unused for `idle` or longer by then; how many.
pub(super) async fn delete_ended_sessions(
    tx: &Transaction<'_>,
    now: DateTime<Utc>,
    idle: chrono::Duration,
) -> Result<usize, AccountError> {
    // Every time is written by `rfc3339` (fixed width), so text order is
    // time order. An idle lifetime too long to subtract never runs out.
    let idle_since = now.checked_sub_signed(idle).map(rfc3339).unwrap_or_default();
    let gone = tx
        .execute(
            "DELETE FROM web_sessions WHERE expires_at <= $1 OR last_seen_at <= $2",
            &[&rfc3339(now), &idle_since],
        )
        .await?;
    Ok(usize::try_from(gone).unwrap_or(usize::MAX))
}

/// The session log's current number and the highest number pruned from
/// it.
pub(super) async fn session_seq(tx: &Transaction<'_>) -> Result<(i64, i64), AccountError> {
    let row = tx
        .query_one(
            "SELECT sessions, sessions_pruned FROM auth_revision WHERE id = 1",
            &[],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// What changed after number `since` of the session log; `None` when the
/// log no longer reaches back that far (pruned): the caller reloads whole.
pub(super) async fn session_changes(
    tx: &Transaction<'_>,
    since: i64,
) -> Result<Option<SessionChanges>, AccountError> {
    let (seq, pruned) = session_seq(tx).await?;
    if since < pruned {
        return Ok(None);
    }
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM session_log l
         JOIN web_sessions s ON s.id = l.session_id JOIN users u ON u.id = s.user_id
         WHERE l.seq > $1 AND l.ended = 0 ORDER BY l.seq"
    );
    let started = tx
        .query(&sql, &[&since])
        .await?
        .iter()
        .map(session_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let ended = tx
        .query(
            "SELECT session_id FROM session_log WHERE seq > $1 AND ended = 1 ORDER BY seq",
            &[&since],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Some(SessionChanges { seq, started, ended }))
}

/// Forgets the session log's entries written before `before`; how many.
/// A daemon that had not read them reloads whole at its next look.
pub(super) async fn prune_session_log(
    tx: &Transaction<'_>,
    before: DateTime<Utc>,
) -> Result<u64, AccountError> {
    let last: Option<i64> = tx
        .query_one(
            "SELECT max(seq) FROM session_log WHERE at < $1",
            &[&rfc3339(before)],
        )
        .await?
        .try_get(0)?;
    let Some(last) = last else {
        return Ok(0);
    };
    let gone = tx
        .execute("DELETE FROM session_log WHERE seq <= $1", &[&last])
        .await?;
    tx.execute(
        "UPDATE auth_revision SET sessions_pruned = greatest(sessions_pruned, $1) WHERE id = 1",
        &[&last],
    )
    .await?;
    Ok(gone)
}
