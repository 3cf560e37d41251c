//! `PUT` / `GET /api/v1/bmx5/files`: large files over SFTP, streamed both
//! ways with bounded memory (BMX5; small files go inline over the
//! WebSocket).
//!
//! Each request opens its own SSH session and closes it at the end.
//! - `PUT` streams the request body into a hidden temporary file next to
//!   the target and renames it over the target once the body ended
//!   cleanly; a client that disconnects mid-body leaves no file behind.
//!   The write runs in a detached task, so the cleanup runs even when
//!   actix drops the handler of a vanished client.
//! - `GET` streams the file with `Content-Length`; a single `Range:
//!   bytes=a-b` (also `a-` and `-n`) gives 206 with `Content-Range`, an
//!   unsatisfiable one 416. Several ranges in one header are not supported:
//!   the whole file is sent (RFC 9110 lets a server ignore `Range`).
//!
//! SFTP failures are 52000 with the SFTP status in `detail` and an HTTP
//! status that fits it (404 no such file, 403 permission denied, ...).

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{get, put, web, HttpRequest, HttpResponse, ResponseError};
use pinkpage_actors::files::sftp::{SftpConn, SftpError};
use pinkpage_actors::{AppError, ErrorCode};
use serde::{Deserialize, Serialize};

use super::error::ErrorResponse;
use crate::state::AppState;
use crate::store::NewAuditEvent;

/// Which file on which server.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FileQuery {
    /// Configured server name.
    #[param(min_length = 1)]
    pub server: String,
    /// Remote path (not empty, no NUL); relative paths start at the login
    /// user's home.
    #[param(min_length = 1, pattern = "^[^\\x00]+$")]
    pub path: String,
}

/// A completed upload.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadResult {
    /// Server name.
    pub server: String,
    /// The file written.
    pub path: String,
    /// Bytes written.
    pub size: u64,
}

/// An error with the HTTP status that fits it (SFTP statuses map to 404,
/// 403, ...; everything else uses its code's status). The body is the
/// usual `{"success": false, "error": {...}}`.
#[derive(Debug)]
pub struct FileError {
    error: AppError,
    status: StatusCode,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl From<AppError> for FileError {
    fn from(error: AppError) -> Self {
        let status =
            StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        FileError { error, status }
    }
}

impl From<SftpError> for FileError {
    fn from(e: SftpError) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
        FileError {
            error: e.error,
            status,
        }
    }
}

impl ResponseError for FileError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        // the same body as every REST error, with this error's own status
        let mut res = super::error::ApiError(self.error.clone()).error_response();
        *res.status_mut() = self.status;
        res
    }
}

/// What a `Range` header asks for, given the file's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// No (usable) range: the whole file, 200.
    Full,
    /// Bytes `start..=end`, 206.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// Nothing of the file is in the range: 416.
    Unsatisfiable,
}

/// Interprets a `Range` header value for a file of `size` bytes. Headers
/// that are not a single byte range are ignored (the whole file is sent).
pub fn parse_range(header: Option<&str>, size: u64) -> RangeSpec {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeSpec::Full;
    };
    if spec.contains(',') {
        return RangeSpec::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeSpec::Full;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-n: the last n bytes
        (true, false) => match num(last) {
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Partial {
                start: size.saturating_sub(n),
                end: size - 1,
            },
            None => RangeSpec::Full,
        },
        // bytes=a-
        (false, true) => match num(first) {
            Some(a) if a >= size => RangeSpec::Unsatisfiable,
            Some(a) => RangeSpec::Partial {
                start: a,
                end: size - 1,
            },
            None => RangeSpec::Full,
        },
        // bytes=a-b
        (false, false) => match (num(first), num(last)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= size {
                    RangeSpec::Unsatisfiable
                } else {
                    RangeSpec::Partial {
                        start: a,
                        end: b.min(size - 1),
                    }
                }
            }
            _ => RangeSpec::Full,
        },
        (true, true) => RangeSpec::Full,
    }
}

fn check(state: &AppState, q: &FileQuery) -> Result<Arc<pinkpage_actors::server::ServerSpec>, FileError> {
    if q.path.is_empty() || q.path.contains('\0') {
        return Err(
            AppError::with_detail(ErrorCode::Validation, "path must be non-empty and without NUL").into(),
        );
    }
    state.settings.server(&q.server).cloned().ok_or_else(|| {
        AppError::with_detail(
            ErrorCode::UnknownServer,
            format!("no server named '{}'", q.server),
        )
        .into()
    })
}

/// Uploads a file of any size: the body is the file. It replaces an
/// existing file atomically; an interrupted upload leaves nothing behind.
#[utoipa::path(
    tag = "bmx5",
    params(FileQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "the file's bytes, streamed"),
    responses(
        (status = 200, description = "written", body = UploadResult),
        (status = 400, description = "bad query (10001) or body ended early (52000)", body = ErrorResponse),
        (status = 403, description = "52000, SFTP permission denied", body = ErrorResponse),
        (status = 404, description = "unknown server (23000) or directory missing (52000)", body = ErrorResponse),
        (status = 502, description = "SSH or SFTP failure", body = ErrorResponse),
    )
)]
#[put("/api/v1/bmx5/files")]
pub async fn put_file(
    state: web::Data<AppState>,
    q: web::Query<FileQuery>,
    body: web::Payload,
) -> Result<HttpResponse, FileError> {
    let q = q.into_inner();
    let spec = check(&state, &q)?;
    let FileQuery { server, path } = q;
    let task_state = state.clone();
    let (task_server, task_path) = (server.clone(), path.clone());
    // Detached: when the client vanishes, actix drops this handler, but
    // the write must still remove its temporary file.
    let task = actix_web::rt::spawn(async move {
        let state = task_state;
        let conn = SftpConn::open(&spec, &state.ssh).await?;
        let result = conn.write_atomic(&task_path, body).await;
        conn.close().await;
        let mut event = NewAuditEvent::new("rest", "sftp.upload");
        event.server = Some(task_server);
        event.bytes = result.as_ref().ok().map(|n| *n as i64);
        event.detail = Some(match &result {
            Ok(_) => serde_json::json!({"path": task_path, "ok": true}),
            Err(e) => serde_json::json!({"path": task_path, "ok": false,
                "error": e.error.code.code(), "error_detail": e.error.detail}),
        });
        state.store.audit(event);
        if let Err(e) = &result {
            log::info!(path = task_path.as_str(), error = e.to_string(); "upload failed; temporary file removed");
        }
        result
    });
    let size = task.await.map_err(|e| {
        FileError::from(AppError::with_detail(
            ErrorCode::Internal,
            format!("upload task: {e}"),
        ))
    })??;
    Ok(HttpResponse::Ok().json(UploadResult { server, path, size }))
}

/// Downloads a file, streamed, with `Range` support for resuming.
#[utoipa::path(
    tag = "bmx5",
    params(FileQuery,
        ("Range" = Option<String>, Header, description = "one byte range: bytes=a-b, bytes=a- or bytes=-n")),
    responses(
        (status = 200, description = "the whole file (Content-Length set)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "the requested range (Content-Range set)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "bad query (10001)", body = ErrorResponse),
        (status = 403, description = "52000, SFTP permission denied", body = ErrorResponse),
        (status = 404, description = "unknown server (23000) or no such file (52000)", body = ErrorResponse),
        (status = 409, description = "52000, the path is a directory", body = ErrorResponse),
        (status = 416, description = "10001, range not satisfiable (Content-Range: bytes */size)", body = ErrorResponse),
        (status = 502, description = "SSH or SFTP failure", body = ErrorResponse),
    )
)]
#[get("/api/v1/bmx5/files")]
pub async fn get_file(
    state: web::Data<AppState>,
    q: web::Query<FileQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, FileError> {
    let q = q.into_inner();
    let spec = check(&state, &q)?;
    let conn = Arc::new(SftpConn::open(&spec, &state.ssh).await?);
    let file = conn.open_read(&q.path).await?;
    let size = file.size();
    let range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, len) = match parse_range(range, size) {
        RangeSpec::Full => (StatusCode::OK, 0, size),
        RangeSpec::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeSpec::Unsatisfiable => {
            let err = AppError::with_detail(
                ErrorCode::Validation,
                format!(
                    "range {:?} is outside the file's {size} bytes",
                    range.unwrap_or_default()
                ),
            );
            let mut res = FileError {
                error: err,
                status: StatusCode::RANGE_NOT_SATISFIABLE,
            }
            .error_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(res);
        }
    };
    let stream = file.into_stream(start, len).await?;
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CONTENT_TYPE, "application/octet-stream"))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .no_chunking(len);
    if status == StatusCode::PARTIAL_CONTENT {
        res.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        ));
    }
    Ok(res.streaming(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_are_interpreted_against_the_size() {
        let p = |h: &str| parse_range(Some(h), 100);
        assert_eq!(p("bytes=10-19"), RangeSpec::Partial { start: 10, end: 19 });
        assert_eq!(p("bytes=90-"), RangeSpec::Partial { start: 90, end: 99 });
        assert_eq!(p("bytes=-5"), RangeSpec::Partial { start: 95, end: 99 });
        assert_eq!(p("bytes=-500"), RangeSpec::Partial { start: 0, end: 99 });
        assert_eq!(p("bytes=50-500"), RangeSpec::Partial { start: 50, end: 99 });
        assert_eq!(p("bytes=100-"), RangeSpec::Unsatisfiable);
        assert_eq!(p("bytes=100-200"), RangeSpec::Unsatisfiable);
        assert_eq!(p("bytes=-0"), RangeSpec::Unsatisfiable);
    }

    #[test]
    fn unusable_range_headers_mean_the_whole_file() {
        assert_eq!(parse_range(None, 10), RangeSpec::Full);
        for h in [
            "items=1-2",
            "bytes=5-2",
            "bytes=a-b",
            "bytes=1-2,4-5",
            "bytes=-",
            "bytes=3",
        ] {
            assert_eq!(parse_range(Some(h), 10), RangeSpec::Full, "{h}");
        }
    }

    #[test]
    fn an_empty_file_satisfies_no_range() {
        assert_eq!(parse_range(Some("bytes=0-"), 0), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-1"), 0), RangeSpec::Unsatisfiable);
    }
}
