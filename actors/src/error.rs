//! The error catalogue: every code Pink-Page can answer with, in one place.
//!
//! A code has a fixed five-digit number, an HTTP status (used by REST and
//! ignored by WebSocket frames) and a short message. The catalogue is served
//! at `GET /api/v1/errors` and listed in `docs/errors.md`; tests keep the
//! three in step and the numbers unique.
//!
//! [`AppError`] is what the engine returns: a code plus an optional `detail`
//! that explains this occurrence (a server name, a file, a cause). Secrets
//! never go into `detail`.

use serde::Serialize;

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident = ($code:expr, $status:expr, $message:expr), )+) => {
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

            /// The HTTP status a REST response with this code carries.
            pub const fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )+ }
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
    Internal = (10000, 500, "internal error"),
    /// A request field is missing, malformed or out of range.
    Validation = (10001, 400, "validation error"),
    /// The request carries no valid credentials.
    Unauthenticated = (10002, 401, "unauthenticated"),
    /// The caller may not do this.
    Forbidden = (10003, 403, "forbidden"),
    /// No such route or resource.
    NotFound = (10004, 404, "not found"),
    /// The TCP connection or the SSH handshake failed.
    SshConnectionFailed = (20000, 502, "ssh connection failed"),
    /// The server did not answer within the connect timeout.
    SshConnectionTimeout = (20001, 504, "ssh connection timed out"),
    /// The server's host key is unknown (under `strict`) or has changed.
    SshHostKeyRejected = (20002, 502, "ssh host key not trusted or changed"),
    /// The server refused every credential offered.
    SshAuthFailed = (21000, 502, "ssh authentication failed"),
    /// A remote command could not be run.
    SshCommandFailed = (22000, 502, "ssh command failed"),
    /// A remote command ran past its timeout and was ended.
    SshCommandTimeout = (22001, 504, "ssh command timed out"),
    /// The named server is not configured.
    UnknownServer = (23000, 404, "unknown server"),
    /// The named transfer is not configured.
    UnknownTransfer = (23001, 404, "unknown transfer"),
    /// A server-to-server transfer failed.
    TransferFailed = (24000, 502, "transfer failed"),
    /// The transfer's source glob matched no file.
    TransferNoSource = (24001, 404, "transfer source matched no file"),
    /// A health check could not be carried out.
    HealthCheckFailed = (25000, 500, "health check failed"),
    /// The WebSocket connection failed.
    WsConnection = (30000, 400, "websocket connection error"),
    /// A frame is not JSON or lacks a required field.
    WsMalformed = (31000, 400, "malformed message"),
    /// A frame's `type` is not one this endpoint handles.
    WsUnknownType = (31001, 400, "unknown message type"),
    /// A frame is larger than the limit.
    WsTooLarge = (31002, 413, "message too large"),
    /// A message handler failed.
    WsHandler = (32000, 500, "handler error"),
    /// A broadcast could not reach a recipient.
    BroadcastFailed = (33000, 500, "broadcast failed"),
    /// The SQLite store failed.
    Database = (40000, 500, "database error"),
    /// Another connection holds the session lock.
    SessionAlreadyActive = (50004, 409, "session already active"),
    /// No session lock is held.
    NoActiveSession = (50005, 409, "no active session"),
    /// The caller does not own the session lock.
    NotSessionOwner = (50006, 403, "not the session owner"),
    /// The caller already owns the session lock.
    AlreadySessionOwner = (50007, 409, "you already own the session"),
    /// The operation needs the session lock.
    ResourceLocked = (50008, 423, "resource locked: operation needs the session lock"),
    /// A transfer is already running.
    TransferAlreadyRunning = (50009, 409, "transfer already running"),
    /// This connection already runs a task.
    TaskAlreadyRunning = (50010, 409, "task already running for this connection"),
    /// There is no running task to cancel or to send input to.
    NoRunningTask = (50011, 409, "no running task to cancel or to send input to"),
    /// A task did not stop within 5 s.
    TaskCancelTimeout = (50012, 500, "task cancellation timed out"),
    /// A task could not be stopped.
    TaskCancelFailed = (50013, 500, "task cancellation failed"),
    /// A task stopped but its cleanup failed.
    TaskCleanupFailed = (50014, 500, "task cleanup failed"),
    /// A batch run could not start.
    BatchFailed = (51000, 502, "batch failed"),
    /// An SFTP operation failed.
    SftpFailed = (52000, 502, "sftp operation failed"),
    /// A diff could not be computed.
    DiffFailed = (53000, 502, "diff failed"),
}

impl ErrorCode {
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

impl From<ErrorCode> for AppError {
    fn from(code: ErrorCode) -> Self {
        AppError::new(code)
    }
}

/// The `error` object of every error reply, REST or WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// The five-digit catalogue code.
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
    fn http_statuses_are_client_or_server_errors() {
        for c in ErrorCode::ALL {
            assert!((400..600).contains(&c.http_status()), "{:?}", c);
        }
    }

    #[test]
    fn the_spec_codes_are_all_present() {
        let spec = [
            10000, 10001, 10002, 10003, 10004, 20000, 20001, 20002, 21000, 22000, 22001, 23000,
            23001, 24000, 24001, 25000, 30000, 31000, 31001, 31002, 32000, 33000, 40000, 50004,
            50005, 50006, 50007, 50008, 50009, 50010, 50011, 50012, 50013, 50014, 51000, 52000,
            53000,
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
