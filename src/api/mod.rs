//! The REST surface (`/api/v1/...`), its OpenAPI document and Swagger UI.
//!
//! One file per resource; [`configure`] mounts them all. Every handler
//! returns [`error::ApiError`] on failure, so every error body has the same
//! shape.
//!
//! The OpenAPI document is the contract: its schemas declare the limits the
//! handlers enforce, and [`not_found`] reads it to answer a method a route
//! does not declare with 405 and `Allow` (schemathesis checks both, see
//! tests/api/openapi_contract.rs).

pub mod admin;
pub mod audit;
pub mod auth;
pub mod bmx4;
pub mod bmx5;
pub mod caller;
pub mod check;
pub mod command_policy;
pub mod diff;
pub mod error;
pub mod errors;
pub mod health;
pub mod health_servers;
pub mod host_key;
pub mod metrics;
pub mod paging;
pub mod ptys;
pub mod recordings;
pub mod servers;
pub mod session;
pub mod transfers;
pub mod users;
pub mod workflows;

use std::sync::OnceLock;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use pinkpage_actors::{AppError, ErrorCode};
use utoipa::openapi::path::PathItem;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use self::error::ApiError;

/// The OpenAPI document served at `/api-docs/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Pink-Page", description = "SSH terminals, session lock, server health, batch runs, SFTP and diffs. \
        The WebSocket protocol is described in docs/protocol.md; errors use the catalogue at /api/v1/errors."),
    paths(
        health::daemon_health,
        health_servers::list_server_health,
        health_servers::server_health,
        health_servers::server_health_events,
        servers::list_servers,
        check::check_server,
        host_key::show_host_key,
        host_key::accept_host_key,
        errors::list_errors,
        audit::list_audit,
        audit::export_audit,
        session::session_status,
        session::release_session,
        bmx5::put_file,
        bmx5::get_file,
        bmx4::list_runs,
        bmx4::get_run,
        transfers::list_transfers,
        transfers::plan_transfer,
        transfers::list_transfer_runs,
        diff::diff_files,
        diff::diff_dirs,
        diff::diff_command,
        auth::login,
        auth::logout,
        auth::me,
        users::list_users,
        users::create_user,
        users::change_user,
        users::list_tokens,
        users::create_token,
        users::revoke_token,
        workflows::list_workflows,
        workflows::plan_workflow,
        workflows::start_run,
        workflows::list_runs,
        workflows::get_run,
        workflows::confirm_run,
        workflows::cancel_run,
        ptys::list_ptys,
        recordings::list_recordings,
        recordings::get_recording,
        recordings::delete_recording,
        command_policy::list_rules,
        command_policy::list_reviews,
        command_policy::answer_review,
        admin::backup,
        admin::reload,
        metrics::metrics,
    ),
    components(schemas(error::ErrorResponse, pinkpage_actors::ErrorBody, bmx5::UploadResult,
        diff::DiffResultSchema, diff::DiffDirsResultSchema, diff::DiffCommandResultSchema)),
    modifiers(&SecuritySchemes),
    security(("cookie" = []), ("bearer" = [])),
    tags(
        (name = "daemon", description = "The daemon itself"),
        (name = "health", description = "Live health of each server and its transitions"),
        (name = "servers", description = "Configured servers"),
        (name = "audit", description = "The audit trail"),
        (name = "session", description = "The session lock"),
        (name = "bmx5", description = "Large files over SFTP, streamed (small ones go over /ws/v1/bmx5)"),
        (name = "bmx4", description = "Batch command runs"),
        (name = "transfers", description = "Named server-to-server transfers"),
        (name = "auth", description = "Signing in and out (see docs/security.md)"),
        (name = "users", description = "Accounts and API tokens (admins)"),
        (name = "workflows", description = "Named step sequences run under the session lock (also over /ws/v1/stub); see docs/workflows.md"),
        (name = "terminals", description = "Running PTYs and operator terminals (terminals themselves are on /ws/v1/terminal; see docs/terminals.md)"),
        (name = "recordings", description = "Recordings of every PTY in asciicast v2 (see docs/recordings.md)"),
        (name = "diff", description = "Compare files, directories and command output between two servers (also over /ws/v1/diff)"),
        (name = "command policy", description = "Rules that allow, deny or hold a command for review, and the review queue (see docs/command-policy.md)"),
    )
)]
pub struct ApiDoc;

/// Declares the two ways to sign in, so Swagger UI's "Authorize" works:
/// the session cookie set by `POST /api/v1/auth/login`, and an API token
/// as `Authorization: Bearer`.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "set by POST /api/v1/auth/login",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ppt_<id>_<secret>")
                    .description(Some(
                        "an API token (pinkpage token create, or POST /api/v1/tokens)",
                    ))
                    .build(),
            ),
        );
        declare_access(doc);
    }
}

/// Every operation says what admission may answer: routes anyone may use
/// carry an empty security requirement (credentials optional), the others
/// a 401 (10002); all may get a 403 (a foreign Origin 10005, a wrong Host
/// 10006, a role or server outside the caller's, 10003). Read from the
/// access table, so the document and the middleware agree.
fn declare_access(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::Operation;
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorResponse")))
                    .build(),
            )
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops: [(&str, &mut Option<Operation>); 5] = [
            ("GET", &mut item.get),
            ("PUT", &mut item.put),
            ("POST", &mut item.post),
            ("DELETE", &mut item.delete),
            ("PATCH", &mut item.patch),
        ];
        for (method, op) in ops {
            let Some(op) = op.as_mut() else { continue };
            let need = crate::auth::table::ROUTES
                .iter()
                .find(|r| r.method == method && r.pattern == path)
                .map(|r| r.need)
                .unwrap_or(pinkpage_actors::access::Need::Viewer);
            let responses = &mut op.responses.responses;
            if need == pinkpage_actors::access::Need::Anyone {
                op.security = Some(vec![SecurityRequirement::default()]);
            } else {
                responses
                    .entry("401".to_owned())
                    .or_insert_with(|| error("not signed in, or the credential is not good (10002)").into());
            }
            responses.entry("403".to_owned()).or_insert_with(|| {
                error("foreign Origin (10005), Host not allowed (10006), or the caller's role or servers do not allow it (10003)").into()
            });
            // admission reads every body before the handler
            // (crate::limits::bodies)
            if op.request_body.is_some() {
                responses.entry("413".to_owned()).or_insert_with(|| {
                    error("the body is larger than this caller may send (10011; PINKPAGE_BODY_MAX_BYTES, PINKPAGE_ANON_BODY_MAX_BYTES)").into()
                });
                responses.entry("408".to_owned()).or_insert_with(|| {
                    error("the body sent nothing for PINKPAGE_BODY_IDLE_TIMEOUT_S (10009)").into()
                });
            }
        }
    }
}

/// Mounts every REST route, the docs and the JSON error handlers.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().error_handler(|e, _| error::validation_error(e)))
        .app_data(web::QueryConfig::default().error_handler(|e, _| error::validation_error(e)))
        .app_data(web::PathConfig::default().error_handler(|e, _| error::validation_error(e)))
        .service(health::daemon_health)
        .service(metrics::metrics)
        .service(health_servers::list_server_health)
        .service(health_servers::server_health)
        .service(health_servers::server_health_events)
        .service(servers::list_servers)
        .service(ptys::list_ptys)
        .service(recordings::list_recordings)
        .service(recordings::get_recording)
        .service(recordings::delete_recording)
        .service(command_policy::list_rules)
        .service(command_policy::list_reviews)
        .service(command_policy::answer_review)
        .service(admin::backup)
        .service(admin::reload)
        .service(check::check_server)
        .service(host_key::show_host_key)
        .service(host_key::accept_host_key)
        .service(errors::list_errors)
        .service(audit::list_audit)
        .service(audit::export_audit)
        .service(session::session_status)
        .service(session::release_session)
        .service(bmx5::put_file)
        .service(bmx5::get_file)
        .service(bmx4::list_runs)
        .service(bmx4::get_run)
        .service(transfers::list_transfers)
        .service(transfers::list_transfer_runs)
        .service(transfers::plan_transfer)
        .service(diff::diff_files)
        .service(diff::diff_dirs)
        .service(diff::diff_command)
        .service(auth::login)
        .service(auth::logout)
        .service(auth::me)
        .service(workflows::list_workflows)
        .service(workflows::list_runs)
        .service(workflows::get_run)
        .service(workflows::confirm_run)
        .service(workflows::cancel_run)
        .service(workflows::plan_workflow)
        .service(workflows::start_run)
        .service(users::list_users)
        .service(users::create_user)
        .service(users::change_user)
        .service(users::list_tokens)
        .service(users::create_token)
        .service(users::revoke_token)
        .service(SwaggerUi::new("/swagger/docs/{_:.*}").url("/api-docs/openapi.json", ApiDoc::openapi()))
        .route("/swagger/docs", web::get().to(redirect_to_docs));
}

async fn redirect_to_docs() -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", "/swagger/docs/"))
        .finish()
}

/// Every request no route took: 405 with `Allow` when the OpenAPI document
/// declares the path with other methods, else 404. Both carry 10004 in the
/// usual error body (no route answers this method and path).
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    let err = ApiError::from(AppError::with_detail(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    ));
    let mut res = err.error_response();
    let Some(allowed) = declared_methods(req.path()) else {
        return res;
    };
    // a declared method that still got here (a path parameter no route
    // accepts, such as an empty one) is a 404, not a method problem
    if allowed.iter().any(|m| *m == req.method().as_str()) {
        return res;
    }
    *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    if let Ok(v) = header::HeaderValue::from_str(&allowed.join(", ")) {
        res.headers_mut().insert(header::ALLOW, v);
    }
    res
}

/// A path of the OpenAPI document, split into segments (`None` for a
/// `{parameter}`), and the methods it declares.
type Route = (Vec<Option<String>>, Vec<&'static str>);

/// The methods the OpenAPI document declares for the path template that
/// `path` fits, if any.
fn declared_methods(path: &str) -> Option<&'static [&'static str]> {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        ApiDoc::openapi()
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let segments = template
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                (segments, methods_of(item))
            })
            .collect()
    });
    let segments: Vec<&str> = path.split('/').collect();
    routes
        .iter()
        .find(|(template, _)| {
            template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.as_deref().is_none_or(|t| t == *s))
        })
        .map(|(_, methods)| methods.as_slice())
}

/// The methods with an operation in `item`, as `Allow` spells them.
fn methods_of(item: &PathItem) -> Vec<&'static str> {
    [
        ("GET", item.get.is_some()),
        ("PUT", item.put.is_some()),
        ("POST", item.post.is_some()),
        ("DELETE", item.delete.is_some()),
        ("OPTIONS", item.options.is_some()),
        ("HEAD", item.head.is_some()),
        ("PATCH", item.patch.is_some()),
        ("TRACE", item.trace.is_some()),
    ]
    .into_iter()
    .filter_map(|(m, declared)| declared.then_some(m))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_methods_come_from_the_openapi_document() {
        assert_eq!(declared_methods("/api/v1/session"), Some(&["GET", "DELETE"][..]));
        assert_eq!(
            declared_methods("/api/v1/servers/web1/check"),
            Some(&["POST"][..])
        );
        assert_eq!(declared_methods("/api/v1/bmx5/files"), Some(&["GET", "PUT"][..]));
        assert_eq!(declared_methods("/api/v1/nothing"), None);
        assert_eq!(declared_methods("/api/v1/servers/web1/check/more"), None);
    }

    /// utoipa takes a literal for most limits: this holds each literal to
    /// the constant the daemon checks against, so the document cannot
    /// promise what the handler refuses.
    #[test]
    fn the_documents_limits_are_the_ones_the_daemon_checks() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let prop =
            |schema: &str, field: &str| doc["components"]["schemas"][schema]["properties"][field].clone();
        let name_max = crate::accounts::MAX_NAME_LEN;
        assert_eq!(prop("LoginRequest", "name")["maxLength"], name_max);
        assert_eq!(prop("NewUser", "name")["maxLength"], name_max);
        assert_eq!(prop("NewToken", "user")["maxLength"], name_max);
        assert_eq!(
            prop("NewToken", "expires_in_days")["maximum"],
            users::MAX_TOKEN_DAYS
        );
        assert_eq!(
            prop("NewToken", "label")["maxLength"],
            crate::accounts::MAX_LABEL_LEN
        );
        assert_eq!(
            prop("NewToken", "label")["pattern"],
            crate::accounts::label_pattern()
        );
        let tag = &doc["components"]["schemas"]["Tag"];
        assert_eq!(tag["maxLength"], crate::accounts::MAX_TAG_LEN);
        assert_eq!(tag["pattern"], crate::accounts::tag_pattern());
        let mut limits = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["name"] == "limit" {
                        assert_eq!(p["schema"]["maximum"], paging::MAX_PAGE, "{method} {path}");
                        assert_eq!(p["schema"]["minimum"], 1, "{method} {path}");
                        limits += 1;
                    }
                }
            }
        }
        assert!(limits >= 4, "the listings' limits were found");
    }
}
