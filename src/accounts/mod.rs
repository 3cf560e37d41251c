//! Accounts: users, API tokens and sign-in sessions: their records, the
//! rules their names follow, and the cryptography that guards them.
//!
//! This module knows nothing of HTTP or SQL. The daemon's `src/auth/`
//! turns accounts into a [`pinkpage_actors::access::Principal`]; the store
//! keeps them (`crate::store::AccountStore`, SQL in
//! `crate::store::sqlite::accounts`); the command line (`pinkpage user ...`,
//! `pinkpage token ...`, in `crate::cli`) changes them with no daemon
//! running.
//!
//! # Layout
//! - [`password`]: Argon2id hashing and verification, the strength rule.
//! - [`token`]: the API token format (`ppt_<id>_<secret>`), cookie secrets,
//!   digests and their constant-time comparison.
//! - `records` (re-exported here): [`User`], [`TokenInfo`], [`SessionRow`],
//!   [`Loaded`] and the naming rules.
//!
//! What is never stored or printed: a password, a whole token, a cookie
//! value. Only their hashes reach the database; [`Secret`] carries them in
//! memory.
//!
//! [`Secret`]: pinkpage_actors::secret::Secret

pub mod password;
mod records;
pub mod token;

pub use records::*;

/// What the daemon logs at start-up (and `/api/v1/auth/me` shows) while no
/// account exists: how to create the first admin.
pub fn first_admin_hint() -> &'static str {
    "pinkpage user add NAME --role admin"
}

/// An account's server tags as stored: a JSON array, or `None` for every
/// server. The one text form for every store.
pub fn tags_json(servers: &Option<Vec<String>>) -> Option<String> {
    servers
        .as_ref()
        .map(|t| serde_json::Value::from(t.clone()).to_string())
}

/// How long the session log keeps an entry (every store prunes it so):
/// far longer than a daemon's one-second look, so only a daemon whose
/// store failed for minutes finds the log pruned past what it saw (and
/// reloads whole).
pub const SESSION_LOG_KEPT: chrono::Duration = chrono::Duration::minutes(10);

#[cfg(test)]
mod tests {
    use pinkpage_actors::{AppError, ErrorCode};

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
            code(AccountError::Db("disk I/O error".into())),
            ErrorCode::Database
        );
    }

    #[test]
    fn the_first_admin_hint_names_the_command() {
        assert_eq!(first_admin_hint(), "pinkpage user add NAME --role admin");
    }
}
