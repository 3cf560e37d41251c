//! The audit chain: what makes the audit trail tamper-evident, apart
//! from any database (docs/security.md, "Tamper evidence").
//!
//! Every audit row carries `mac = HMAC-SHA-256(key, "pinkpage-audit-row-v1"
//! || prev || canonical(row))`, where `prev` is the previous row's MAC and
//! `canonical` a fixed-order, length-prefixed encoding of every stored
//! field, its id and instance included ([`COLUMNS`], [`Field`]): a changed
//! field, a row moved or a row removed from the middle breaks the next
//! link, and without the key nobody can make links that hold. The rows
//! written before the chain existed are sealed together under one genesis
//! MAC ([`AuditKey::genesis`]); the first chained row links to it.
//! Retention cuts a whole prefix and records the cut in a row that
//! carries the link it starts from.
//!
//! What the chain alone cannot show: the newest rows deleted (the chain
//! just ends earlier); a head printed before and kept elsewhere
//! ([`Head`], `pinkpage audit verify --head`) shows it. Anyone with the
//! key can forge.
//!
//! This module is the same for every database: a store computes the links
//! inside its append transaction ([`Chain::link`]) and feeds its rows,
//! in id order, to a [`Walk`] to verify them.
//!
//! - [`key`]: the key file and the key.
//! - `link`: a row's canonical fields, a MAC, a link (`<id>:<mac>`).
//! - `walk`: verifying rows in order.

pub mod key;
mod link;
mod walk;

pub use self::key::{AuditKey, KeyError, KeyFile};
pub use self::link::{Field, Head, Mac, COLUMNS};
pub use self::walk::{Broken, Problem, Verified, Walk};

/// The chain of one database: its key and where its links begin (the last
/// row sealed at genesis, and the genesis MAC). Shared by the store's
/// threads; it never changes once the chain exists.
#[derive(Debug)]
pub struct Chain {
    /// The key every MAC is made with.
    key: AuditKey,
    /// The last sealed row id (0: none) and the genesis MAC.
    genesis: Head,
}

impl Chain {
    /// The chain of `key` whose genesis is `genesis`.
    pub fn new(key: AuditKey, genesis: Head) -> Chain {
        Chain { key, genesis }
    }

    /// The key.
    pub fn key(&self) -> &AuditKey {
        &self.key
    }

    /// Where the chain begins: the last sealed row and the genesis MAC.
    pub fn genesis(&self) -> Head {
        self.genesis
    }

    /// The MAC of `row` following `prev`.
    pub fn link(&self, prev: &Mac, row: &[Field]) -> Mac {
        self.key.link(prev, row)
    }
}

/// The key of an existing chain, whose record says `key_check` (hex) and
/// `sealed_at`: it must be in `key_file` and be the chain's. For every
/// store's opening.
pub fn existing_key(key_file: &KeyFile, key_check: &str, sealed_at: &str) -> Result<AuditKey, ChainError> {
    let key = key_file.load().map_err(|e| match e {
        KeyError::Missing { path } => ChainError::KeyMissing {
            path,
            since: sealed_at.to_owned(),
        },
        other => other.into(),
    })?;
    is_the_chains(&key, key_check, key_file)?;
    Ok(key)
}

/// `Ok` when `key` is the one whose check value a chain's record holds.
pub fn is_the_chains(key: &AuditKey, key_check: &str, key_file: &KeyFile) -> Result<(), ChainError> {
    if Mac::from_hex(key_check).is_some_and(|c| c.matches(&key.check_value())) {
        Ok(())
    } else {
        Err(ChainError::WrongKey {
            path: key_file.path().to_owned(),
        })
    }
}

/// What `pinkpage audit verify` found.
#[derive(Debug)]
pub struct Verification {
    /// Whether the key's check value is the chain record's.
    pub key_matches: bool,
    /// The chain verified, or its first bad row.
    pub chain: Result<Verified, Broken>,
}

/// Why a chain cannot be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The key file cannot be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The trail is chained and its key is gone: never replaced silently,
    /// or the chain could no longer be verified and a forger's new key
    /// would be as good as the old one.
    #[error(
        "the audit trail is chained (since {since}) but its key file {path} does not exist: restore the key that chained it (PINKPAGE_AUDIT_KEY_FILE); a new key is never made for an existing chain"
    )]
    KeyMissing {
        /// The key file.
        path: std::path::PathBuf,
        /// When the chain began.
        since: String,
    },
    /// The key is not the chain's (its check value differs).
    #[error(
        "{path} is not the key the audit trail was chained with (its check value differs): start with the key that chained it"
    )]
    WrongKey {
        /// The key file.
        path: std::path::PathBuf,
    },
    /// The database has no chain yet (nothing to verify).
    #[error(
        "the audit trail has no chain yet: start the daemon (or run an account command) once to seal it"
    )]
    NoChain,
    /// The store failed.
    #[error("{0}")]
    Store(String),
}

#[cfg(test)]
mod tests;
