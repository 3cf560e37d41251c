//! Who is asking, and the one rule of what a role may do.
//!
//! A [`Principal`] is made by the daemon once per request or WebSocket
//! connection from its credential (a session cookie, an API token, or a
//! trusted proxy's header) and then travels with the work: the lock grant
//! names its user, audit rows and runs record it. The engine never looks
//! credentials up itself.
//!
//! What each route and message type needs is a [`Need`], decided in the
//! daemon's one access table (`src/auth/table.rs`); [`Principal::meets`] and
//! [`Principal::may_use`] are the only two questions ever asked of a
//! principal.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A role, from least to most powerful (the order is used: an admin meets
/// every operator need).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads health, servers, the session status, runs and transfers.
    Viewer,
    /// Also runs work (terminals, the lock, transfers, batch, SFTP,
    /// scripts, diffs) on the servers its tags allow.
    Operator,
    /// Everything: force release, users and tokens, the audit trail.
    Admin,
}

impl Role {
    /// Every role, least powerful first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The role's name as stored and shown (`viewer`, `operator`, `admin`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role '{other}'; expected viewer, operator or admin"
            )),
        }
    }
}

/// What a route or message type needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Need {
    /// No credential at all (the health summary, the docs, sign-in).
    Anyone,
    /// Any signed-in user.
    Viewer,
    /// An operator or an admin.
    Operator,
    /// An admin.
    Admin,
}

impl Need {
    /// The least role that meets this need (`None` for [`Need::Anyone`]).
    pub const fn least_role(self) -> Option<Role> {
        match self {
            Need::Anyone => None,
            Need::Viewer => Some(Role::Viewer),
            Need::Operator => Some(Role::Operator),
            Need::Admin => Some(Role::Admin),
        }
    }

    /// The name used in `docs/security.md` (`anyone`, `viewer`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Need::Anyone => "anyone",
            Need::Viewer => "viewer",
            Need::Operator => "operator",
            Need::Admin => "admin",
        }
    }
}

/// Which servers a principal may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerScope {
    /// Every configured server.
    All,
    /// Only servers carrying at least one of these tags.
    Tags(Vec<String>),
}

impl ServerScope {
    /// Whether a server with `tags` is in scope.
    pub fn allows(&self, tags: &[String]) -> bool {
        match self {
            ServerScope::All => true,
            ServerScope::Tags(mine) => tags.iter().any(|t| mine.contains(t)),
        }
    }
}

/// How the principal proved who it is; what a revocation is matched on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A sign-in session; the id is the public session id (not the cookie).
    Session(String),
    /// An API token, by its public id.
    Token(String),
    /// A trusted reverse proxy's user header.
    Proxy,
}

/// Who is asking. Cheap to clone (the strings are shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The account name.
    pub user: Arc<str>,
    /// The account's role when the credential was checked.
    pub role: Role,
    /// The servers the account may use.
    pub servers: ServerScope,
    /// What was presented.
    pub credential: Credential,
}

impl Principal {
    /// Whether this principal meets `need`.
    pub fn meets(&self, need: Need) -> bool {
        match need.least_role() {
            None => true,
            Some(least) => self.role >= least,
        }
    }

    /// Whether this principal may act on a server carrying `tags`.
    pub fn may_use(&self, tags: &[String]) -> bool {
        self.role == Role::Admin || self.servers.allows(tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, servers: ServerScope) -> Principal {
        Principal {
            user: "ana".into(),
            role,
            servers,
            credential: Credential::Proxy,
        }
    }

    #[test]
    fn roles_meet_their_own_need_and_every_lesser_one() {
        for role in Role::ALL {
            let p = principal(role, ServerScope::All);
            assert!(p.meets(Need::Anyone));
            assert!(p.meets(Need::Viewer));
            assert_eq!(p.meets(Need::Operator), role >= Role::Operator);
            assert_eq!(p.meets(Need::Admin), role == Role::Admin);
        }
    }

    #[test]
    fn tags_limit_operators_but_not_admins() {
        let scope = ServerScope::Tags(vec!["a".into()]);
        let op = principal(Role::Operator, scope.clone());
        assert!(op.may_use(&["a".into(), "x".into()]));
        assert!(!op.may_use(&["b".into()]));
        assert!(!op.may_use(&[]));
        assert!(principal(Role::Admin, scope).may_use(&["b".into()]));
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
