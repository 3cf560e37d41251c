//! `GET /api/v1/audit`: the audit trail, newest first, filtered; and
//! `GET /api/v1/audit/export`: the whole trail from an id on, oldest
//! first, as JSON lines for a SIEM (docs/operations.md, "Exporting the
//! audit trail").

use actix_web::web::Bytes;
use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use pinkpage_actors::{AppError, ErrorCode};
use serde::Deserialize;

use super::error::ApiError;
use crate::auth::Caller;
use crate::records::{audit, AuditEvent};
use crate::state::AppState;
use crate::store::AuditStore;

/// The longest `text` filter, in characters.
const MAX_TEXT: usize = 256;

/// Rows the export reads from the store at a time: its memory, whatever
/// the trail's length.
const EXPORT_PAGE: u32 = 500;

/// Paging and filtering.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// At most this many (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only events with a smaller id (the last id of the previous page).
    pub before_id: Option<i64>,
    /// Only this action (e.g. `session.start`).
    pub action: Option<String>,
    /// Only events by this user.
    pub user: Option<String>,
    /// Only events on this server.
    pub server: Option<String>,
    /// Only events of this domain (`stub`, `bmx4`, `bmx5`, `diff`,
    /// `terminal`, `workflow`, `rest`, `auth`, `cli`, `system`, ...).
    pub domain: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Only events before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// Only events whose command, target or detail contains this text
    /// (ASCII letters in any case).
    #[param(max_length = 256)]
    pub text: Option<String>,
}

/// A time filter: RFC 3339, or 10001 naming the parameter.
fn time(name: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>, AppError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    AppError::with_detail(
                        ErrorCode::Validation,
                        format!("{name} must be a time in RFC 3339 (2026-12-07T10:42:00Z)"),
                    )
                })
        })
        .transpose()
}

/// Audit events, newest first.
#[utoipa::path(tag = "audit", params(AuditQuery), responses(
    (status = 200, body = [AuditEvent]),
    (status = 400, body = super::error::ErrorResponse)))]
#[get("/api/v1/audit")]
pub async fn list_audit(
    state: web::Data<AppState>,
    _admin: Caller,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let limit = super::paging::page_limit(q.limit, 100)?;
    if q.text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            format!("text is at most {MAX_TEXT} characters"),
        )
        .into());
    }
    let (since, until) = (time("since", q.since)?, time("until", q.until)?);
    let events = state
        .stores
        .audit
        .list(audit::AuditQuery {
            limit,
            before_id: q.before_id,
            action: q.action,
            user: q.user,
            server: q.server,
            domain: q.domain,
            since,
            until,
            text: q.text,
        })
        .await?;
    Ok(HttpResponse::Ok().json(events))
}

/// Where the export starts.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ExportQuery {
    /// Only events with a larger id (the last id a previous export gave;
    /// 0 or absent: from the oldest).
    pub since: Option<i64>,
}

/// The audit trail as JSON lines, oldest first: every event with an id
/// above `since`, one JSON object a line (the fields of `GET
/// /api/v1/audit`, with `instance` and `mac`), up to the newest row there
/// is while it runs. Streamed a page at a time; resume with the last id
/// received as `since`.
#[utoipa::path(tag = "audit", params(ExportQuery), responses(
    (status = 200, description = "one AuditEvent per line, ascending id", content_type = "application/x-ndjson", body = AuditEvent),
    (status = 400, body = super::error::ErrorResponse)))]
#[get("/api/v1/audit/export")]
pub async fn export_audit(
    state: web::Data<AppState>,
    _admin: Caller,
    q: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let store = state.stores.audit.clone();
    let since = q.since.unwrap_or(0);
    // the first page before the answer starts, so a store that fails says
    // so with its code rather than with a cut stream
    let first = store.page_after(since, EXPORT_PAGE).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(export(store, first)))
}

/// Where the export stands between two pages.
enum Export {
    /// A page read, not yet sent.
    Read(Vec<AuditEvent>),
    /// Everything through this id sent; the next page is read when the
    /// client took the last one (a slow reader slows the reads).
    SentThrough(i64),
    /// The last page was short: the newest row is sent.
    Done,
}

/// `first`, then the pages after it, as lines.
fn export(
    store: std::sync::Arc<dyn AuditStore>,
    first: Vec<AuditEvent>,
) -> impl futures_util::Stream<Item = Result<Bytes, AppError>> {
    futures_util::stream::try_unfold(Export::Read(first), move |at| {
        let store = store.clone();
        async move {
            let page = match at {
                Export::Read(page) => page,
                Export::SentThrough(id) => store.page_after(id, EXPORT_PAGE).await?,
                Export::Done => return Ok(None),
            };
            let Some(last) = page.last().map(|e| e.id) else {
                return Ok(None);
            };
            let mut lines = Vec::with_capacity(page.len() * 512);
            for event in &page {
                serde_json::to_writer(&mut lines, event)
                    .map_err(|e| AppError::with_detail(ErrorCode::Internal, e.to_string()))?;
                lines.push(b'\n');
            }
            let next = if page.len() < EXPORT_PAGE as usize {
                Export::Done
            } else {
                Export::SentThrough(last)
            };
            Ok(Some((Bytes::from(lines), next)))
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use futures_util::future::BoxFuture;
    use futures_util::StreamExt;

    use super::*;
    use crate::records::{AuditCut, NewAuditEvent};
    use crate::store::memory::MemoryStore;
    use crate::store::{StoreFuture, Writes};

    /// The memory store, counting the export's page reads.
    struct Counting(MemoryStore, AtomicUsize);

    impl AuditStore for Counting {
        fn append(&self, rows: Vec<NewAuditEvent>) -> BoxFuture<'static, Writes> {
            self.0.append(rows)
        }
        fn list(&self, q: audit::AuditQuery) -> StoreFuture<Vec<AuditEvent>> {
            self.0.list(q)
        }
        fn page_after(&self, after_id: i64, limit: u32) -> StoreFuture<Vec<AuditEvent>> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.page_after(after_id, limit)
        }
        fn cut(&self, before: DateTime<Utc>, limit: u32) -> StoreFuture<Option<AuditCut>> {
            self.0.cut(before, limit)
        }
        fn interrupt_left_work_and_start(&self, instance: &str) -> StoreFuture<Vec<String>> {
            self.0.interrupt_left_work_and_start(instance)
        }
    }

    #[actix_web::test]
    async fn the_export_reads_a_page_at_a_time_and_gives_every_row_once_in_order() {
        let store = Arc::new(Counting(MemoryStore::default(), AtomicUsize::new(0)));
        let rows: Vec<NewAuditEvent> = (0..1200)
            .map(|n| NewAuditEvent::new("t", format!("a{n}")))
            .collect();
        store.append(rows).await.unwrap();
        let first = store.page_after(0, EXPORT_PAGE).await.unwrap();
        let chunks: Vec<Bytes> = export(store.clone(), first).map(|c| c.unwrap()).collect().await;
        // 500, 500, 200: the short page ends it, with no read after it
        let lines: Vec<usize> = chunks
            .iter()
            .map(|c| c.iter().filter(|b| **b == b'\n').count())
            .collect();
        assert_eq!(lines, [500, 500, 200]);
        assert_eq!(store.1.load(Ordering::SeqCst), 3, "one read a page");
        let ids: Vec<i64> = chunks
            .iter()
            .flat_map(|c| c.split(|b| *b == b'\n').filter(|l| !l.is_empty()))
            .map(|l| {
                serde_json::from_slice::<serde_json::Value>(l).unwrap()["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert_eq!(ids, (1..=1200).collect::<Vec<_>>());
    }
}
