//! `GET /api/v1/servers`: the configured servers, without secrets.

use actix_web::{get, web, HttpResponse};
use pinkpage_actors::server::{Auth, ServerSpec};
use serde::Serialize;

use crate::state::AppState;

/// A configured server as clients see it. Built field by field from
/// [`ServerSpec`] so a secret can never slip in through a new field.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ServerInfo {
    /// Name used in requests.
    pub name: String,
    /// Host name or address.
    pub host: String,
    /// SSH port.
    pub port: u16,
    /// Login user.
    pub username: String,
    /// `password` or `key`.
    pub auth_method: &'static str,
    /// Whether a host key fingerprint is pinned in the servers file.
    pub host_key_pinned: bool,
    /// Output encoding.
    pub encoding: &'static str,
    /// Labels.
    pub tags: Vec<String>,
}

impl From<&ServerSpec> for ServerInfo {
    fn from(s: &ServerSpec) -> Self {
        ServerInfo {
            name: s.name.clone(),
            host: s.host.clone(),
            port: s.port,
            username: s.username.clone(),
            auth_method: match s.auth {
                Auth::Password(_) => "password",
                Auth::KeyFile { .. } => "key",
            },
            host_key_pinned: s.host_key_fingerprint.is_some(),
            encoding: s.encoding.name(),
            tags: s.tags.clone(),
        }
    }
}

/// Every configured server, sorted by name.
#[utoipa::path(tag = "servers", responses((status = 200, body = [ServerInfo])))]
#[get("/api/v1/servers")]
pub async fn list_servers(state: web::Data<AppState>) -> HttpResponse {
    let servers: Vec<ServerInfo> = state
        .settings()
        .servers
        .values()
        .map(|s| ServerInfo::from(&**s))
        .collect();
    HttpResponse::Ok().json(servers)
}
