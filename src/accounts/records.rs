//! The accounts domain's records: users, API tokens and sign-in sessions
//! as the daemon and the command line see them, and the rules every name
//! and tag follows (checked once here, for every caller: 1-64 characters
//! of `[A-Za-z0-9._@-]`, the first a letter or digit, so a name is never an
//! option like `-x` and fits in logs and audit rows unquoted). How they are
//! stored is the store's (`crate::store::sqlite::accounts`).

use chrono::{DateTime, Utc};
use pinkpage_actors::access::{Role, ServerScope};
use pinkpage_actors::{AppError, ErrorCode};
use serde::Serialize;

use crate::records::timestamp;
use crate::text::{CONTROL, WHITESPACE};

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
    /// The store failed (its own message).
    #[error("{0}")]
    Db(String),
}

impl From<AccountError> for AppError {
    fn from(e: AccountError) -> AppError {
        match e {
            AccountError::Exists => AppError::with_detail(ErrorCode::Validation, e.to_string()),
            AccountError::Invalid(_) | AccountError::WeakPassword(_) => {
                AppError::with_detail(ErrorCode::Validation, e.to_string())
            }
            AccountError::NotFound => AppError::with_detail(ErrorCode::NotFound, e.to_string()),
            AccountError::Db(db) => AppError::with_detail(ErrorCode::Database, db),
        }
    }
}

/// Longest user name.
pub const MAX_NAME_LEN: usize = 64;

/// Longest server tag an account may be limited to, in characters.
pub const MAX_TAG_LEN: usize = 64;

/// An account, as listed (never with its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Sign-in name; unique.
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    #[serde(serialize_with = "role_name")]
    #[schema(value_type = String, example = "operator")]
    pub role: Role,
    /// Server tags the account is limited to; `null` means every server.
    pub servers: Option<Vec<String>>,
    /// A disabled account cannot sign in and its tokens do not work.
    pub disabled: bool,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// When it was last changed (RFC 3339, UTC).
    pub changed_at: String,
    /// Whether it can sign in with a password (accounts used only behind
    /// a single-sign-on proxy have none).
    pub has_password: bool,
}

impl User {
    /// The servers this account may use, in the engine's terms.
    pub fn scope(&self) -> ServerScope {
        match &self.servers {
            None => ServerScope::All,
            Some(tags) => ServerScope::Tags(tags.clone()),
        }
    }
}

fn role_name<S: serde::Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(role.as_str())
}

/// Checks a user name against the naming rule.
pub fn validate_name(name: &str) -> Result<(), AccountError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
    let first_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || name.chars().count() > MAX_NAME_LEN || !name.chars().all(ok_char) {
        return Err(AccountError::Invalid(format!(
            "user name must be 1-{MAX_NAME_LEN} characters of A-Z a-z 0-9 . _ @ -, starting with a letter or digit"
        )));
    }
    Ok(())
}

/// Whether a server tag may contain `c`: no whitespace, no control
/// characters, no comma (it separates tags in `--servers a,b`).
fn tag_char_ok(c: char) -> bool {
    !(WHITESPACE.contains(c) || CONTROL.contains(c) || c == ',')
}

/// The OpenAPI pattern of a server tag, made from the same sets as
/// [`validate_tags`] checks (the length is `minLength`/`maxLength`).
pub fn tag_pattern() -> String {
    format!("^[^{}{},]+$", WHITESPACE.class(), CONTROL.class())
}

/// Checks server tags (non-empty, 1-64 characters without whitespace,
/// control characters or commas) and returns them sorted without
/// duplicates.
pub fn validate_tags(tags: Vec<String>) -> Result<Vec<String>, AccountError> {
    if tags.is_empty() {
        return Err(AccountError::Invalid(
            "give at least one server tag, or none to allow every server".to_owned(),
        ));
    }
    for t in &tags {
        let bad = t.is_empty() || t.chars().count() > MAX_TAG_LEN || !t.chars().all(tag_char_ok);
        if bad {
            return Err(AccountError::Invalid(format!(
                "server tag {t:?} must be 1-{MAX_TAG_LEN} characters without whitespace, control characters or commas"
            )));
        }
    }
    let mut tags = tags;
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// Longest token label, in characters.
pub const MAX_LABEL_LEN: usize = 100;

/// The OpenAPI pattern of a token label: no control characters, made from
/// the same set as the store's `create_token` checks.
pub fn label_pattern() -> String {
    format!("^[^{}]*$", CONTROL.class())
}

/// A token as listed: never its secret, nor its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Public id (12 hex characters), the part after `ppt_`.
    pub id: String,
    /// The account it acts as.
    pub user: String,
    /// What it is for, as its creator wrote it.
    pub label: String,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// When it stops working; `null` for never.
    pub expires_at: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
    /// When it last authenticated a request, if ever.
    pub last_used_at: Option<String>,
}

/// Whether a token can be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// Usable.
    Active,
    /// Past its expiry time.
    Expired,
    /// Revoked (which wins over expired).
    Revoked,
}

impl TokenState {
    /// `active`, `expired` or `revoked`, as `token list` shows it.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenState::Active => "active",
            TokenState::Expired => "expired",
            TokenState::Revoked => "revoked",
        }
    }
}

impl TokenInfo {
    /// The token's state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> TokenState {
        if self.revoked_at.is_some() {
            return TokenState::Revoked;
        }
        // Times are all written by `rfc3339`, so they compare as strings.
        match &self.expires_at {
            Some(at) if *at <= timestamp(now) => TokenState::Expired,
            _ => TokenState::Active,
        }
    }
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    /// Public id: what logs and revocation name (never the cookie).
    pub id: String,
    /// Hex SHA-256 of the cookie value; kept out of any response.
    #[serde(skip)]
    pub secret_hash: String,
    /// The account signed in.
    pub user: String,
    /// When the user signed in (RFC 3339, UTC).
    pub created_at: String,
    /// Last request or WebSocket frame, for the idle lifetime.
    pub last_seen_at: String,
    /// The absolute end of the session.
    pub expires_at: String,
    /// The address the sign-in came from, when known.
    pub remote_addr: Option<String>,
    /// Its number in the session log when it started: orders a user's
    /// sessions (the oldest ends first past the per-user cap).
    #[serde(skip)]
    pub seq: i64,
}

/// Everything the daemon's in-memory directory is loaded from, read in
/// one transaction so the revision matches the rows.
pub struct Loaded {
    /// The access revision (accounts and tokens) when read.
    pub revision: i64,
    /// The session log's number when read: the sessions below are every
    /// session started up to it and not ended.
    pub session_seq: i64,
    /// Every account.
    pub users: Vec<User>,
    /// Every token with its digest.
    pub tokens: Vec<(TokenInfo, String)>,
    /// Every sign-in session.
    pub sessions: Vec<SessionRow>,
}

/// How sign-in sessions changed after a number of the session log, read
/// in one transaction: applied to a copy that reflects that number, it
/// brings the copy to [`SessionChanges::seq`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionChanges {
    /// The session log's number these changes reach.
    pub seq: i64,
    /// Sessions started since and still there at `seq`.
    pub started: Vec<SessionRow>,
    /// Public ids of sessions ended since (including some started since).
    pub ended: Vec<String>,
}

/// What a daemon's copy of accounts, tokens and sessions needs to catch
/// up with the store (`crate::store::AccountStore::changes`).
pub enum AccessChanges {
    /// Nothing changed.
    Unchanged,
    /// Only sign-in sessions changed: apply these.
    Sessions(SessionChanges),
    /// Accounts or tokens changed, or the copy is older than the session
    /// log still keeps: everything, to replace the copy with.
    Reload(Loaded),
}

/// A sign-in session just started, and the sessions of the same user it
/// ended (past the per-user cap, oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedSession {
    /// The new session.
    pub session: SessionRow,
    /// Public ids of the sessions it ended.
    pub ended: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_pattern_says_what_the_check_does() {
        // every character the pattern's class names is one the check
        // refuses, and no other (the class is made from the same sets)
        let pattern = tag_pattern();
        let class = pattern
            .strip_prefix("^[^")
            .and_then(|p| p.strip_suffix("]+$"))
            .expect("one negated class");
        assert_eq!(class, format!("{}{},", WHITESPACE.class(), CONTROL.class()));
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let in_class = WHITESPACE.contains(c) || CONTROL.contains(c) || c == ',';
            assert_eq!(tag_char_ok(c), !in_class, "{c:?}");
        }
    }
}
