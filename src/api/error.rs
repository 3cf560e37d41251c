//! REST error replies: [`ApiError`], the one web-side error type, turns an
//! engine error into `{"success": false, "error": {"code", "message",
//! "detail"}}` with the HTTP status that fits.
//!
//! The engine knows nothing of HTTP; every status decision is here:
//! - [`http_status`]: the status of each catalogue code (served by
//!   `GET /api/v1/errors` and listed in `docs/errors.md`);
//! - [`sftp_http_status`]: the status of an SFTP failure, the same for a
//!   BMX5 file call and a diff (404 no such file, 403 refused, 504 timeout);
//! - a diff past a size or entry limit is 413.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use pinkpage_actors::diff::remote::DiffError;
use pinkpage_actors::files::sftp::{SftpError, SftpStatus};
use pinkpage_actors::{AppError, ErrorBody, ErrorCode};
use serde::Serialize;

/// The body of every REST error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    /// Always `false`.
    pub success: bool,
    /// What went wrong.
    pub error: ErrorBody,
}

/// The HTTP status a REST reply with `code` carries.
pub const fn http_status(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        Validation | WsConnection | WsMalformed | WsUnknownType => StatusCode::BAD_REQUEST,
        ConfigInvalid => StatusCode::UNPROCESSABLE_ENTITY,
        Unauthenticated => StatusCode::UNAUTHORIZED,
        Forbidden | AccessChanged | NotSessionOwner | OriginRefused | HostRefused | WatchOnly
        | ShareRefused | CommandDenied | CommandRejected | SelfApproval | NotAnApprover => {
            StatusCode::FORBIDDEN
        }
        LoginThrottled
        | WsTooManyUserConnections
        | TooManyOperations
        | TooManyPending
        | TooManyTerminalsForUser
        | TooManyWatchers
        | TooManyHeld => StatusCode::TOO_MANY_REQUESTS,
        WsTooManyConnections | SshNoSessionSlot | ShuttingDown | DiffBudgetExhausted | TooManyTerminals
        | RecordingUnavailable | RecordingStopped => StatusCode::SERVICE_UNAVAILABLE,
        WsStalled | RequestBodyStalled | TerminalIdle | CommandReviewTimeout => StatusCode::REQUEST_TIMEOUT,
        TerminalDetachExpired => StatusCode::GONE,
        NotFound | UnknownServer | UnknownTransfer | UnknownWorkflow | TransferNoSource | UnknownTerminal
        | UnknownPty | UnknownRecording | UnknownReview => StatusCode::NOT_FOUND,
        SessionAlreadyActive
        | NoActiveSession
        | AlreadySessionOwner
        | TransferAlreadyRunning
        | TaskAlreadyRunning
        | NoRunningTask
        | WorkflowNotPaused
        | WorkflowPauseExpired
        | HostKeyMismatch
        | HostKeyPinned => StatusCode::CONFLICT,
        WsTooLarge | RequestBodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ResourceLocked => StatusCode::LOCKED,
        Internal | HealthCheckFailed | WsHandler | BroadcastFailed | Database | TaskCancelTimeout
        | TaskCancelFailed | TaskCleanupFailed => StatusCode::INTERNAL_SERVER_ERROR,
        SshConnectionFailed | SshHostKeyRejected | SshAuthFailed | SshCommandFailed | ShellModeUnusable
        | TransferFailed | BatchFailed | SftpFailed | DiffFailed => StatusCode::BAD_GATEWAY,
        SshConnectionTimeout | SshCommandTimeout => StatusCode::GATEWAY_TIMEOUT,
    }
}

/// The HTTP status of an SFTP failure with `status`; `None` when the
/// status says nothing more than the error's code (a lost connection, a
/// failed connect), whose own status then applies.
pub const fn sftp_http_status(status: SftpStatus) -> Option<StatusCode> {
    Some(match status {
        SftpStatus::NoSuchFile => StatusCode::NOT_FOUND,
        SftpStatus::PermissionDenied => StatusCode::FORBIDDEN,
        SftpStatus::Failure | SftpStatus::Unsuitable => StatusCode::CONFLICT,
        SftpStatus::Interrupted | SftpStatus::BadMessage => StatusCode::BAD_REQUEST,
        SftpStatus::OpUnsupported => StatusCode::NOT_IMPLEMENTED,
        SftpStatus::Timeout => StatusCode::GATEWAY_TIMEOUT,
        SftpStatus::ConnectionLost | SftpStatus::NotConnected => return None,
    })
}

/// An error a handler returns: what the client is told and with which
/// HTTP status.
#[derive(Debug)]
pub struct ApiError {
    error: AppError,
    status: StatusCode,
}

impl ApiError {
    /// `error` with a status of its own instead of its code's (416 for an
    /// unsatisfiable range, which no catalogue code stands for).
    pub fn with_status(error: AppError, status: StatusCode) -> Self {
        ApiError { error, status }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        let status = http_status(error.code);
        ApiError { error, status }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        AppError::new(code).into()
    }
}

impl From<SftpError> for ApiError {
    fn from(e: SftpError) -> Self {
        let status = sftp_http_status(e.status).unwrap_or(http_status(e.error.code));
        ApiError {
            error: e.error,
            status,
        }
    }
}

impl From<DiffError> for ApiError {
    fn from(e: DiffError) -> Self {
        let status = if e.too_large {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            e.status
                .and_then(sftp_http_status)
                .unwrap_or(http_status(e.error.code))
        };
        ApiError {
            error: e.error,
            status,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        pinkpage_actors::metrics::error_answered(self.error.code);
        // Unexpected failures keep their cause in the log; the client gets
        // the code and an opaque message.
        let body = if self.error.code == ErrorCode::Internal {
            log::error!(error = self.error.to_string(); "internal error");
            AppError::new(ErrorCode::Internal).body()
        } else {
            self.error.body()
        };
        HttpResponse::build(self.status).json(ErrorResponse {
            success: false,
            error: body,
        })
    }
}

/// Turns extractor failures (bad JSON body, query or path) into 10001.
pub fn validation_error(err: impl std::fmt::Display) -> actix_web::Error {
    ApiError::from(AppError::with_detail(ErrorCode::Validation, err.to_string())).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pinkpage_actors::diff::Side;

    #[test]
    fn server_side_codes_and_only_those_answer_5xx() {
        for &c in ErrorCode::ALL {
            let status = http_status(c);
            assert!(status.is_client_error() || status.is_server_error(), "{c:?}");
            assert_eq!(status.is_server_error(), c.is_server_side(), "{c:?}");
        }
    }

    #[test]
    fn an_sftp_status_answers_the_same_for_files_and_diffs() {
        for (status, http) in [
            (SftpStatus::NoSuchFile, 404),
            (SftpStatus::PermissionDenied, 403),
            (SftpStatus::Unsuitable, 409),
            (SftpStatus::Timeout, 504),
            (SftpStatus::ConnectionLost, 502),
        ] {
            let sftp = SftpError::new(status, "s", "x");
            let diff = DiffError {
                side: Some(Side::Left),
                status: Some(status),
                too_large: false,
                error: AppError::new(ErrorCode::DiffFailed),
            };
            assert_eq!(ApiError::from(sftp).status_code().as_u16(), http, "{status:?}");
            assert_eq!(ApiError::from(diff).status_code().as_u16(), http, "{status:?}");
        }
    }

    #[test]
    fn a_diff_past_a_limit_is_413_and_a_failed_connect_keeps_its_code_status() {
        let big = DiffError {
            too_large: true,
            ..DiffError::on(Side::Right, "too big")
        };
        assert_eq!(ApiError::from(big).status_code(), StatusCode::PAYLOAD_TOO_LARGE);
        let refused = SftpError {
            status: SftpStatus::NotConnected,
            error: AppError::new(ErrorCode::SshConnectionTimeout),
        };
        assert_eq!(ApiError::from(refused).status_code(), StatusCode::GATEWAY_TIMEOUT);
    }
}
