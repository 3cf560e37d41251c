//! [`Directory`]: the daemon's in-memory copy of accounts, API tokens and
//! sign-in sessions, so checking a credential never waits for SQLite.
//!
//! Who owns it: [`super::Identity`] holds it behind a `RwLock`. Readers (the
//! admission middleware, WebSocket connections re-checking their
//! principal) take the read lock for a few map lookups and never hold it
//! across an `.await`. Writers go through [`super::refresher::refresh`],
//! one at a time: a whole new copy swapped in at once after an account or
//! token changed, or the sessions started and ended since the copy's
//! session log number applied in place (after every sign-in and sign-out,
//! so a sign-in costs the same at any number of sessions). A session's
//! last use is an atomic inside it, so marking use needs only the read
//! lock.
//!
//! The database stays the truth: every write goes there first, and a
//! change made by another process (the `pinkpage user` / `token` commands)
//! is picked up by the refresher within a second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use pinkpage_actors::access::{Credential, Principal, Role, ServerScope};

use crate::accounts::{self, Loaded, SessionChanges, SessionRow, User};

/// Why a credential is not accepted (the detail of a 10002).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing matched: an unknown or malformed token or cookie.
    Unknown,
    /// The token was revoked.
    Revoked,
    /// The token or sign-in session ran past its lifetime.
    Expired,
    /// The account is disabled.
    Disabled,
    /// The account no longer exists.
    NoAccount,
}

impl Refusal {
    /// The text of the 10002 detail and of a WebSocket close reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Unknown => "credential not recognised",
            Refusal::Revoked => "credential revoked",
            Refusal::Expired => "credential expired",
            Refusal::Disabled => "account disabled",
            Refusal::NoAccount => "account no longer exists",
        }
    }
}

/// One account as the daemon checks it.
#[derive(Debug, Clone)]
pub struct Account {
    /// Database id.
    pub id: i64,
    /// Its name, shared with every principal made from it.
    pub name: Arc<str>,
    /// Its role.
    pub role: Role,
    /// The servers it may use.
    pub servers: ServerScope,
    /// Disabled accounts sign in nowhere.
    pub disabled: bool,
}

impl Account {
    fn from_user(u: &User) -> Account {
        Account {
            id: u.id,
            name: Arc::from(u.name.as_str()),
            role: u.role,
            servers: u.scope(),
            disabled: u.disabled,
        }
    }

    fn principal(&self, credential: Credential) -> Principal {
        Principal {
            user: self.name.clone(),
            role: self.role,
            servers: self.servers.clone(),
            credential,
        }
    }
}

/// An API token as the daemon checks it.
#[derive(Debug, Clone)]
struct TokenEntry {
    user: String,
    digest: String,
    expires_at: Option<DateTime<Utc>>,
    revoked: bool,
}

/// A sign-in session.
#[derive(Debug)]
pub struct SessionEntry {
    /// Public id (logs, revocation); never the cookie.
    pub id: String,
    /// The account.
    pub user: String,
    /// When it ends however it is used.
    pub expires_at: DateTime<Utc>,
    /// The digest of its cookie (the key it is found by; not a secret).
    cookie_digest: String,
    /// Last use, Unix milliseconds; bumped by every request and frame.
    last_seen_ms: AtomicI64,
    /// The last use the database has, Unix milliseconds: only sessions
    /// used since are written back.
    persisted_ms: AtomicI64,
}

impl SessionEntry {
    fn from_row(s: &SessionRow) -> SessionEntry {
        let last = parse_time(&s.last_seen_at).unwrap_or_else(Utc::now);
        SessionEntry {
            id: s.id.clone(),
            user: s.user.clone(),
            expires_at: parse_time(&s.expires_at).unwrap_or_else(Utc::now),
            cookie_digest: s.secret_hash.clone(),
            last_seen_ms: AtomicI64::new(last.timestamp_millis()),
            persisted_ms: AtomicI64::new(last.timestamp_millis()),
        }
    }

    /// Last use.
    pub fn last_seen(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.last_seen_ms.load(Ordering::Relaxed)).unwrap_or_default()
    }

    /// Whether it still lets its holder in at `now`.
    fn live(&self, now: DateTime<Utc>, idle: chrono::Duration) -> bool {
        self.expires_at > now && !idle_past(self.last_seen(), idle, now)
    }
}

/// See the module docs.
#[derive(Default)]
pub struct Directory {
    /// The access revision (accounts and tokens) this copy reflects.
    pub revision: i64,
    /// The session log number this copy's sessions reflect.
    pub session_seq: i64,
    accounts: HashMap<String, Account>,
    tokens: HashMap<String, TokenEntry>,
    /// By the cookie's digest.
    sessions: HashMap<String, Arc<SessionEntry>>,
    /// The same sessions by public id (what a principal carries).
    session_ids: HashMap<String, Arc<SessionEntry>>,
}

/// Whether a session last used at `last` is idle past `idle` at `now`
/// (an idle lifetime too long to add never runs out).
fn idle_past(last: DateTime<Utc>, idle: chrono::Duration, now: DateTime<Utc>) -> bool {
    last.checked_add_signed(idle).is_some_and(|t| t <= now)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Directory {
    /// A copy of what was loaded. Sessions already in `previous` keep their
    /// in-memory last use (newer than the database's, written lazily).
    pub fn from_loaded(loaded: Loaded, previous: &Directory) -> Directory {
        let accounts = loaded
            .users
            .iter()
            .map(|u| (u.name.clone(), Account::from_user(u)))
            .collect();
        let tokens = loaded
            .tokens
            .into_iter()
            .map(|(t, digest)| {
                (
                    t.id.clone(),
                    TokenEntry {
                        user: t.user,
                        digest,
                        expires_at: t.expires_at.as_deref().and_then(parse_time),
                        revoked: t.revoked_at.is_some(),
                    },
                )
            })
            .collect();
        let sessions = loaded
            .sessions
            .into_iter()
            .map(|s| {
                if let Some(old) = previous.sessions.get(&s.secret_hash) {
                    return (s.secret_hash, old.clone());
                }
                let entry = SessionEntry::from_row(&s);
                (s.secret_hash, Arc::new(entry))
            })
            .collect::<HashMap<String, Arc<SessionEntry>>>();
        let session_ids = sessions.values().map(|s| (s.id.clone(), s.clone())).collect();
        Directory {
            revision: loaded.revision,
            session_seq: loaded.session_seq,
            accounts,
            tokens,
            sessions,
            session_ids,
        }
    }

    /// Applies the sessions started and ended since this copy's session
    /// log number, unless the copy already reflects `changes.seq` (then
    /// they are older than what it has). Returns whether a session that
    /// still let its holder in ended (open connections must re-check; one
    /// that had already run out was announced when it did).
    pub fn apply_sessions(
        &mut self,
        changes: SessionChanges,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> bool {
        if changes.seq <= self.session_seq {
            return false;
        }
        let mut live_ended = false;
        for id in changes.ended {
            if let Some(entry) = self.session_ids.remove(&id) {
                live_ended |= entry.live(now, idle);
                self.sessions.remove(&entry.cookie_digest);
            }
        }
        for row in changes.started {
            if self.sessions.contains_key(&row.secret_hash) {
                continue;
            }
            let entry = Arc::new(SessionEntry::from_row(&row));
            self.session_ids.insert(entry.id.clone(), entry.clone());
            self.sessions.insert(row.secret_hash, entry);
        }
        self.session_seq = changes.seq;
        live_ended
    }

    /// How many sign-in sessions this copy holds.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether any account exists (with none, the log and `/auth/me` say
    /// how to create the first admin).
    pub fn has_accounts(&self) -> bool {
        !self.accounts.is_empty()
    }

    /// The account named `name`.
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.get(name)
    }

    fn usable(&self, name: &str) -> Result<&Account, Refusal> {
        let account = self.accounts.get(name).ok_or(Refusal::NoAccount)?;
        if account.disabled {
            return Err(Refusal::Disabled);
        }
        Ok(account)
    }

    /// The principal of a bearer token (`ppt_...`), checked at `now`.
    pub fn by_token(&self, token: &str, now: DateTime<Utc>) -> Result<Principal, Refusal> {
        let parsed = accounts::token::Token::parse(token).ok_or(Refusal::Unknown)?;
        let id = parsed.id().to_owned();
        let entry = self.tokens.get(&id).ok_or(Refusal::Unknown)?;
        if !accounts::token::digests_equal(&parsed.digest(), &entry.digest) {
            return Err(Refusal::Unknown);
        }
        if entry.revoked {
            return Err(Refusal::Revoked);
        }
        if entry.expires_at.is_some_and(|e| e <= now) {
            return Err(Refusal::Expired);
        }
        Ok(self.usable(&entry.user)?.principal(Credential::Token(id)))
    }

    /// The principal of a session cookie value, checked at `now` against
    /// the idle lifetime; marks the session used.
    pub fn by_session(
        &self,
        cookie: &str,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> Result<Principal, Refusal> {
        let digest = accounts::token::digest(cookie);
        let entry = self.sessions.get(&digest).ok_or(Refusal::Unknown)?;
        if entry.expires_at <= now || idle_past(entry.last_seen(), idle, now) {
            return Err(Refusal::Expired);
        }
        let principal = self
            .usable(&entry.user)?
            .principal(Credential::Session(entry.id.clone()));
        entry
            .last_seen_ms
            .store(now.timestamp_millis(), Ordering::Relaxed);
        Ok(principal)
    }

    /// The principal of a user named by a trusted proxy.
    pub fn by_proxy(&self, user: &str) -> Result<Principal, Refusal> {
        Ok(self.usable(user)?.principal(Credential::Proxy))
    }

    /// Re-checks a principal made earlier (a WebSocket connection's), at
    /// `now`: its credential must still be good; the answer carries the
    /// account's current role and servers.
    pub fn recheck(
        &self,
        p: &Principal,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> Result<Principal, Refusal> {
        match &p.credential {
            Credential::Token(id) => {
                let entry = self.tokens.get(id).ok_or(Refusal::Revoked)?;
                if entry.revoked {
                    return Err(Refusal::Revoked);
                }
                if entry.expires_at.is_some_and(|e| e <= now) {
                    return Err(Refusal::Expired);
                }
            }
            Credential::Session(id) => {
                let entry = self.session_ids.get(id).ok_or(Refusal::Revoked)?;
                if entry.expires_at <= now || idle_past(entry.last_seen(), idle, now) {
                    return Err(Refusal::Expired);
                }
            }
            Credential::Proxy => {}
        }
        Ok(self.usable(&p.user)?.principal(p.credential.clone()))
    }

    /// The account behind `p` as it is now, whatever became of the
    /// credential `p` presented: for work that outlives its credential (a
    /// workflow run goes on after its starter signs out).
    pub fn account_now(&self, p: &Principal) -> Result<Principal, Refusal> {
        Ok(self.usable(&p.user)?.principal(p.credential.clone()))
    }

    /// Account `name` as it is now, whatever credential its work was
    /// started with: for work that belongs to the account rather than to
    /// a sign-in (operator terminals and their shares outlive a sign-out).
    /// The principal's credential is a placeholder: it is for judging
    /// ([`super::rejudge::judge`]), never for admitting a request.
    pub fn account_as_is(&self, name: &str) -> Result<Principal, Refusal> {
        Ok(self.usable(name)?.principal(Credential::Proxy))
    }

    /// Marks the session behind `p` used at `now` (a WebSocket frame),
    /// unless it is already idle past `idle`: a frame cannot bring an
    /// expired session back in the moment before the tick notices.
    pub fn touch(&self, p: &Principal, now: DateTime<Utc>, idle: chrono::Duration) {
        if let Credential::Session(id) = &p.credential {
            if let Some(entry) = self.session_ids.get(id) {
                if !idle_past(entry.last_seen(), idle, now) {
                    entry
                        .last_seen_ms
                        .fetch_max(now.timestamp_millis(), Ordering::Relaxed);
                }
            }
        }
    }

    /// The public id of the session behind a cookie value.
    pub fn session_id_of(&self, cookie: &str) -> Option<String> {
        self.sessions
            .get(&accounts::token::digest(cookie))
            .map(|s| s.id.clone())
    }

    /// Sessions used since their last use was last written back: (public
    /// id, last use) to write.
    pub fn sessions_to_persist(&self) -> Vec<(String, DateTime<Utc>)> {
        self.sessions
            .values()
            .filter(|s| s.last_seen_ms.load(Ordering::Relaxed) > s.persisted_ms.load(Ordering::Relaxed))
            .map(|s| (s.id.clone(), s.last_seen()))
            .collect()
    }

    /// Records that the database now has these last uses.
    pub fn persisted(&self, seen: &[(String, DateTime<Utc>)]) {
        for (id, at) in seen {
            if let Some(s) = self.session_ids.get(id) {
                s.persisted_ms.fetch_max(at.timestamp_millis(), Ordering::Relaxed);
            }
        }
    }

    /// Whether something in this copy ran out between `before` and `now`
    /// (a session's lifetime, a token's expiry): open connections must
    /// re-check.
    pub fn something_expired(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> bool {
        let crossed = |t: DateTime<Utc>| before < t && t <= now;
        self.tokens.values().any(|t| t.expires_at.is_some_and(crossed))
            || self
                .sessions
                .values()
                .any(|s| crossed(s.expires_at) || s.last_seen().checked_add_signed(idle).is_some_and(crossed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, user: &str, seq: i64) -> SessionRow {
        let now = accounts_time(Utc::now());
        SessionRow {
            id: id.to_owned(),
            secret_hash: format!("digest-of-{id}"),
            user: user.to_owned(),
            created_at: now.clone(),
            last_seen_at: now,
            expires_at: accounts_time(Utc::now() + chrono::Duration::hours(1)),
            remote_addr: None,
            seq,
        }
    }

    fn accounts_time(t: DateTime<Utc>) -> String {
        crate::records::timestamp(t)
    }

    fn changes(seq: i64, started: Vec<SessionRow>, ended: &[&str]) -> SessionChanges {
        SessionChanges {
            seq,
            started,
            ended: ended.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn session_changes_are_applied_in_place_once() {
        let idle = chrono::Duration::minutes(30);
        let now = Utc::now();
        let mut dir = Directory::default();
        assert!(!dir.apply_sessions(
            changes(2, vec![row("a", "ana", 1), row("b", "ana", 2)], &[]),
            now,
            idle
        ));
        assert_eq!((dir.session_count(), dir.session_seq), (2, 2));
        assert_eq!(dir.session_ids["a"].user, "ana");
        // an older read (a slower caller) changes nothing
        assert!(!dir.apply_sessions(changes(1, vec![], &["a"]), now, idle));
        assert_eq!(dir.session_count(), 2);
        // a live session ended: connections must re-check
        assert!(dir.apply_sessions(changes(4, vec![row("c", "bo", 4)], &["a"]), now, idle));
        assert_eq!(dir.session_count(), 2);
        assert!(!dir.session_ids.contains_key("a") && !dir.sessions.contains_key("digest-of-a"));
        // one that had run out already was announced when it did
        let later = now + chrono::Duration::hours(2);
        assert!(!dir.apply_sessions(changes(5, vec![], &["b"]), later, idle));
        assert_eq!(dir.session_count(), 1);
    }

    #[test]
    fn only_sessions_used_since_the_last_write_back_are_written_again() {
        let mut dir = Directory::default();
        let now = Utc::now();
        let idle = chrono::Duration::minutes(30);
        dir.apply_sessions(
            changes(2, vec![row("a", "ana", 1), row("b", "ana", 2)], &[]),
            now,
            idle,
        );
        assert!(dir.sessions_to_persist().is_empty(), "nothing used yet");
        let used = now + chrono::Duration::seconds(5);
        dir.session_ids["a"]
            .last_seen_ms
            .store(used.timestamp_millis(), Ordering::Relaxed);
        let seen = dir.sessions_to_persist();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, "a");
        dir.persisted(&seen);
        assert!(dir.sessions_to_persist().is_empty());
    }
}
