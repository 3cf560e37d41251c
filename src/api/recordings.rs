//! `/api/v1/recordings`: the recordings of PTYs (issue 26). Listing and
//! reading follow `crate::recordings::access` (admins every recording,
//! others their own on servers in their scope); deleting is for admins
//! and audited.
//!
//! A file is served up to its last full event: a running recording (still
//! growing) or one a killed daemon left cut mid-line reads as a whole
//! asciicast. `Range` is honoured on that whole part; a full read is
//! compressed when the client accepts it.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{delete, get, middleware, web, HttpRequest, HttpResponse};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use pinkpage_actors::{AppError, ErrorCode};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::bmx5::requested_range;
use super::error::ApiError;
use crate::auth::Caller;
use crate::recordings::access::{may_delete, may_read, scope};
use crate::recordings::cast::whole_length;
use crate::records::recording::{Recording, RecordingState, RecordingsQuery};
use crate::state::AppState;

/// Filters and paging.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only this user's recordings.
    pub user: Option<String>,
    /// Only recordings on this server.
    pub server: Option<String>,
    /// Only recordings started at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Only recordings started before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// Only recordings whose command contains this text.
    pub q: Option<String>,
    /// Only the steps of this workflow run.
    pub run_id: Option<String>,
    /// At most this many (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Skip this many of the newest matching ones (default 0).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295.0)]
    pub offset: Option<u32>,
}

fn time(name: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>, AppError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    AppError::with_detail(
                        ErrorCode::Validation,
                        format!("{name} must be an RFC 3339 time: {e}"),
                    )
                })
        })
        .transpose()
}

/// Recordings the caller may read, newest first (admins: all; others:
/// their own on servers in their scope).
#[utoipa::path(tag = "recordings", params(ListQuery), responses(
    (status = 200, body = [Recording]),
    (status = 400, body = super::error::ErrorResponse)))]
#[get("/api/v1/recordings")]
pub async fn list_recordings(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let who = caller.principal()?;
    let q = q.into_inner();
    let limit = super::paging::page_limit(q.limit, 100)?;
    let (visible, owner) = scope(&state.settings(), who);
    let mut listed = state
        .stores
        .recordings
        .list(RecordingsQuery {
            user: q.user.filter(|u| !u.is_empty()),
            server: q.server.filter(|s| !s.is_empty()),
            since: time("since", q.since)?,
            until: time("until", q.until)?,
            text: q.q.filter(|t| !t.is_empty()),
            run_id: q.run_id.filter(|r| !r.is_empty()),
            visible,
            owner,
            limit,
            offset: q.offset.unwrap_or(0),
        })
        .await?;
    // a running recording's size is its file's now
    for r in listed.iter_mut().filter(|r| r.state == RecordingState::Recording) {
        if let Some(len) = state
            .recordings
            .path_of(r)
            .and_then(|p| std::fs::metadata(p).ok())
        {
            r.bytes = len.len() as i64;
        }
    }
    Ok(HttpResponse::Ok().json(listed))
}

/// The recording `id`, when the caller may read it.
async fn readable(state: &AppState, caller: &Caller, id: String) -> Result<Recording, AppError> {
    let who = caller.principal()?;
    let recording =
        state.stores.recordings.get(id.clone()).await?.ok_or_else(|| {
            AppError::with_detail(ErrorCode::UnknownRecording, format!("no recording {id}"))
        })?;
    may_read(&state.settings(), who, &recording)?;
    Ok(recording)
}

/// The recording's asciicast v2 file, up to its last full event
/// (`application/x-asciicast`; `Range`; gzip when accepted).
#[utoipa::path(tag = "recordings", params(("id" = String, Path, description = "the recording's id (its pty_id)")),
    responses(
    (status = 200, description = "the .cast file", content_type = "application/x-asciicast"),
    (status = 206, description = "the requested range of it"),
    (status = 404, body = super::error::ErrorResponse),
    (status = 416, body = super::error::ErrorResponse)))]
#[get("/api/v1/recordings/{id}", wrap = "middleware::Compress::default()")]
pub async fn get_recording(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let recording = readable(&state, &caller, id.into_inner()).await?;
    let gone = || {
        AppError::with_detail(
            ErrorCode::UnknownRecording,
            format!("recording {}: its file is gone", recording.id),
        )
    };
    let path = state.recordings.path_of(&recording).ok_or_else(gone)?;
    let mut file = tokio::fs::File::open(&path).await.map_err(|_| gone())?;
    let len = file.metadata().await.map_err(|_| gone())?.len();
    let mut std_file = file.try_clone().await.map_err(|_| gone())?.into_std().await;
    let size = web::block(move || whole_length(&mut std_file, len))
        .await
        .map_err(|e| AppError::with_detail(ErrorCode::Internal, e.to_string()))?
        .map_err(|e| AppError::with_detail(ErrorCode::Internal, e.to_string()))?;
    let (status, start, len) = match requested_range(&req, size, "the recording") {
        Ok(range) => range,
        Err(refused) => return Ok(*refused),
    };
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|_| gone())?;
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CONTENT_TYPE, "application/x-asciicast"))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    if status == StatusCode::PARTIAL_CONTENT {
        res.insert_header((
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        ))
        // a range is sent as it is on disk, never compressed
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .no_chunking(len);
    }
    Ok(res.streaming(read_exactly(file, len)))
}

/// `len` bytes of `file` from where it stands, 64 KiB at a time.
fn read_exactly(file: tokio::fs::File, len: u64) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::try_unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let mut buf = vec![0u8; left.min(64 * 1024) as usize];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the recording is shorter than it was",
            ));
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), (file, left - n as u64))))
    })
}

/// Deletes a recording (admins; audited as `recording.delete`).
#[utoipa::path(tag = "recordings", params(("id" = String, Path, description = "the recording's id")),
    responses(
    (status = 204, description = "deleted"),
    (status = 404, body = super::error::ErrorResponse)))]
#[delete("/api/v1/recordings/{id}")]
pub async fn delete_recording(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    may_delete(caller.principal()?)?;
    let recording = readable(&state, &caller, id.into_inner()).await?;
    if recording.state == RecordingState::Recording {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            format!(
                "recording {} is still being written: delete it once its PTY ended",
                recording.id
            ),
        )
        .into());
    }
    let user = caller.user();
    let receipt = state
        .recordings
        .remove(
            &recording,
            Some((&user, caller.remote_addr())),
            "recording.delete",
            "deleted",
        )
        .await?;
    state.recordings.settled(receipt).await;
    Ok(HttpResponse::NoContent().finish())
}
