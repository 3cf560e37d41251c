//! Accounts: users, API tokens and sign-in sessions, stored in SQLite.
//!
//! This module is storage and cryptography only; it knows nothing of HTTP.
//! The daemon's `src/auth/` turns what is stored here into a
//! [`pinkpage_actors::access::Principal`]; the command line (`pinkpage user
//! ...`, `pinkpage token ...`) changes it directly through a connection of
//! its own, with no daemon running.
//!
//! # Layout
//! - [`password`]: Argon2id hashing and verification, the strength rule.
//! - [`commands`]: `pinkpage user ...` and `pinkpage token ...`, each
//!   change written with its audit row.
//! - [`token`]: the API token format (`ppt_<id>_<secret>`), cookie secrets,
//!   digests and their constant-time comparison.
//! - [`db`] (re-exported here): the rows of `users`, `api_tokens`,
//!   `web_sessions` and the `auth_revision` counter, as synchronous
//!   functions on a `rusqlite::Connection` (the daemon calls them on its
//!   store threads, the command line on its own connection).
//!
//! What is never stored or printed: a password, a whole token, a cookie
//! value. Only their hashes reach the database; [`Secret`] carries them in
//! memory.
//!
//! [`Secret`]: pinkpage_actors::secret::Secret

pub mod commands;
pub mod db;
pub mod password;
pub mod token;

pub use db::*;

use pinkpage_actors::{AppError, ErrorCode};

/// What the daemon logs at start-up (and `/api/v1/auth/me` shows) while no
/// account exists: how to create the first admin.
pub fn first_admin_hint() -> &'static str {
    "pinkpage user add NAME --role admin"
}

/// Why an account operation failed. Messages never carry a secret.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A user with this name already exists.
    #[error("a user with this name already exists")]
    Exists,
    /// No such user, token or session.
    #[error("not found")]
    NotFound,
    /// A name, tag, label or time that cannot be used; says which and why.
    #[error("{0}")]
    Invalid(String),
    /// The password does not meet the strength rule; says which part.
    #[error("weak password: {0}")]
    WeakPassword(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

impl From<AccountError> for AppError {
    fn from(e: AccountError) -> AppError {
        match e {
            AccountError::Exists => AppError::with_detail(ErrorCode::Validation, e.to_string()),
            AccountError::Invalid(_) | AccountError::WeakPassword(_) => {
                AppError::with_detail(ErrorCode::Validation, e.to_string())
            }
            AccountError::NotFound => AppError::with_detail(ErrorCode::NotFound, e.to_string()),
            AccountError::Db(db) => AppError::with_detail(ErrorCode::Database, db.to_string()),
        }
    }
}

/// Now, as every time in the store is written: RFC 3339, UTC, milliseconds.
/// One format everywhere also makes the strings sort in time order, which
/// the expiry queries rely on.
pub(crate) fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_catalogue() {
        let code = |e: AccountError| AppError::from(e).code;
        assert_eq!(code(AccountError::Exists), ErrorCode::Validation);
        assert_eq!(code(AccountError::Invalid("x".into())), ErrorCode::Validation);
        assert_eq!(
            code(AccountError::WeakPassword("x".into())),
            ErrorCode::Validation
        );
        assert_eq!(code(AccountError::NotFound), ErrorCode::NotFound);
        assert_eq!(
            code(AccountError::Db(rusqlite::Error::QueryReturnedNoRows)),
            ErrorCode::Database
        );
    }

    #[test]
    fn the_first_admin_hint_names_the_command() {
        assert_eq!(first_admin_hint(), "pinkpage user add NAME --role admin");
    }
}
