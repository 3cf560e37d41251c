//! `GET /api/v1/errors`: the error catalogue.

use actix_web::{get, HttpResponse};
use pinkpage_actors::ErrorCode;
use serde::Serialize;

/// One catalogue entry.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CatalogueEntry {
    /// Five-digit code.
    pub code: u32,
    /// HTTP status of REST replies with this code.
    pub http_status: u16,
    /// Fixed message.
    pub message: &'static str,
}

/// The catalogue, in code order.
pub fn catalogue() -> Vec<CatalogueEntry> {
    let mut entries: Vec<CatalogueEntry> = ErrorCode::ALL
        .iter()
        .map(|c| CatalogueEntry {
            code: c.code(),
            http_status: super::error::http_status(*c).as_u16(),
            message: c.message(),
        })
        .collect();
    entries.sort_by_key(|e| e.code);
    entries
}

/// Every error code the daemon can answer with.
#[utoipa::path(tag = "daemon", responses((status = 200, body = [CatalogueEntry])))]
#[get("/api/v1/errors")]
pub async fn list_errors() -> HttpResponse {
    HttpResponse::Ok().json(catalogue())
}

/// The catalogue as the markdown table in `docs/errors.md`.
pub fn markdown_table() -> String {
    let mut out = String::from("| code | HTTP | message |\n|---|---|---|\n");
    for e in catalogue() {
        out.push_str(&format!("| {} | {} | {} |\n", e.code, e.http_status, e.message));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_errors_md_lists_the_catalogue() {
        let doc = include_str!("../../docs/errors.md");
        let table = super::markdown_table();
        assert!(
            doc.contains(&table),
            "docs/errors.md is out of date; its table must be exactly:\n{table}"
        );
    }
}
