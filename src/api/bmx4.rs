//! `GET /api/v1/bmx4/runs` and `GET /api/v1/bmx4/runs/{run_id}`: stored
//! batch runs (BMX4), newest first, and one run with a page of its
//! results (by count and by bytes: a whole run can be gigabytes).

use actix_web::{get, web, HttpResponse};
use pinkpage_actors::{AppError, ErrorCode};
use serde::Deserialize;

use super::error::ApiError;
use crate::auth::Caller;
use crate::records::batch::ResultsPage;
use crate::records::{BatchRun, BatchRunDetail};
use crate::request::ServerRef;
use crate::state::AppState;

/// Paging.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct RunsQuery {
    /// At most this many (1-1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Skip this many of the newest (default 0). Declared as what it is, an
    /// unsigned 32-bit number (utoipa would say `int32`, half the range).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295.0)]
    pub offset: Option<u32>,
}

/// Batch runs, newest first, without their results: those on servers the
/// caller may use (all of them for administrators).
#[utoipa::path(tag = "bmx4", params(RunsQuery), responses(
    (status = 200, body = [BatchRun]),
    (status = 400, body = super::error::ErrorResponse)))]
#[get("/api/v1/bmx4/runs")]
pub async fn list_runs(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<RunsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = super::paging::page_limit(q.limit, 50)?;
    let visible = ServerRef::visible_to(&state.settings(), caller.principal()?);
    let runs = state
        .stores
        .batches
        .list(limit, q.offset.unwrap_or(0), visible)
        .await?;
    Ok(HttpResponse::Ok().json(runs))
}

/// Paging of one run's results.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ResultsQuery {
    /// At most this many results (1-1000, default 1000); a page also ends
    /// once it holds 16 MiB of output.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Skip this many results (default 0): the previous page's
    /// `next_offset`.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295.0)]
    pub offset: Option<u32>,
}

/// One batch run with its commands and a page of its results
/// (`results_total` in all; `next_offset` for the next page, null on the
/// last).
#[utoipa::path(tag = "bmx4",
    params(("run_id" = String, Path, description = "The run id from `batch_started`"), ResultsQuery),
    responses(
        (status = 200, body = BatchRunDetail),
        (status = 400, description = "bad limit or offset (10001)", body = super::error::ErrorResponse),
        (status = 404, description = "no such run, or one on a server the caller may not use (10004)", body = super::error::ErrorResponse)))]
#[get("/api/v1/bmx4/runs/{run_id}")]
pub async fn get_run(
    state: web::Data<AppState>,
    caller: Caller,
    run_id: web::Path<String>,
    q: web::Query<ResultsQuery>,
) -> Result<HttpResponse, ApiError> {
    let run_id = run_id.into_inner();
    let page = ResultsPage {
        limit: super::paging::page_limit(q.limit, 1000)?,
        offset: u64::from(q.offset.unwrap_or(0)),
    };
    let visible = ServerRef::visible_to(&state.settings(), caller.principal()?);
    match state.stores.batches.get(run_id.clone(), page, visible).await? {
        Some(run) => Ok(HttpResponse::Ok().json(run)),
        None => Err(AppError::with_detail(ErrorCode::NotFound, format!("no batch run '{run_id}'")).into()),
    }
}
