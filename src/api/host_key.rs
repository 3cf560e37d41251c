//! Host-key rotation (admins): `GET /api/v1/servers/{name}/host-key` shows
//! the key a server offers now beside what we trust for it, and
//! `POST .../host-key/accept` trusts the offered key in place of the old
//! ones when the admin names its fingerprint. The engine does the work
//! (`pinkpage_actors::ssh::rotation`); this file parses, audits and
//! answers. docs/operations.md, "Host-key rotation", walks through it.

use actix_web::{get, post, web, HttpResponse};
use pinkpage_actors::ssh::rotation::{self, Accepted, HostKeyReport};
use pinkpage_actors::{AppError, ErrorCode};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use crate::auth::Caller;
use crate::records::audit::{NewAuditEvent, Outcome};
use crate::request::{invalid, ServerRef};
use crate::state::AppState;

/// The fingerprint an admin accepts.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptHostKey {
    /// The new key's fingerprint as `ssh-keygen -lf` prints it
    /// (`SHA256:` and 43 base64 characters), checked out of band with the
    /// server's owner; it must be the key the server offers now.
    #[schema(pattern = "^SHA256:[A-Za-z0-9+/]{43}=?$", min_length = 50, max_length = 51)]
    pub fingerprint: String,
}

/// `SHA256:` and 43 base64 characters, one `=` of padding allowed: the
/// form the schema promises, checked exactly (no blanks forgiven here).
fn parse_fingerprint(text: &str) -> Result<&str, AppError> {
    let digest = text
        .strip_prefix("SHA256:")
        .map(|d| d.strip_suffix('=').unwrap_or(d));
    match digest {
        Some(d)
            if d.len() == 43
                && d.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/') =>
        {
            Ok(text)
        }
        _ => Err(invalid(
            "fingerprint must be SHA256: and 43 base64 characters, as ssh-keygen -lf prints it",
        )),
    }
}

/// The key a server offers now (a handshake stopped before
/// authentication, under the SSH connect timeout) and what we trust for it.
#[utoipa::path(tag = "servers", params(("name" = String, Path, description = "server name")), responses(
    (status = 200, body = HostKeyReport),
    (status = 404, description = "unknown server (23000)", body = super::error::ErrorResponse),
    (status = 502, description = "no key could be fetched (20000), a host certificate or an unreadable known_hosts file (20002)", body = super::error::ErrorResponse),
    (status = 504, description = "no key within the connect timeout (20001)", body = super::error::ErrorResponse)))]
#[get("/api/v1/servers/{name}/host-key")]
pub async fn show_host_key(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let server = ServerRef::resolve(&state.settings(), caller.principal()?, &name)?;
    let report = rotation::host_key_report(server.spec(), &state.ssh).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// Trusts the key the server offers now in place of the keys known_hosts
/// records for it, if its fingerprint is the one given; audited
/// (`host_key.accept`, refusals too). The file is rewritten atomically;
/// other hosts' lines stay as they are.
#[utoipa::path(tag = "servers", params(("name" = String, Path, description = "server name")),
    request_body = AcceptHostKey, responses(
    (status = 200, body = Accepted),
    (status = 400, description = "the fingerprint is not SHA256:<base64> (10001)", body = super::error::ErrorResponse),
    (status = 404, description = "unknown server (23000)", body = super::error::ErrorResponse),
    (status = 409, description = "the server offers another key (20004; nothing changed), or its key is pinned in the servers file (20005: change the pin and reload)", body = super::error::ErrorResponse),
    (status = 500, description = "known_hosts could not be rewritten (10000)", body = super::error::ErrorResponse),
    (status = 502, description = "no key could be fetched (20000), or the offered key is @revoked (20002)", body = super::error::ErrorResponse),
    (status = 504, description = "no key within the connect timeout (20001)", body = super::error::ErrorResponse)))]
#[post("/api/v1/servers/{name}/host-key/accept")]
pub async fn accept_host_key(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: web::Json<AcceptHostKey>,
) -> Result<HttpResponse, ApiError> {
    let who = caller.principal()?;
    let server = ServerRef::resolve(&state.settings(), who, &name)?;
    let expected = parse_fingerprint(&body.fingerprint)?;
    let result = rotation::accept_host_key(server.spec(), &state.ssh, expected).await;
    state.journal.audit(audit_row(
        NewAuditEvent::new("rest", "host_key.accept")
            .by(Some(&who.user), caller.remote_addr())
            .in_domain("rest"),
        server.name(),
        expected,
        &result,
    ));
    Ok(HttpResponse::Ok().json(result?))
}

/// The `host_key.accept` row: the server, the fingerprint asked for, and
/// on success the fingerprints replaced; a refusal carries its code. One
/// shape for the REST route and the command line.
pub fn audit_row(
    mut row: NewAuditEvent,
    server: &str,
    expected: &str,
    result: &Result<Accepted, AppError>,
) -> NewAuditEvent {
    row.server = Some(server.to_owned());
    row.target = Some(expected.to_owned());
    match result {
        Ok(accepted) => {
            let previous: Vec<&str> = accepted.previous.iter().map(|k| k.fingerprint.as_str()).collect();
            row.detail = Some(json!({
                "old": previous,
                "new": accepted.accepted.fingerprint,
                "algorithm": accepted.accepted.algorithm,
            }));
        }
        Err(e) => {
            row.ended(Outcome::Failed, Some(e.code.code()));
            if e.code == ErrorCode::HostKeyMismatch {
                row.detail = Some(json!({ "refused": e.detail }));
            }
        }
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_taken_only_in_the_exact_form() {
        let good = "SHA256:15wSE3wv0Hg0c2+ly2ZwYOoFvhbLspPXLTEdcZ5RTVc";
        assert!(parse_fingerprint(good).is_ok());
        assert!(parse_fingerprint(&format!("{good}=")).is_ok());
        for bad in [
            "",
            " SHA256:15wSE3wv0Hg0c2+ly2ZwYOoFvhbLspPXLTEdcZ5RTVc",
            "SHA256:15wSE3wv0Hg0c2+ly2ZwYOoFvhbLspPXLTEdcZ5RTV",
            "MD5:15wSE3wv0Hg0c2+ly2ZwYOoFvhbLspPXLTEdcZ5RTVc",
            "SHA256:15wSE3wv0Hg0c2+ly2ZwYOoFvhbLspPXLTEdcZ5RT-c",
            "SHA256:15wSE3wv0Hg0c2+ly2ZwYOoFvhbLspPXLTEdcZ5RTVc==",
        ] {
            let e = parse_fingerprint(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::Validation, "{bad:?}");
        }
    }
}
