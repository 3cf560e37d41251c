//! `GET /api/v1/transfers`: the configured named transfers.

use actix_web::{get, web, HttpResponse};
use pinkpage_actors::server::TransferSpec;

use crate::state::AppState;

/// Every configured transfer, sorted by name.
#[utoipa::path(tag = "transfers", responses((status = 200, body = [TransferSpec])))]
#[get("/api/v1/transfers")]
pub async fn list_transfers(state: web::Data<AppState>) -> HttpResponse {
    let transfers: Vec<&TransferSpec> = state.settings.transfers.values().map(|t| &**t).collect();
    HttpResponse::Ok().json(transfers)
}
