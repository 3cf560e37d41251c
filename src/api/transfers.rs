//! `GET /api/v1/transfers`: the configured named transfers;
//! `POST /api/v1/transfers/{name}/plan`: what one would copy now.

use actix_web::{get, post, web, HttpResponse};
use pinkpage_actors::server::TransferSpec;
use pinkpage_actors::transfer::{dry_run, TransferPlan};
use serde::Serialize;

use super::error::ApiError;
use crate::auth::Caller;
use crate::request::TransferRef;
use crate::state::AppState;

/// Every configured transfer, sorted by name.
#[utoipa::path(tag = "transfers", responses((status = 200, body = [TransferSpec])))]
#[get("/api/v1/transfers")]
pub async fn list_transfers(state: web::Data<AppState>) -> HttpResponse {
    let settings = state.settings();
    let transfers: Vec<&TransferSpec> = settings.transfers.values().map(|t| &**t).collect();
    HttpResponse::Ok().json(transfers)
}

/// A transfer's dry run: the configured ends and what it would copy.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TransferPlanBody {
    /// The transfer.
    pub transfer_name: String,
    /// Where files are read.
    pub source_server: String,
    /// Where files are written.
    pub destination_server: String,
    /// The directory they are written into.
    pub destination_dir: String,
    /// The files, their total and how many replace a destination file.
    #[serde(flatten)]
    pub plan: TransferPlan,
}

/// What the named transfer would copy now, and which files at the
/// destination it would replace: the source glob listed and each name
/// looked up at the destination, nothing written (the same answer as
/// `scp_transfer_plan` on `/ws/v1/stub`).
#[utoipa::path(tag = "transfers", params(("name" = String, Path, description = "the transfer")),
    responses(
        (status = 200, body = TransferPlanBody),
        (status = 404, description = "no such transfer (23001)", body = super::error::ErrorResponse),
        (status = 502, description = "a server could not be reached or listed (24000)", body = super::error::ErrorResponse)))]
#[post("/api/v1/transfers/{name}/plan")]
pub async fn plan_transfer(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ends = TransferRef::resolve(&state.settings(), caller.principal()?, &name)?;
    let plan = dry_run(&ends.spec, ends.source, ends.destination, state.ssh.clone()).await?;
    Ok(HttpResponse::Ok().json(TransferPlanBody {
        transfer_name: ends.spec.name.clone(),
        source_server: ends.spec.source_server.clone(),
        destination_server: ends.spec.destination_server.clone(),
        destination_dir: ends.spec.destination_dir.clone(),
        plan,
    }))
}

/// One finished transfer run, from its `transfer.end` audit row.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TransferRun {
    /// When it ended (RFC 3339, UTC).
    pub ended_at: String,
    /// The transfer.
    pub transfer_name: String,
    /// Who ran it.
    pub user: Option<String>,
    /// `complete`, `failed`, `cancelled` or `disconnected`.
    pub outcome: String,
    /// Bytes copied.
    pub bytes: Option<i64>,
    /// The files copied (a complete run).
    pub files: Vec<String>,
    /// How long it took (a complete run), in milliseconds.
    pub duration_ms: Option<u64>,
    /// The error code of a failed run.
    pub error: Option<u32>,
}

/// Query of the transfer history.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub struct TransferRunsQuery {
    /// At most this many (1-1000, default 20).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// The last transfer runs, newest first: those whose two servers the
/// caller may use (administrators: all, removed transfers included).
#[utoipa::path(tag = "transfers", params(TransferRunsQuery), responses(
    (status = 200, body = [TransferRun]),
    (status = 400, body = super::error::ErrorResponse)))]
#[get("/api/v1/transfers/runs")]
pub async fn list_transfer_runs(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<TransferRunsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = super::paging::page_limit(q.limit, 20)?;
    let who = caller.principal()?;
    // a run is shown when the transfer is still configured and both its
    // ends are the caller's (the same test as running it); the rows are
    // read in pages until `limit` are shown or the trail ends
    let shown = |name: &str| {
        who.role == pinkpage_actors::access::Role::Admin
            || TransferRef::resolve(&state.settings(), who, name).is_ok()
    };
    let mut runs = Vec::new();
    let mut before_id = None;
    while runs.len() < limit as usize {
        let rows = state
            .stores
            .audit
            .list(crate::records::audit::AuditQuery {
                limit: 200,
                before_id,
                action: Some("transfer.end".to_owned()),
                ..Default::default()
            })
            .await?;
        let Some(last) = rows.last() else {
            break;
        };
        before_id = Some(last.id);
        let page_was_full = rows.len() == 200;
        for row in rows {
            let detail = row.event.detail.clone().unwrap_or_default();
            let name = detail["transfer"].as_str().unwrap_or_default().to_owned();
            if name.is_empty() || !shown(&name) || runs.len() >= limit as usize {
                continue;
            }
            runs.push(TransferRun {
                ended_at: row.event.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                transfer_name: name,
                user: row.event.user.clone(),
                outcome: detail["outcome"].as_str().unwrap_or("unknown").to_owned(),
                bytes: row.event.bytes,
                files: detail["files"]
                    .as_array()
                    .map(|f| f.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default(),
                duration_ms: detail["duration_ms"].as_u64(),
                error: detail["error"].as_u64().map(|c| c as u32),
            });
        }
        if !page_was_full {
            break;
        }
    }
    Ok(HttpResponse::Ok().json(runs))
}
