//! `GET /api/v1/transfers`: the configured named transfers.

use actix_web::{get, web, HttpResponse};
use pinkpage_actors::server::TransferSpec;
use serde::Serialize;

use crate::state::AppState;

/// A named transfer as clients see it (run it with `scp_transfer` on
/// `/ws/v1/stub`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TransferInfo {
    /// Name used in `scp_transfer`.
    pub name: String,
    /// Server the files are read from.
    pub source_server: String,
    /// Absolute path; its last component may be a glob (`*`, `?`, `[...]`).
    pub source_glob: String,
    /// Server the files are written to.
    pub destination_server: String,
    /// Directory the files are written into.
    pub destination_dir: String,
    /// Whether SHA-256 of both sides is compared before a file is renamed
    /// into place.
    pub verify_sha256: bool,
}

impl From<&TransferSpec> for TransferInfo {
    fn from(t: &TransferSpec) -> Self {
        TransferInfo {
            name: t.name.clone(),
            source_server: t.source_server.clone(),
            source_glob: t.source_glob.clone(),
            destination_server: t.destination_server.clone(),
            destination_dir: t.destination_dir.clone(),
            verify_sha256: t.verify_sha256,
        }
    }
}

/// Every configured transfer, sorted by name.
#[utoipa::path(tag = "transfers", responses((status = 200, body = [TransferInfo])))]
#[get("/api/v1/transfers")]
pub async fn list_transfers(state: web::Data<AppState>) -> HttpResponse {
    let transfers: Vec<TransferInfo> = state
        .settings
        .transfers
        .values()
        .map(|t| TransferInfo::from(&**t))
        .collect();
    HttpResponse::Ok().json(transfers)
}
