//! The error catalogue: every code Pink-Page can answer with, in one place.
//!
//! A code has a fixed five-digit number, a [`Fault`] (whose side the failure
//! is on) and a short message. The engine knows nothing of HTTP: the web
//! side gives each code its HTTP status (`src/api/error.rs`), serves the
//! catalogue at `GET /api/v1/errors` and lists it in `docs/errors.md`;
//! tests keep the three in step and the numbers unique.
//!
//! [`AppError`] is what the engine returns: a code plus an optional `detail`
//! that explains this occurrence (a server name, a file, a cause). Secrets
//! never go into `detail`.

use serde::Serialize;

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident = ($code:expr, $fault:ident, $message:expr), )+) => {
        /// One entry of the error catalogue (SPEC section 10).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )+
        }

        impl ErrorCode {
            /// Every code, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )+ ];

            /// The five-digit number clients match on.
            pub const fn code(self) -> u32 {
                match self { $( ErrorCode::$variant => $code, )+ }
            }

            /// Whose side the failure is on: what a log level or a retry
            /// policy decides by.
            pub const fn fault(self) -> Fault {
                match self { $( ErrorCode::$variant => Fault::$fault, )+ }
            }

            /// The fixed, human-readable meaning of the code.
            pub const fn message(self) -> &'static str {
                match self { $( ErrorCode::$variant => $message, )+ }
            }
        }
    };
}

catalogue! {
    /// An unexpected failure inside the daemon; the cause is logged, not sent.
    Internal = (10000, Daemon, "internal error"),
    /// A request field is missing, malformed or out of range.
    Validation = (10001, Client, "validation error"),
    /// The request carries no valid credentials.
    Unauthenticated = (10002, Client, "unauthenticated"),
    /// The caller may not do this.
    Forbidden = (10003, Client, "forbidden"),
    /// No such route or resource.
    NotFound = (10004, Client, "not found"),
    /// The request's `Origin` is neither the daemon's own nor an allowed
    /// one (cross-site WebSocket hijacking, cross-site request forgery).
    OriginRefused = (10005, Client, "origin not allowed"),
    /// The request's `Host` is not an allowed host name (DNS rebinding).
    HostRefused = (10006, Client, "host not allowed"),
    /// Too many failed logins for this name or address; wait `Retry-After`.
    LoginThrottled = (10007, Client, "too many failed logins"),
    /// This connection already runs as many operations (SFTP work,
    /// diffs, scripts) as `PINKPAGE_WS_MAX_OPS_PER_CONNECTION` allows.
    TooManyOperations = (10008, Client, "too many concurrent operations on this connection"),
    /// A request body (a REST upload) sent nothing for
    /// `PINKPAGE_BODY_IDLE_TIMEOUT_S`; the upload was aborted and its
    /// temporary file removed.
    RequestBodyStalled = (10009, Client, "request body stalled"),
    /// The access of whoever started this work was withdrawn while it ran
    /// (a lower role, fewer servers, a disabled account, a revoked
    /// credential, a server no longer configured): the work was stopped,
    /// and a lock its holder may no longer hold was released.
    AccessChanged = (10010, Client, "access changed"),
    /// A request body is larger than the route allows its caller
    /// (`PINKPAGE_BODY_MAX_BYTES` signed in, `PINKPAGE_ANON_BODY_MAX_BYTES`
    /// without credentials); refused from `Content-Length` before the
    /// body is read.
    RequestBodyTooLarge = (10011, Client, "request body too large"),
    /// A reload found the configuration (the servers file or `.env`) not
    /// valid; the detail says why. Nothing changed: the daemon goes on
    /// with the configuration it had.
    ConfigInvalid = (10012, Client, "configuration not valid; nothing changed"),
    /// The TCP connection or the SSH handshake failed.
    SshConnectionFailed = (20000, Remote, "ssh connection failed"),
    /// The server did not answer within the connect timeout.
    SshConnectionTimeout = (20001, Remote, "ssh connection timed out"),
    /// The server's host key is unknown (under `strict`) or has changed.
    SshHostKeyRejected = (20002, Remote, "ssh host key not trusted or changed"),
    /// Every SSH session slot of the server (`PINKPAGE_SSH_MAX_SESSIONS_PER_SERVER`)
    /// stayed taken for the whole queue wait (`PINKPAGE_SSH_SESSION_WAIT_S`).
    SshNoSessionSlot = (20003, Daemon, "no ssh session slot free for this server"),
    /// An admin's acceptance of a changed host key named a fingerprint
    /// other than the one the server offers now: nothing was changed.
    HostKeyMismatch = (20004, Client, "the server does not offer the expected host key"),
    /// The server's host key is pinned with `host_key_fingerprint` in the
    /// servers file, so known_hosts does not decide for it: change the pin
    /// and reload the configuration instead.
    HostKeyPinned = (20005, Client, "host key is pinned in the servers file"),
    /// The server refused every credential offered.
    SshAuthFailed = (21000, Remote, "ssh authentication failed"),
    /// A remote command could not be run.
    SshCommandFailed = (22000, Remote, "ssh command failed"),
    /// A remote command ran past its timeout and was ended.
    SshCommandTimeout = (22001, Remote, "ssh command timed out"),
    /// A server in `command_mode = "shell"` cannot run commands that way:
    /// its login shell is not a POSIX shell (csh, tcsh, fish), or it never
    /// answered the setup lines.
    ShellModeUnusable = (22002, Remote, "login shell cannot run commands in shell mode"),
    /// The named server is not configured.
    UnknownServer = (23000, Client, "unknown server"),
    /// The named transfer is not configured.
    UnknownTransfer = (23001, Client, "unknown transfer"),
    /// No workflow has that name.
    UnknownWorkflow = (23002, Client, "unknown workflow"),
    /// A server-to-server transfer failed.
    TransferFailed = (24000, Remote, "transfer failed"),
    /// The transfer's source glob matched no file.
    TransferNoSource = (24001, Client, "transfer source matched no file"),
    /// A health check could not be carried out.
    HealthCheckFailed = (25000, Daemon, "health check failed"),
    /// The WebSocket connection failed.
    WsConnection = (30000, Client, "websocket connection error"),
    /// The daemon already serves `PINKPAGE_WS_MAX_CONNECTIONS` WebSockets.
    WsTooManyConnections = (30001, Daemon, "too many websocket connections"),
    /// The user already has `PINKPAGE_WS_MAX_CONNECTIONS_PER_USER` WebSockets.
    WsTooManyUserConnections = (30002, Client, "too many websocket connections for this user"),
    /// The connection's output did not drain for `PINKPAGE_WS_TIMEOUT_S`:
    /// it was dropped, its tasks stopped and its lock released.
    WsStalled = (30003, Client, "connection dropped: the client stopped reading"),
    /// The daemon is stopping (SIGTERM or SIGINT): sent to every WebSocket client in a `shutdown` frame before the connection closes; reconnect once it is back.
    ShuttingDown = (30004, Daemon, "the daemon is shutting down"),
    /// The client's address already has `PINKPAGE_MAX_PENDING_PER_ADDRESS`
    /// connections that have not got through admission (handshakes and
    /// requests still arriving, or not yet authenticated).
    TooManyPending = (30005, Client, "too many connections from this address awaiting admission"),
    /// A frame is not JSON or lacks a required field.
    WsMalformed = (31000, Client, "malformed message"),
    /// A frame's `type` is not one this endpoint handles.
    WsUnknownType = (31001, Client, "unknown message type"),
    /// A frame is larger than the limit.
    WsTooLarge = (31002, Client, "message too large"),
    /// A message handler failed.
    WsHandler = (32000, Daemon, "handler error"),
    /// A broadcast could not reach a recipient.
    BroadcastFailed = (33000, Daemon, "broadcast failed"),
    /// The SQLite store failed; for a new remote action, the audit trail cannot be written just now.
    Database = (40000, Daemon, "database error"),
    /// Another connection holds the session lock.
    SessionAlreadyActive = (50004, Client, "session already active"),
    /// No session lock is held.
    NoActiveSession = (50005, Client, "no active session"),
    /// The caller does not own the session lock.
    NotSessionOwner = (50006, Client, "not the session owner"),
    /// The caller already owns the session lock.
    AlreadySessionOwner = (50007, Client, "you already own the session"),
    /// The operation needs the session lock.
    ResourceLocked = (50008, Client, "resource locked: operation needs the session lock"),
    /// A transfer is already running.
    TransferAlreadyRunning = (50009, Client, "transfer already running"),
    /// This connection already runs a task.
    TaskAlreadyRunning = (50010, Client, "task already running for this connection"),
    /// There is no running task to cancel or to send input to.
    NoRunningTask = (50011, Client, "no running task to cancel or to send input to"),
    /// A task did not stop within 5 s.
    TaskCancelTimeout = (50012, Daemon, "task cancellation timed out"),
    /// A task could not be stopped.
    TaskCancelFailed = (50013, Daemon, "task cancellation failed"),
    /// A task stopped but its cleanup failed.
    TaskCleanupFailed = (50014, Daemon, "task cleanup failed"),
    /// A confirmation for a workflow run that is not waiting at a pause.
    WorkflowNotPaused = (50015, Client, "the workflow run is not waiting for a confirmation"),
    /// A workflow's pause was not confirmed in time; the run is cancelled.
    WorkflowPauseExpired = (50016, Client, "workflow pause expired without a confirmation"),
    /// A batch run could not start.
    BatchFailed = (51000, Remote, "batch failed"),
    /// An SFTP operation failed.
    SftpFailed = (52000, Remote, "sftp operation failed"),
    /// A diff could not be computed.
    DiffFailed = (53000, Remote, "diff failed"),
    /// The diffs running in the daemon hold as much memory as
    /// `PINKPAGE_DIFF_BUDGET_BYTES` allows; retry once one ends.
    DiffBudgetExhausted = (53001, Daemon, "diff memory budget exhausted"),
    /// No operator terminal has that id (it closed, or never was).
    UnknownTerminal = (54000, Client, "unknown terminal"),
    /// The user has `PINKPAGE_TERMINALS_PER_USER` terminals open (attached
    /// or detached); close one first.
    TooManyTerminalsForUser = (54001, Client, "too many terminals for this user"),
    /// The daemon has `PINKPAGE_TERMINALS_MAX` terminals open.
    TooManyTerminals = (54002, Daemon, "too many terminals in the daemon"),
    /// Input or a resize from a connection that only watches the PTY.
    WatchOnly = (54003, Client, "watching only: input refused"),
    /// The PTY has `PINKPAGE_TERMINAL_MAX_WATCHERS` watchers already.
    TooManyWatchers = (54004, Client, "too many watchers of this PTY"),
    /// The terminal had no input and no output for
    /// `PINKPAGE_TERMINAL_IDLE_S` and was closed.
    TerminalIdle = (54005, Client, "terminal closed: idle"),
    /// The terminal stayed detached for `PINKPAGE_TERMINAL_DETACH_S` and
    /// was closed.
    TerminalDetachExpired = (54006, Client, "terminal closed: detached too long"),
    /// No running PTY has that id.
    UnknownPty = (54007, Client, "unknown pty"),
    /// A share with a user who may not have it (unknown or disabled, the
    /// server outside their scope, co-typing for less than an operator).
    ShareRefused = (54008, Client, "share refused"),
    /// A command rule refuses this command (the detail names the rule and
    /// its message); nothing ran.
    CommandDenied = (55000, Client, "command refused by a rule"),
    /// A held command was rejected by an approver; nothing ran.
    CommandRejected = (55001, Client, "command rejected by its reviewer"),
    /// Nobody approved a held command within `PINKPAGE_REVIEW_TIMEOUT_S`;
    /// nothing ran.
    CommandReviewTimeout = (55002, Client, "command review timed out"),
    /// An approver answered a review of their own command.
    SelfApproval = (55003, Client, "an approver cannot approve their own command"),
    /// No held command has that id (it was answered, timed out, or its
    /// work was cancelled).
    UnknownReview = (55004, Client, "unknown held command"),
    /// The caller may not answer this review (the rule names other
    /// approvers, or the caller is not an admin).
    NotAnApprover = (55005, Client, "not an approver of this command"),
    /// The user has 20 commands waiting for review, or the daemon 1,000
    /// or 64 MiB of command text; wait for an answer first.
    TooManyHeld = (55006, Client, "too many commands waiting for review"),
    /// No recording has that id (it was never made, or was deleted or
    /// expired).
    UnknownRecording = (56000, Client, "unknown recording"),
    /// The PTY's recording could not be started (a full or failing disk):
    /// the PTY was not opened (unless `PINKPAGE_RECORD_FAIL_OPEN=true`).
    RecordingUnavailable = (56001, Daemon, "recording unavailable"),
    /// Writing a running PTY's recording failed; the PTY goes on
    /// unrecorded.
    RecordingStopped = (56002, Daemon, "recording stopped"),
}

/// Whose side a failure is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The request was wrong or not allowed now: the client can fix it.
    Client,
    /// Something failed inside the daemon.
    Daemon,
    /// A server the daemon works on failed or refused (SSH, SFTP, a
    /// command): nothing the client sent was wrong.
    Remote,
}

impl ErrorCode {
    /// Whether this failure is the daemon's or a remote server's rather
    /// than the client's: such failures are worth an operator's attention
    /// (logged as errors).
    pub const fn is_server_side(self) -> bool {
        !matches!(self.fault(), Fault::Client)
    }

    /// Looks a code up by its number.
    pub fn from_code(code: u32) -> Option<ErrorCode> {
        Self::ALL.iter().copied().find(|c| c.code() == code)
    }
}

/// One error occurrence: a catalogue code and what explains this instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}){}", .code.message(), .code.code(), .detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct AppError {
    /// Which catalogue entry this is.
    pub code: ErrorCode,
    /// What went wrong this time (server, file, cause); never a secret.
    pub detail: Option<String>,
}

impl AppError {
    /// An error with no detail beyond the code's message.
    pub fn new(code: ErrorCode) -> Self {
        AppError { code, detail: None }
    }

    /// An error with a detail that explains this occurrence.
    pub fn with_detail(code: ErrorCode, detail: impl Into<String>) -> Self {
        AppError {
            code,
            detail: Some(detail.into()),
        }
    }

    /// The serde body shared by REST and WebSocket error replies.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code.code(),
            message: self.code.message().to_owned(),
            detail: self.detail.clone(),
        }
    }
}

/// An error is written out as its [`ErrorBody`]: a record or a frame that
/// carries an error (a batch result, a workflow step) shows the same
/// object as an error reply.
impl Serialize for AppError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.body().serialize(s)
    }
}

impl From<ErrorCode> for AppError {
    fn from(code: ErrorCode) -> Self {
        AppError::new(code)
    }
}

/// The `error` object of every error reply, REST or WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The five-digit catalogue code (see `GET /api/v1/errors`).
    pub code: u32,
    /// The code's fixed message.
    pub message: String,
    /// What explains this occurrence, when there is something to say.
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_five_digit_numbers() {
        let mut seen = HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.code()), "duplicate code {}", c.code());
            assert!((10000..100000).contains(&c.code()), "{:?} is not five digits", c);
        }
    }

    #[test]
    fn messages_are_lowercase_without_trailing_period() {
        for c in ErrorCode::ALL {
            let m = c.message();
            assert!(!m.ends_with('.'), "{m}");
            assert_eq!(m.chars().next().map(|ch| ch.is_lowercase()), Some(true), "{m}");
        }
    }

    #[test]
    fn remote_failures_are_the_ssh_sftp_transfer_and_diff_codes() {
        let remote: Vec<u32> = ErrorCode::ALL
            .iter()
            .filter(|c| c.fault() == Fault::Remote)
            .map(|c| c.code())
            .collect();
        assert_eq!(
            remote,
            [20000, 20001, 20002, 21000, 22000, 22001, 22002, 24000, 51000, 52000, 53000]
        );
        assert!(!ErrorCode::Validation.is_server_side());
        assert!(ErrorCode::Internal.is_server_side());
    }

    #[test]
    fn the_spec_codes_are_all_present() {
        let spec = [
            10000, 10001, 10002, 10003, 10004, 20000, 20001, 20002, 21000, 22000, 22001, 23000, 23001, 24000,
            24001, 25000, 30000, 31000, 31001, 31002, 32000, 33000, 40000, 50004, 50005, 50006, 50007, 50008,
            50009, 50010, 50011, 50012, 50013, 50014, 51000, 52000, 53000,
        ];
        for code in spec {
            assert!(ErrorCode::from_code(code).is_some(), "missing {code}");
        }
    }

    #[test]
    fn display_names_code_and_detail() {
        let e = AppError::with_detail(ErrorCode::UnknownServer, "no server named 'x'");
        assert_eq!(e.to_string(), "unknown server (23000): no server named 'x'");
    }
}
