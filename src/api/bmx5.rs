//! `PUT` / `GET /api/v1/bmx5/files`: large files over SFTP, streamed both
//! ways with bounded memory (BMX5; small files go inline over the
//! WebSocket).
//!
//! Each request gets its session from a pool actor of its own, stopped as
//! soon as the session is handed out: the session then lives exactly as
//! long as the request uses it (a download's stream holds it), so nothing
//! is left open when the HTTP client goes.
//! - `PUT` streams the request body into a hidden temporary file next to
//!   the target and renames it over the target once the body ended
//!   cleanly; a client that disconnects mid-body leaves no file behind.
//!   The write runs in a detached task, so the cleanup runs even when
//!   actix drops the handler of a vanished client. A body that sends
//!   nothing for `PINKPAGE_BODY_IDLE_TIMEOUT_S` ends the same way, with
//!   10009 (408).
//! - `GET` streams the file with `Content-Length`; a single `Range:
//!   bytes=a-b` (also `a-` and `-n`) gives 206 with `Content-Range`, an
//!   unsatisfiable one 416. Several ranges in one header are not supported:
//!   the whole file is sent (RFC 9110 lets a server ignore `Range`).
//!
//! Both are audited: `sftp.upload` once the write ended, `sftp.download`
//! once the body ended or the client left, with the bytes actually sent
//! (a read of a file's content is a remote action like a write).
//!
//! SFTP failures are 52000 with the SFTP status in `detail` and an HTTP
//! status that fits it (404 no such file, 403 permission denied, ...;
//! [`ApiError`] decides).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{get, put, web, HttpRequest, HttpResponse, ResponseError};
use futures_util::{Stream, StreamExt};
use pinkpage_actors::files::pool::SftpPool;
use pinkpage_actors::files::sftp::{SftpConn, SftpError};
use pinkpage_actors::{AppError, ErrorCode};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorResponse};
use crate::auth::Caller;
use crate::records::{NewAuditEvent, Outcome};
use crate::request::{RemotePath, ServerRef};
use crate::state::AppState;

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

/// What `req`'s `Range` asks of `what`, `size` bytes long: the status
/// (200 or 206), the first byte and the length; or the 416 answer (10001,
/// with `Content-Range: bytes */size`) when none of it is in range.
pub fn requested_range(
    req: &HttpRequest,
    size: u64,
    what: &str,
) -> Result<(StatusCode, u64, u64), Box<HttpResponse>> {
    let range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok());
    match parse_range(range, size) {
        RangeSpec::Full => Ok((StatusCode::OK, 0, size)),
        RangeSpec::Partial { start, end } => Ok((StatusCode::PARTIAL_CONTENT, start, end - start + 1)),
        RangeSpec::Unsatisfiable => {
            let err = AppError::with_detail(
                ErrorCode::Validation,
                format!(
                    "range {:?} is outside {what}'s {size} bytes",
                    range.unwrap_or_default()
                ),
            );
            let mut res = ApiError::with_status(err, StatusCode::RANGE_NOT_SATISFIABLE).error_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            Err(Box::new(res))
        }
    }
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

/// Validates the query: the path (10001), then the server (23000).
fn check(state: &AppState, caller: &Caller, q: FileQuery) -> Result<(ServerRef, RemotePath), ApiError> {
    let path = RemotePath::parse("path", q.path)?;
    let server = ServerRef::resolve(&state.settings(), caller.principal()?, &q.server)?;
    Ok((server, path))
}

/// Opens a session to `server` through a pool actor of its own, stopped
/// at once: the caller holds the only reference, and the session ends when
/// it lets go.
async fn open(state: &AppState, server: &ServerRef) -> Result<Arc<SftpConn>, SftpError> {
    let pool = SftpPool::start(state.temp_files.clone());
    let conn = pool.get(server.spec(), &state.ssh).await;
    pool.stop();
    conn
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
        (status = 408, description = "10009, the body sent nothing for PINKPAGE_BODY_IDLE_TIMEOUT_S; nothing was written", body = ErrorResponse),
        (status = 403, description = "52000, SFTP permission denied", body = ErrorResponse),
        (status = 404, description = "unknown server (23000) or directory missing (52000)", body = ErrorResponse),
        (status = 409, description = "52000, the target is a directory or SFTP failed on it", body = ErrorResponse),
        (status = 501, description = "52000, the server does not support an SFTP operation", body = ErrorResponse),
        (status = 502, description = "SSH or SFTP failure", body = ErrorResponse),
        (status = 504, description = "a connection or SFTP request timed out", body = ErrorResponse),
    )
)]
#[put("/api/v1/bmx5/files")]
pub async fn put_file(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<FileQuery>,
    body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (server_ref, path) = check(&state, &caller, q.into_inner())?;
    let (server, path) = (server_ref.name().to_owned(), path.into_string());
    let task_state = state.clone();
    let (task_server, task_path) = (server.clone(), path.clone());
    // Detached: when the client vanishes, actix drops this handler, but
    // the write must still remove its temporary file.
    let idle = state.settings().work_limits.body_idle_timeout;
    let stalled = Rc::new(Cell::new(false));
    let task_stalled = stalled.clone();
    let task = actix_web::rt::spawn(async move {
        let state = task_state;
        let conn = open(&state, &server_ref).await?;
        let body = idle_bounded(body, idle, task_stalled);
        let result = conn.write_atomic(&task_path, body).await;
        conn.close().await;
        let mut event = NewAuditEvent::new("rest", "sftp.upload")
            .by(Some(&caller.user()), caller.remote_addr())
            .on(task_path.as_str());
        event.server = Some(task_server);
        event.bytes = result.as_ref().ok().map(|n| *n as i64);
        if let Err(e) = &result {
            event.ended(Outcome::Failed, Some(e.error.code.code()));
        }
        event.detail = Some(match &result {
            Ok(_) => serde_json::json!({"path": task_path, "ok": true}),
            Err(e) => serde_json::json!({"path": task_path, "ok": false,
                "error": e.error.code.code(), "error_detail": e.error.detail}),
        });
        state.journal.audit(event);
        if let Err(e) = &result {
            log::info!(path = task_path.as_str(), error = e.to_string(); "upload failed; temporary file removed");
        }
        result
    });
    let result = task.await.map_err(|e| {
        ApiError::from(AppError::with_detail(
            ErrorCode::Internal,
            format!("upload task: {e}"),
        ))
    })?;
    if result.is_err() && stalled.get() {
        return Err(AppError::with_detail(
            ErrorCode::RequestBodyStalled,
            format!(
                "the body sent nothing for {idle:?} (PINKPAGE_BODY_IDLE_TIMEOUT_S); the upload was aborted"
            ),
        )
        .into());
    }
    let size = result?;
    Ok(HttpResponse::Ok().json(UploadResult { server, path, size }))
}

/// `body` that ends with an error once it yields nothing for `idle`, and
/// sets `stalled` then: a client that stops sending mid-body would
/// otherwise hold an SSH session and a temporary file for as long as it
/// keeps the connection open.
fn idle_bounded<S, E>(
    body: S,
    idle: Duration,
    stalled: Rc<Cell<bool>>,
) -> impl Stream<Item = Result<Bytes, String>> + Unpin
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    Box::pin(futures_util::stream::unfold(Some(body), move |body| {
        let stalled = stalled.clone();
        async move {
            // `None`: the error was given, the stream is over
            let mut body = body?;
            match tokio::time::timeout(idle, body.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
                Ok(Some(Err(e))) => Some((Err(e.to_string()), None)),
                Ok(None) => None,
                Err(_) => {
                    stalled.set(true);
                    Some((Err(format!("no body bytes for {idle:?}")), None))
                }
            }
        }
    }))
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
        (status = 501, description = "52000, the server does not support an SFTP operation", body = ErrorResponse),
        (status = 502, description = "SSH or SFTP failure", body = ErrorResponse),
        (status = 504, description = "a connection or SFTP request timed out", body = ErrorResponse),
    )
)]
#[get("/api/v1/bmx5/files")]
pub async fn get_file(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<FileQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (server, path) = check(&state, &caller, q.into_inner())?;
    let mut row = NewAuditEvent::new("rest", "sftp.download")
        .by(Some(&caller.user()), caller.remote_addr())
        .on(path.as_str());
    row.server = Some(server.name().to_owned());
    let opened = async {
        let conn = open(&state, &server).await?;
        conn.open_read(path.as_str()).await
    };
    let file = match opened.await {
        Ok(file) => file,
        Err(e) => {
            row.ended(Outcome::Failed, Some(e.error.code.code()));
            row.detail = Some(serde_json::json!({"path": path.as_str(), "ok": false,
                "error": e.error.code.code(), "error_detail": e.error.detail}));
            state.journal.audit(row);
            return Err(e.into());
        }
    };
    let size = file.size();
    let (status, start, len) = match requested_range(&req, size, "the file") {
        Ok(range) => range,
        Err(refused) => return Ok(*refused),
    };
    let stream = file.into_stream(start, len).await?;
    row.detail =
        Some(serde_json::json!({"path": path.as_str(), "offset": start, "length": len, "size": size}));
    let stream = Audited {
        inner: Box::pin(stream),
        sent: 0,
        row: Some((state.journal.clone(), row, len)),
    };
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

/// A download's body: the file's bytes, counted. Its `sftp.download` row
/// is written when the body is dropped, which is when it ended or the
/// client left (actix drops the body of a closed connection): with the
/// bytes sent and whether that was all of them.
struct Audited<S> {
    inner: std::pin::Pin<Box<S>>,
    sent: u64,
    /// The journal, the row and the bytes the response promised; taken
    /// when the row is written.
    row: Option<(crate::journal::Journal, NewAuditEvent, u64)>,
}

impl<S: Stream<Item = Result<Bytes, std::io::Error>>> Stream for Audited<S> {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let std::task::Poll::Ready(Some(Ok(chunk))) = &polled {
            self.sent += chunk.len() as u64;
        }
        polled
    }
}

impl<S> Drop for Audited<S> {
    fn drop(&mut self) {
        if let Some((journal, mut row, promised)) = self.row.take() {
            row.bytes = Some(self.sent as i64);
            if self.sent != promised {
                // the client left before the body ended
                row.ended(Outcome::Cancelled, None);
            }
            if let Some(serde_json::Value::Object(detail)) = row.detail.as_mut() {
                detail.insert("ok".into(), (self.sent == promised).into());
            }
            journal.audit(row);
        }
    }
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
