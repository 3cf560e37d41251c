//! The account tables (migrations 4 and 9) on PostgreSQL, the twin of
//! `crate::store::sqlite::accounts`: users here, API tokens in [`tokens`],
//! sign-in sessions and their log in [`sessions`]. Every public function
//! here is one transaction on one pooled connection; the records, the
//! naming rules and the token format are the accounts domain's
//! (`crate::accounts`), the same for both databases.
//!
//! Several instances change accounts at once here, where SQLite has one
//! writer at a time. So every transaction that changes users, tokens or
//! sessions starts by locking the one row of `auth_revision`
//! ([`changing`]): account changes run one after another across instances,
//! and each sees the others' commits (read committed reads afresh at each
//! statement). That is what keeps "never lose the last enabled admin" true
//! when two instances demote or disable the last two admins at once (each
//! would otherwise count the other's admin still enabled), and the
//! per-user session cap true when one user signs in on two instances at
//! once. The same row is what the schema's triggers update on every
//! change anyway (the access revision, the session log's numbers), so
//! taking it first also gives every changing transaction one lock order:
//! none waits for that row while holding a user, token or session row
//! another one holding it wants.
//!
//! Reads that must agree with each other ([`load`], [`changes`]) run in
//! one repeatable-read snapshot, so the revision and the session log's
//! number always match the rows read with them.

mod lock;
mod sessions;
mod tokens;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, Transaction};
use pinkpage_actors::access::Role;
use pinkpage_actors::secret::Secret;
use pinkpage_actors::{AppError, ErrorCode};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use self::lock::changing;
use super::tx::{db_error, describe, pool_error, snapshot};
use super::PgStore;
use crate::accounts::SESSION_LOG_KEPT;
use crate::accounts::{
    validate_name, validate_tags, AccessChanges, AccountError, Loaded, StartedSession, TokenInfo, User,
};
use crate::records::timestamp as rfc3339;
use crate::store::{AccountStore, StoreFuture, UserChange};

/// A database failure of an account operation, in [`describe`]'s words
/// (never a parameter: a `DETAIL` may quote a unique value, a hash).
impl From<tokio_postgres::Error> for AccountError {
    fn from(e: tokio_postgres::Error) -> Self {
        AccountError::Db(describe(&e))
    }
}

const USER_COLUMNS: &str =
    "id, name, role, servers, disabled, created_at, changed_at, password_hash IS NOT NULL";

/// A value of a column that does not parse: the store's failure, naming
/// the column (never its value).
fn bad_column(column: &str, why: impl std::fmt::Display) -> AccountError {
    AccountError::Db(format!("users.{column} cannot be read: {why}"))
}

fn user_from_row(r: &Row) -> Result<User, AccountError> {
    let role: String = r.try_get(2)?;
    let servers: Option<String> = r.try_get(3)?;
    let servers = match servers {
        None => None,
        Some(json) => Some(serde_json::from_str(&json).map_err(|e| bad_column("servers", e))?),
    };
    let disabled: i64 = r.try_get(4)?;
    Ok(User {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        role: role.parse().map_err(|e: String| bad_column("role", e))?,
        servers,
        disabled: disabled != 0,
        created_at: r.try_get(5)?,
        changed_at: r.try_get(6)?,
        has_password: r.try_get(7)?,
    })
}

/// Creates an account. `password_hash` is a PHC string from
/// [`crate::accounts::password::hash`], or `None` for an account that signs
/// in only through a trusted proxy.
pub async fn add_user(
    client: &mut Client,
    name: &str,
    role: Role,
    servers: Option<Vec<String>>,
    password_hash: Option<String>,
) -> Result<User, AccountError> {
    validate_name(name)?;
    let servers = servers.map(validate_tags).transpose()?;
    let now = rfc3339(Utc::now());
    let tx = changing(client).await?;
    let sql = format!(
        "INSERT INTO users (name, role, servers, password_hash, created_at, changed_at)
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {USER_COLUMNS}"
    );
    let row = match tx
        .query_one(
            &sql,
            &[
                &name,
                &role.as_str(),
                &crate::accounts::tags_json(&servers),
                &password_hash,
                &now,
            ],
        )
        .await
    {
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Err(AccountError::Exists),
        other => other?,
    };
    let user = user_from_row(&row)?;
    tx.commit().await?;
    Ok(user)
}

/// The account called `name`, if any.
async fn get_user(tx: &Transaction<'_>, name: &str) -> Result<Option<User>, AccountError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1");
    tx.query_opt(&sql, &[&name])
        .await?
        .as_ref()
        .map(user_from_row)
        .transpose()
}

async fn list_users_in(tx: &Transaction<'_>) -> Result<Vec<User>, AccountError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY name");
    tx.query(&sql, &[]).await?.iter().map(user_from_row).collect()
}

/// Every account, by name.
pub async fn list_users(client: &mut Client) -> Result<Vec<User>, AccountError> {
    let tx = snapshot(client).await?;
    let users = list_users_in(&tx).await?;
    tx.commit().await?;
    Ok(users)
}

/// The account called `name` and its stored PHC string, when it has both
/// (an unknown account, or one without a password, is `None`: the caller
/// then runs [`crate::accounts::password::verify_dummy`]). One statement.
pub async fn user_with_password(
    client: &mut Client,
    name: &str,
) -> Result<Option<(User, String)>, AccountError> {
    let sql = format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE name = $1");
    let Some(row) = client.query_opt(&sql, &[&name]).await? else {
        return Ok(None);
    };
    let hash: Option<String> = row.try_get(8)?;
    Ok(match hash {
        Some(hash) => Some((user_from_row(&row)?, hash)),
        None => None,
    })
}

/// Runs one `UPDATE users SET <assignments>, changed_at = now WHERE name`
/// and returns the changed user; `NotFound` when no row matched.
async fn update_user(
    tx: &Transaction<'_>,
    name: &str,
    assignments: &str,
    value: &(dyn ToSql + Sync),
) -> Result<User, AccountError> {
    let sql =
        format!("UPDATE users SET {assignments}, changed_at = $2 WHERE name = $3 RETURNING {USER_COLUMNS}");
    let row = tx
        .query_opt(&sql, &[value, &rfc3339(Utc::now()), &name])
        .await?
        .ok_or(AccountError::NotFound)?;
    user_from_row(&row)
}

/// Applies `change` to account `name` in one transaction, refused whole
/// (10001) when it would leave no enabled admin: the daemon never loses its
/// last admin, which only the command line could undo. The accounts' lock
/// ([`changing`]) makes the count of enabled admins at the end the count
/// every other instance's change sees too.
pub async fn change_user(client: &mut Client, name: &str, change: UserChange) -> Result<User, AppError> {
    let tx = changing(client).await.map_err(db_error)?;
    let mut user = get_user(&tx, name)
        .await?
        .ok_or_else(|| AppError::with_detail(ErrorCode::NotFound, format!("no account named '{name}'")))?;
    if let Some(role) = change.role {
        user = update_user(&tx, name, "role = $1", &role.as_str()).await?;
    }
    if let Some(servers) = change.servers {
        let servers = servers.map(validate_tags).transpose()?;
        user = update_user(&tx, name, "servers = $1", &crate::accounts::tags_json(&servers)).await?;
    }
    if let Some(hash) = change.password_hash {
        user = update_user(&tx, name, "password_hash = $1", &Some(hash)).await?;
        // a new password ends the sign-ins made with the old one
        sessions::delete_sessions_of(&tx, name).await?;
    }
    if let Some(disabled) = change.disabled {
        user = update_user(&tx, name, "disabled = $1", &i64::from(disabled)).await?;
        // disabling ends the account's sign-ins, so enabling it later
        // does not bring them back
        if disabled {
            sessions::delete_sessions_of(&tx, name).await?;
        }
    }
    let admins: i64 = tx
        .query_one(
            "SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0",
            &[],
        )
        .await
        .map_err(db_error)?
        .try_get(0)
        .map_err(db_error)?;
    if admins == 0 {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            "this would leave no enabled admin",
        ));
    }
    tx.commit().await.map_err(db_error)?;
    Ok(user)
}

/// The access revision: a number that grows whenever a user or a token
/// changes (not when one is merely used). Sign-in sessions have a log of
/// their own ([`sessions::session_changes`]).
async fn revision(tx: &Transaction<'_>) -> Result<i64, AccountError> {
    Ok(tx
        .query_one("SELECT revision FROM auth_revision WHERE id = 1", &[])
        .await?
        .try_get(0)?)
}

/// Everything the in-memory directory needs, read in one snapshot so the
/// revision matches the rows.
pub async fn load(client: &mut Client) -> Result<Loaded, AccountError> {
    let tx = snapshot(client).await?;
    let loaded = load_in(&tx).await?;
    tx.commit().await?;
    Ok(loaded)
}

async fn load_in(tx: &Transaction<'_>) -> Result<Loaded, AccountError> {
    Ok(Loaded {
        revision: revision(tx).await?,
        session_seq: sessions::session_seq(tx).await?.0,
        users: list_users_in(tx).await?,
        tokens: tokens::list_tokens_with_digests(tx).await?,
        sessions: sessions::list_sessions(tx).await?,
    })
}

/// What a copy made at access revision `revision` and session log number
/// `session_seq` needs to catch up, read in one snapshot: nothing, the
/// sessions started and ended since (the cheap, common case: sign-ins and
/// sign-outs, on any instance), or everything when accounts or tokens
/// changed or the log no longer reaches back that far.
pub async fn changes(
    client: &mut Client,
    revision_seen: i64,
    session_seq_seen: i64,
) -> Result<AccessChanges, AccountError> {
    let tx = snapshot(client).await?;
    let seq = sessions::session_seq(&tx).await?.0;
    // a log behind the copy (a database put back from a backup) is
    // another history: start again from it
    let changes = if revision(&tx).await? != revision_seen || seq < session_seq_seen {
        AccessChanges::Reload(load_in(&tx).await?)
    } else if seq == session_seq_seen {
        AccessChanges::Unchanged
    } else {
        match sessions::session_changes(&tx, session_seq_seen).await? {
            Some(c) => AccessChanges::Sessions(c),
            None => AccessChanges::Reload(load_in(&tx).await?),
        }
    };
    tx.commit().await?;
    Ok(changes)
}

/// Writes sessions' last use back, removes the sessions ended at `now`
/// (past their absolute lifetime, or unused for `idle`) and forgets the
/// session log's entries older than [`SESSION_LOG_KEPT`], in one
/// transaction; how many sessions were removed.
pub async fn persist_sessions(
    client: &mut Client,
    seen: Vec<(String, DateTime<Utc>)>,
    now: DateTime<Utc>,
    idle: chrono::Duration,
) -> Result<usize, AccountError> {
    let tx = changing(client).await?;
    sessions::touch_sessions(&tx, seen).await?;
    let removed = sessions::delete_ended_sessions(&tx, now, idle).await?;
    sessions::prune_session_log(&tx, now - SESSION_LOG_KEPT).await?;
    tx.commit().await?;
    Ok(removed)
}

/// A connection from the pool, or the 40000 of a store that cannot give
/// one.
async fn connect(pool: &deadpool_postgres::Pool) -> Result<Client, AppError> {
    pool.get().await.map_err(pool_error)
}

impl AccountStore for PgStore {
    fn changed(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.access_changes())
    }

    fn load(&self) -> StoreFuture<Loaded> {
        self.run(|pool| async move { Ok(load(&mut connect(&pool).await?).await?) })
    }

    fn changes(&self, revision: i64, session_seq: i64) -> StoreFuture<AccessChanges> {
        self.run(
            move |pool| async move { Ok(changes(&mut connect(&pool).await?, revision, session_seq).await?) },
        )
    }

    fn list_users(&self) -> StoreFuture<Vec<User>> {
        self.run(|pool| async move { Ok(list_users(&mut connect(&pool).await?).await?) })
    }

    fn user_with_password(&self, name: String) -> StoreFuture<Option<(User, String)>> {
        self.run(move |pool| async move { Ok(user_with_password(&mut connect(&pool).await?, &name).await?) })
    }

    fn add_user(
        &self,
        name: String,
        role: Role,
        servers: Option<Vec<String>>,
        password_hash: Option<String>,
    ) -> StoreFuture<User> {
        self.run(move |pool| async move {
            Ok(add_user(&mut connect(&pool).await?, &name, role, servers, password_hash).await?)
        })
    }

    fn change_user(&self, name: String, change: UserChange) -> StoreFuture<User> {
        self.run(move |pool| async move { change_user(&mut connect(&pool).await?, &name, change).await })
    }

    fn list_tokens(&self, user: Option<String>) -> StoreFuture<Vec<TokenInfo>> {
        self.run(move |pool| async move {
            Ok(tokens::list_tokens(&mut connect(&pool).await?, user.as_deref()).await?)
        })
    }

    fn create_token(
        &self,
        user: String,
        label: String,
        expires_in: Option<chrono::Duration>,
    ) -> StoreFuture<(TokenInfo, Secret)> {
        self.run(move |pool| async move {
            Ok(tokens::create_token(&mut connect(&pool).await?, &user, &label, expires_in).await?)
        })
    }

    fn revoke_token(&self, id: String) -> StoreFuture<TokenInfo> {
        self.run(move |pool| async move { Ok(tokens::revoke_token(&mut connect(&pool).await?, &id).await?) })
    }

    fn create_session(
        &self,
        user: String,
        secret_hash: String,
        expires_at: DateTime<Utc>,
        remote_addr: Option<String>,
        per_user: usize,
    ) -> StoreFuture<StartedSession> {
        self.run(move |pool| async move {
            Ok(sessions::create_session(
                &mut connect(&pool).await?,
                &user,
                &secret_hash,
                expires_at,
                remote_addr.as_deref(),
                per_user,
            )
            .await?)
        })
    }

    fn delete_session(&self, id: String) -> StoreFuture<bool> {
        self.run(
            move |pool| async move { Ok(sessions::delete_session(&mut connect(&pool).await?, &id).await?) },
        )
    }

    fn persist_sessions(
        &self,
        seen: Vec<(String, DateTime<Utc>)>,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> StoreFuture<usize> {
        self.run(move |pool| async move {
            Ok(persist_sessions(&mut connect(&pool).await?, seen, now, idle).await?)
        })
    }
}
