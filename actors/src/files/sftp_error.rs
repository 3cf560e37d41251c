//! How SFTP failures are told: [`SftpStatus`], the SFTP status of a failed
//! operation, and [`SftpError`], the 52000 [`AppError`] clients see with
//! that status at the start of its detail. The status stays beside the
//! error so the web side can choose its answer (404, 403, ...); the engine
//! knows nothing of HTTP.

use std::fmt;

use russh_sftp::client::error::Error as SftpLibError;
use russh_sftp::protocol::StatusCode;
use serde::Serialize;

use crate::error::{AppError, ErrorCode};

/// The SFTP status of a failed operation, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SftpStatus {
    /// SSH_FX_NO_SUCH_FILE.
    NoSuchFile,
    /// SSH_FX_PERMISSION_DENIED.
    PermissionDenied,
    /// SSH_FX_FAILURE: the server's catch-all (exists, not empty, disk full).
    Failure,
    /// SSH_FX_BAD_MESSAGE.
    BadMessage,
    /// SSH_FX_OP_UNSUPPORTED.
    OpUnsupported,
    /// The SFTP channel or the connection went away.
    ConnectionLost,
    /// The server did not answer a request in time.
    Timeout,
    /// The request cannot be carried out on what is there (a directory
    /// where a file is needed, a file too large to send inline).
    Unsuitable,
    /// The client stopped sending the file before its end.
    Interrupted,
    /// Not an SFTP status: connecting or authenticating failed (the error
    /// keeps its own 2xxxx code).
    NotConnected,
}

impl SftpStatus {
    /// The words at the start of the error detail.
    pub fn as_str(self) -> &'static str {
        match self {
            SftpStatus::NoSuchFile => "no such file",
            SftpStatus::PermissionDenied => "permission denied",
            SftpStatus::Failure => "failure",
            SftpStatus::BadMessage => "bad message",
            SftpStatus::OpUnsupported => "operation unsupported",
            SftpStatus::ConnectionLost => "connection lost",
            SftpStatus::Timeout => "timeout",
            SftpStatus::Unsuitable => "unsuitable",
            SftpStatus::Interrupted => "interrupted",
            SftpStatus::NotConnected => "not connected",
        }
    }
}

/// A failed SFTP operation: the error clients see and its SFTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct SftpError {
    /// What failed, as SFTP says it.
    pub status: SftpStatus,
    /// 52000 with the status and the path in the detail (or, for
    /// [`SftpStatus::NotConnected`], the connect error as it came).
    pub error: AppError,
}

impl SftpError {
    /// A 52000 with `status` and `what` in the detail.
    pub fn new(status: SftpStatus, server: &str, what: impl fmt::Display) -> Self {
        SftpError {
            status,
            error: AppError::with_detail(
                ErrorCode::SftpFailed,
                format!("{}: server '{server}': {what}", status.as_str()),
            ),
        }
    }

    pub(crate) fn from_lib(server: &str, what: impl fmt::Display, e: SftpLibError) -> Self {
        let status = match &e {
            SftpLibError::Status(s) => match s.status_code {
                StatusCode::NoSuchFile => SftpStatus::NoSuchFile,
                StatusCode::PermissionDenied => SftpStatus::PermissionDenied,
                StatusCode::BadMessage => SftpStatus::BadMessage,
                StatusCode::OpUnsupported => SftpStatus::OpUnsupported,
                StatusCode::NoConnection | StatusCode::ConnectionLost => SftpStatus::ConnectionLost,
                _ => SftpStatus::Failure,
            },
            SftpLibError::Timeout => SftpStatus::Timeout,
            SftpLibError::IO(_) => SftpStatus::ConnectionLost,
            e if session_gone(e) => SftpStatus::ConnectionLost,
            _ => SftpStatus::Failure,
        };
        let cause = match &e {
            SftpLibError::Status(s) if !s.error_message.is_empty() => format!(" ({})", s.error_message),
            SftpLibError::Status(_) => String::new(),
            other => format!(" ({other})"),
        };
        SftpError::new(status, server, format!("{what}{cause}"))
    }

    /// Errors of file reads and writes, which russh-sftp reports as
    /// `io::Error` carrying only the server's message.
    pub(crate) fn from_io(server: &str, what: impl fmt::Display, e: std::io::Error) -> Self {
        use std::io::ErrorKind;
        let status = match e.kind() {
            ErrorKind::TimedOut => SftpStatus::Timeout,
            ErrorKind::NotFound => SftpStatus::NoSuchFile,
            ErrorKind::PermissionDenied => SftpStatus::PermissionDenied,
            ErrorKind::BrokenPipe
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected
            | ErrorKind::UnexpectedEof => SftpStatus::ConnectionLost,
            _ if e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<SftpLibError>())
                .is_some_and(session_gone) =>
            {
                SftpStatus::ConnectionLost
            }
            _ => SftpStatus::Failure,
        };
        SftpError::new(status, server, format!("{what} ({e})"))
    }
}

/// Whether russh-sftp failed because the session under it went, which is
/// a lost connection, not the server's catch-all failure (409 over REST):
/// a request whose answer can never come reports "sender dropped" (its
/// reply channel was dropped with the session's reader), and a request
/// made after that reader ended reports "session closed" (russh-sftp
/// 3.0.1, `RawSftpSession::send_bytes`). Which one a dying server gives
/// depends on the moment, so both are the same status.
fn session_gone(e: &SftpLibError) -> bool {
    matches!(e, SftpLibError::UnexpectedBehavior(m) if m == "sender dropped" || m == "session closed")
}

impl From<SftpError> for AppError {
    fn from(e: SftpError) -> Self {
        e.error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_that_went_is_a_lost_connection_whichever_way_russh_sftp_says_it() {
        for said in ["sender dropped", "session closed"] {
            let e = SftpError::from_lib("x", "write", SftpLibError::UnexpectedBehavior(said.into()));
            assert_eq!(e.status, SftpStatus::ConnectionLost, "{said}");
            let io = std::io::Error::other(SftpLibError::UnexpectedBehavior(said.into()));
            let e = SftpError::from_io("x", "write", io);
            assert_eq!(e.status, SftpStatus::ConnectionLost, "{said} as io::Error");
        }
        let e = SftpError::from_lib("x", "write", SftpLibError::UnexpectedBehavior("other".into()));
        assert_eq!(e.status, SftpStatus::Failure);
    }

    #[test]
    fn errors_carry_their_status_first_in_the_detail() {
        let err = SftpError::new(SftpStatus::NoSuchFile, "x", "y").error;
        assert_eq!(err.code, ErrorCode::SftpFailed);
        assert!(err.detail.unwrap().starts_with("no such file: server 'x'"));
    }
}
