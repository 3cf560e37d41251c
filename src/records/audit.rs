//! The audit trail: who did what, when, on which server, and how it
//! ended. Every domain writes rows with the same fields; the store chains
//! them (`crate::store::chain`).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It happened (for a `*.start` row: the work started).
    Ok,
    /// It was not allowed: a refused sign-in, access withdrawn, a request
    /// the daemon turned down (its `code` says why).
    Refused,
    /// It was tried and went wrong (its `code` says why when there is one).
    Failed,
    /// Someone stopped it: a cancel, a client that left.
    Cancelled,
    /// The daemon stopped under it (found at the next start).
    Interrupted,
}

impl Outcome {
    /// Every outcome, for parsing and documentation.
    pub const ALL: [Outcome; 5] = [
        Outcome::Ok,
        Outcome::Refused,
        Outcome::Failed,
        Outcome::Cancelled,
        Outcome::Interrupted,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// The outcome named `s`, if it is one.
    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// The domain a row belongs to when its writer does not say: the part of
/// the daemon its action comes from. WebSocket connections name their
/// endpoint's domain themselves (`WsConnection::audit_event`), and the
/// command line says `cli`.
pub fn domain_of(action: &str) -> &'static str {
    let first = action.split('.').next().unwrap_or("");
    match first {
        "session" | "ssh" | "transfer" => "stub",
        "batch" => "bmx4",
        "sftp" | "script" => "bmx5",
        "diff" => "diff",
        "terminal" | "pty" => "terminal",
        "workflow" => "workflow",
        "auth" => "auth",
        "user" | "token" => "rest",
        "recording" | "recordings" => "recordings",
        "command" => "policy",
        _ => "system",
    }
}

/// An audit event: recorded through the journal, listed with its id
/// ([`AuditEvent`]).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewAuditEvent {
    /// When it happened (RFC 3339, UTC). Rows can wait in the journal while
    /// the store fails, so the time of writing is not the time of the
    /// action.
    pub at: DateTime<Utc>,
    /// Connection id, `rest`, `cli`, `system`, `workflow:<run>`, or the
    /// name tried at a sign-in.
    pub actor: String,
    /// Dotted action name (`session.start`, `ssh.command.end`, ...).
    pub action: String,
    /// Which part of the daemon wrote it: `stub`, `bmx4`, `bmx5`, `diff`,
    /// `terminal`, `workflow`, `rest`, `auth`, `cli`, `system`, ...
    /// (rows from before domains were recorded: derived from their action).
    pub domain: String,
    /// The server acted on, when there is one.
    pub server: Option<String>,
    /// What was acted on besides the server: an account name, a token id,
    /// a terminal id, a run id, a path, a recording id.
    pub target: Option<String>,
    /// How it ended (`None` only on rows from before outcomes were
    /// recorded).
    pub outcome: Option<Outcome>,
    /// The error code, when it ended with one.
    pub code: Option<u32>,
    /// The command run, when there is one.
    pub command: Option<String>,
    /// The remote exit status, when there is one.
    pub exit_status: Option<i64>,
    /// Bytes moved or printed, when counted.
    pub bytes: Option<i64>,
    /// Anything else, as a JSON object; never a secret.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    /// The signed-in user who did it (`None` for the daemon itself).
    pub user: Option<String>,
    /// The client's address.
    pub remote_addr: Option<String>,
}

impl NewAuditEvent {
    /// An event with just an actor and an action, happening now, in the
    /// action's domain ([`domain_of`]), its outcome `ok`.
    pub fn new(actor: impl Into<String>, action: impl Into<String>) -> Self {
        let action = action.into();
        NewAuditEvent {
            at: chrono::Utc::now(),
            actor: actor.into(),
            domain: domain_of(&action).to_owned(),
            action,
            server: None,
            target: None,
            outcome: Some(Outcome::Ok),
            code: None,
            command: None,
            exit_status: None,
            bytes: None,
            detail: None,
            user: None,
            remote_addr: None,
        }
    }

    /// The same event, naming who did it and from where.
    pub fn by(mut self, user: Option<&str>, remote_addr: Option<String>) -> Self {
        self.user = user.map(str::to_owned);
        self.remote_addr = remote_addr;
        self
    }

    /// The same event, written by `domain`.
    pub fn in_domain(mut self, domain: &str) -> Self {
        domain.clone_into(&mut self.domain);
        self
    }

    /// The same event, acting on `target`.
    pub fn on(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Sets how it ended and with which code.
    pub fn ended(&mut self, outcome: Outcome, code: Option<u32>) {
        self.outcome = Some(outcome);
        self.code = code;
    }

    /// Whether anyone can cause this row without signing in
    /// (`auth.login.*`: failed and throttled logins): the journal holds
    /// such rows to a small share of its bound, so a flood of them cannot
    /// crowd out the rows of real work. A good sign-in (`auth.login`) and a
    /// sign-out are real work: they need a password or a session.
    pub fn is_anonymous(&self) -> bool {
        self.action.starts_with("auth.login.")
    }

    /// The row's size in memory, near enough: its strings and its detail.
    pub fn weight(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        256 + self.actor.len()
            + self.action.len()
            + self.domain.len()
            + text(&self.server)
            + text(&self.target)
            + text(&self.command)
            + text(&self.user)
            + text(&self.remote_addr)
            + self.detail.as_ref().map_or(0, |d| d.to_string().len())
    }
}

/// A stored audit event: the event, the id the store gave it, the
/// instance that wrote it and its link in the chain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    /// Row id, assigned by the store; increases with time.
    pub id: i64,
    /// The event.
    #[serde(flatten)]
    pub event: NewAuditEvent,
    /// The daemon instance that wrote it.
    pub instance: String,
    /// The row's MAC in the audit chain (64 hex digits):
    /// HMAC-SHA-256 over the previous row's MAC and this row's fields
    /// (docs/security.md, "Tamper evidence"). `None` on rows from before
    /// the chain, which one genesis MAC seals together.
    pub mac: Option<String>,
}

/// Which events to list: newest first, `limit` at most, older than
/// `before_id` when given (for paging), and only those every given filter
/// allows.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Most rows to return.
    pub limit: u32,
    /// Only rows with a smaller id.
    pub before_id: Option<i64>,
    /// Only rows with this action.
    pub action: Option<String>,
    /// Only rows by this user.
    pub user: Option<String>,
    /// Only rows on this server.
    pub server: Option<String>,
    /// Only rows of this domain.
    pub domain: Option<String>,
    /// Only rows of events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only rows of events before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only rows whose command, target or detail contains this text
    /// (ASCII letters in any case).
    pub text: Option<String>,
}

/// What a retention cut took (`AuditStore::cut`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCut {
    /// Every row with this id or a smaller one is gone.
    pub through_id: i64,
    /// How many rows went.
    pub rows: u64,
    /// The id of the `audit.cut` row that records it.
    pub cut_id: i64,
}

/// The pairs of actions that open and close a piece of work a connection
/// does (at most one of each kind at a time per connection, so a start is
/// closed by the next end of its kind from the same actor), and the action
/// that records it was cut off by the daemon's end. Every way such work
/// ends while the daemon runs writes its end row, a client that leaves
/// included (`audit_cut_off` in `ws::stub` and `ws::bmx5::script`). Lock
/// sessions are not here: a lock released by a disconnect or taken away by
/// an admin has no `session.end`, and a restart always starts with the lock
/// free.
pub const WORK_PAIRS: [(&str, &str, &str); 3] = [
    ("ssh.command.start", "ssh.command.end", "ssh.command.interrupted"),
    ("transfer.start", "transfer.end", "transfer.interrupted"),
    ("script.start", "script.end", "script.interrupted"),
];

/// Every action of [`WORK_PAIRS`]: the rows start-up recovery reads.
pub fn work_actions() -> Vec<&'static str> {
    WORK_PAIRS.iter().flat_map(|(s, e, i)| [*s, *e, *i]).collect()
}

/// One stored row of work as start-up recovery reads it, whatever the
/// store: `id, at, actor, action, server, command, user, remote_addr,
/// detail, domain, target`.
pub struct WorkRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub server: Option<String>,
    pub command: Option<String>,
    pub user: Option<String>,
    pub remote_addr: Option<String>,
    pub detail: Option<String>,
    pub domain: Option<String>,
    pub target: Option<String>,
}

/// The work a stopped daemon left open, followed row by row in id order
/// (every store's start-up recovery: the rule is here once).
#[derive(Default)]
pub struct LeftWork {
    /// (actor, pair index) -> the `.interrupted` row its open start needs.
    open: std::collections::HashMap<(String, usize), NewAuditEvent>,
}

impl LeftWork {
    /// One work row: a start opens its work, an end of the same actor
    /// closes it, an `.interrupted` row naming the start closes it too (a
    /// start-up that did not finish already marked it).
    pub fn follow(&mut self, row: WorkRow) {
        let action = row.action.as_str();
        if let Some(pair) = WORK_PAIRS.iter().position(|(start, _, _)| *start == action) {
            let action = WORK_PAIRS[pair].2;
            let event = NewAuditEvent {
                at: Utc::now(),
                actor: row.actor.clone(),
                domain: row.domain.unwrap_or_else(|| domain_of(action).to_owned()),
                action: action.to_owned(),
                server: row.server,
                target: row.target,
                outcome: Some(Outcome::Interrupted),
                code: None,
                command: row.command,
                exit_status: None,
                bytes: None,
                detail: Some(serde_json::json!({
                    "started_at": row.at,
                    "start_id": row.id,
                    "reason": "no end was recorded before the daemon stopped",
                })),
                user: row.user,
                remote_addr: row.remote_addr,
            };
            self.open.insert((row.actor, pair), event);
        } else if let Some(pair) = WORK_PAIRS.iter().position(|(_, end, _)| *end == action) {
            self.open.remove(&(row.actor, pair));
        } else if let Some(pair) = WORK_PAIRS.iter().position(|(_, _, cut)| *cut == action) {
            let start_id = row
                .detail
                .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
                .and_then(|d| d["start_id"].as_i64());
            let key = (row.actor, pair);
            let names_it = self
                .open
                .get(&key)
                .and_then(|e| e.detail.as_ref())
                .is_some_and(|d| d["start_id"].as_i64() == start_id);
            if names_it {
                self.open.remove(&key);
            }
        }
    }

    /// The `.interrupted` rows to write, oldest start first.
    pub fn interrupted(self) -> Vec<NewAuditEvent> {
        let mut left: Vec<NewAuditEvent> = self.open.into_values().collect();
        left.sort_by_key(|e| e.detail.as_ref().and_then(|d| d["start_id"].as_i64()));
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_event_is_written_out_flat_with_its_time_in_rfc_3339_utc() {
        let mut event = NewAuditEvent::new("rest", "user.add");
        event.at = chrono::DateTime::parse_from_rfc3339("2026-12-07T10:42:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        let json = serde_json::to_value(AuditEvent {
            id: 7,
            event,
            instance: "local".into(),
            mac: None,
        })
        .unwrap();
        assert_eq!(json["id"], 7);
        assert_eq!(json["action"], "user.add");
        assert_eq!(json["domain"], "rest");
        assert_eq!(json["outcome"], "ok");
        assert_eq!(json["at"], "2026-12-07T10:42:00.250Z");
    }

    #[test]
    fn only_failed_and_throttled_logins_are_anonymous_rows() {
        let anonymous = |action| NewAuditEvent::new("rest", action).is_anonymous();
        assert!(anonymous("auth.login.failed"));
        assert!(anonymous("auth.login.throttled"));
        assert!(!anonymous("auth.login"), "a good sign-in is real work");
        assert!(!anonymous("auth.logout"));
        assert!(!anonymous("user.add"));
    }

    #[test]
    fn a_row_takes_its_domain_from_its_action_unless_its_writer_names_one() {
        let domain = |action| NewAuditEvent::new("x", action).domain;
        assert_eq!(domain("ssh.command.start"), "stub");
        assert_eq!(domain("batch.run"), "bmx4");
        assert_eq!(domain("sftp.upload"), "bmx5");
        assert_eq!(domain("terminal.open"), "terminal");
        assert_eq!(domain("auth.login.failed"), "auth");
        assert_eq!(domain("daemon.start"), "system");
        assert_eq!(
            NewAuditEvent::new("cli", "user.add").in_domain("cli").domain,
            "cli"
        );
    }

    #[test]
    fn outcomes_read_back_what_they_write_and_nothing_else() {
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        assert_eq!(Outcome::parse("OK"), None);
    }
}
