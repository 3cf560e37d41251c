//! The audit trail: who did what, when, on which server.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// An audit event: recorded through the journal, listed with its id
/// ([`AuditEvent`]).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewAuditEvent {
    /// When it happened (RFC 3339, UTC). Rows can wait in the journal while
    /// the store fails, so the time of writing is not the time of the
    /// action.
    pub at: DateTime<Utc>,
    /// Connection id, `rest`, `admin`, `system`, or `workflow:<run>`.
    pub actor: String,
    /// Dotted action name (`session.start`, `ssh.command.end`, ...).
    pub action: String,
    /// The server acted on, when there is one.
    pub server: Option<String>,
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
    /// An event with just an actor and an action, happening now.
    pub fn new(actor: impl Into<String>, action: impl Into<String>) -> Self {
        NewAuditEvent {
            at: chrono::Utc::now(),
            actor: actor.into(),
            action: action.into(),
            server: None,
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
            + text(&self.server)
            + text(&self.command)
            + text(&self.user)
            + text(&self.remote_addr)
            + self.detail.as_ref().map_or(0, |d| d.to_string().len())
    }
}

/// A stored audit event: the event and the id the store gave it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    /// Row id, assigned by the store; increases with time.
    pub id: i64,
    /// The event.
    #[serde(flatten)]
    pub event: NewAuditEvent,
}

/// Which events to list: newest first, `limit` at most, older than
/// `before_id` when given (for paging).
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
        let json = serde_json::to_value(AuditEvent { id: 7, event }).unwrap();
        assert_eq!(json["id"], 7);
        assert_eq!(json["action"], "user.add");
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
}
