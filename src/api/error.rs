//! REST error replies: [`ApiError`] turns an engine [`AppError`] into
//! `{"success": false, "error": {"code", "message", "detail"}}` with the
//! code's HTTP status.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use pinkpage_actors::{AppError, ErrorBody, ErrorCode};
use serde::Serialize;

/// The body of every REST error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    /// Always `false`.
    pub success: bool,
    /// What went wrong.
    #[schema(value_type = ErrorBodySchema)]
    pub error: ErrorBody,
}

/// OpenAPI view of [`ErrorBody`] (which lives in the engine crate, which
/// knows nothing of OpenAPI).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBodySchema {
    /// Five-digit catalogue code (see `GET /api/v1/errors`).
    code: u32,
    /// The code's fixed message.
    message: String,
    /// What explains this occurrence.
    detail: Option<String>,
}

/// An error a handler returns.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError(AppError::new(code))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        // Unexpected failures keep their cause in the log; the client gets
        // the code and an opaque message.
        let body = if self.0.code == ErrorCode::Internal {
            log::error!(error = self.0.to_string(); "internal error");
            AppError::new(ErrorCode::Internal).body()
        } else {
            self.0.body()
        };
        HttpResponse::build(self.status_code()).json(ErrorResponse {
            success: false,
            error: body,
        })
    }
}

/// Turns extractor failures (bad JSON body, query or path) into 10001.
pub fn validation_error(err: impl std::fmt::Display) -> actix_web::Error {
    ApiError(AppError::with_detail(ErrorCode::Validation, err.to_string())).into()
}
