//! The audit trail: who did what, when, on which server.

use actix::{Handler, Message};
use pinkpage_actors::AppError;
use rusqlite::{params, Connection};
use serde::Serialize;

use super::{db_error, StoreActor};

/// An event to record.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEvent {
    /// When it happened: stamped by [`NewAuditEvent::new`]; an event made
    /// otherwise is stamped when stored. (Rows can wait in the journal
    /// while the store fails, so the time of writing is not the time of
    /// the action.)
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Connection id, `rest`, `admin` or `system`.
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
    pub detail: Option<serde_json::Value>,
    /// The signed-in user who did it (`None` for the daemon itself).
    pub user: Option<String>,
    /// The client's address.
    pub remote_addr: Option<String>,
}

impl NewAuditEvent {
    /// An event with just an actor and an action.
    pub fn new(actor: impl Into<String>, action: impl Into<String>) -> Self {
        NewAuditEvent {
            at: Some(chrono::Utc::now()),
            actor: actor.into(),
            action: action.into(),
            ..Default::default()
        }
    }

    /// The same event, naming who did it and from where.
    pub fn by(mut self, user: Option<&str>, remote_addr: Option<String>) -> Self {
        self.user = user.map(str::to_owned);
        self.remote_addr = remote_addr;
        self
    }
}

/// A stored audit event.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    /// Row id; increases with time.
    pub id: i64,
    /// When it was recorded (RFC 3339, UTC).
    pub at: String,
    /// Connection id, `rest`, `admin` or `system`.
    pub actor: String,
    /// Dotted action name.
    pub action: String,
    /// Server acted on.
    pub server: Option<String>,
    /// Command run.
    pub command: Option<String>,
    /// Remote exit status.
    pub exit_status: Option<i64>,
    /// Bytes moved or printed.
    pub bytes: Option<i64>,
    /// Extra detail (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    /// The signed-in user who did it (null for the daemon itself and for
    /// rows from before sign-in existed).
    pub user: Option<String>,
    /// The client's address.
    pub remote_addr: Option<String>,
}

/// Stores events in order, in one transaction: all or none (the journal
/// keeps them queued on an error and tries again).
#[derive(Message)]
#[rtype(result = "Result<(), AppError>")]
pub struct RecordAuditBatch(pub Vec<NewAuditEvent>);

/// Lists events newest first, `limit` at most, older than `before_id`
/// when given (for paging).
#[derive(Message)]
#[rtype(result = "Result<Vec<AuditEvent>, AppError>")]
pub struct ListAudit {
    /// Most rows to return.
    pub limit: u32,
    /// Only rows with a smaller id.
    pub before_id: Option<i64>,
    /// Only rows with this action.
    pub action: Option<String>,
    /// Only rows by this user.
    pub user: Option<String>,
}

/// Writes one event through `conn`, stamped now; returns its id. The store
/// threads call it, and so does the command line, which changes accounts
/// without a running daemon but must leave the same trail.
pub(crate) fn insert_audit(conn: &Connection, e: &NewAuditEvent) -> rusqlite::Result<i64> {
    let at =
        e.at.unwrap_or_else(chrono::Utc::now)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    conn.execute(
        "INSERT INTO audit_events (at, actor, action, server, command, exit_status, bytes, detail, user, remote_addr)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            at,
            e.actor,
            e.action,
            e.server,
            e.command,
            e.exit_status,
            e.bytes,
            e.detail.as_ref().map(|d| d.to_string()),
            e.user,
            e.remote_addr
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

impl Handler<RecordAuditBatch> for StoreActor {
    type Result = Result<(), AppError>;

    fn handle(&mut self, RecordAuditBatch(events): RecordAuditBatch, _: &mut Self::Context) -> Self::Result {
        let tx = self.conn.transaction().map_err(db_error)?;
        for e in &events {
            insert_audit(&tx, e).map_err(db_error)?;
        }
        tx.commit().map_err(db_error)
    }
}

impl Handler<ListAudit> for StoreActor {
    type Result = Result<Vec<AuditEvent>, AppError>;

    fn handle(&mut self, q: ListAudit, _: &mut Self::Context) -> Self::Result {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, at, actor, action, server, command, exit_status, bytes, detail, user, remote_addr
                 FROM audit_events
                 WHERE (?1 IS NULL OR id < ?1) AND (?2 IS NULL OR action = ?2) AND (?4 IS NULL OR user = ?4)
                 ORDER BY id DESC LIMIT ?3",
            )
            .map_err(db_error)?;
        let rows = stmt
            .query_map(params![q.before_id, q.action, q.limit, q.user], |r| {
                let detail: Option<String> = r.get(8)?;
                Ok(AuditEvent {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    server: r.get(4)?,
                    command: r.get(5)?,
                    exit_status: r.get(6)?,
                    bytes: r.get(7)?,
                    detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
                    user: r.get(9)?,
                    remote_addr: r.get(10)?,
                })
            })
            .map_err(db_error)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_error)
    }
}
