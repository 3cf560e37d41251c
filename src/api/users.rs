//! Accounts and API tokens over REST, for admins: the same operations as
//! `pinkpage user ...` / `pinkpage token ...`, through the same functions
//! (`src/accounts`). Every change is audited with the admin's name and
//! takes effect at once: the directory is reloaded before the reply, and
//! open WebSockets of a disabled user or a revoked token close.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use pinkpage_actors::access::Role;
use pinkpage_actors::secret::Secret;
use pinkpage_actors::{AppError, ErrorCode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::accounts::{self, password, TokenInfo, User};
use crate::auth::refresher::refresh;
use crate::auth::Caller;
use crate::records::NewAuditEvent;
use crate::request::{string_schema, whole_number};
use crate::state::AppState;
use crate::store::UserChange as Change;

/// A new account.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1-64 of `A-Z a-z 0-9 . _ @ -`, starting with a letter or digit.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
    )]
    pub name: String,
    /// `viewer`, `operator` or `admin`.
    #[schema(example = "operator", pattern = "^(viewer|operator|admin)$")]
    pub role: String,
    /// Server tags the account is limited to; omit for every server.
    #[schema(min_items = 1)]
    pub servers: Option<Vec<Tag>>,
    /// 12 to 1024 characters, not one character repeated, not the name;
    /// omit for an account used only through a single-sign-on proxy.
    #[schema(format = Password, min_length = 12, max_length = 1024)]
    pub password: Option<String>,
}

/// Changes to an account; only the fields given change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// New role.
    #[schema(pattern = "^(viewer|operator|admin)$")]
    pub role: Option<String>,
    /// New server tags; `[]` is refused, use `all_servers`.
    #[schema(min_items = 1)]
    pub servers: Option<Vec<Tag>>,
    /// `true` lifts the server limit.
    pub all_servers: Option<bool>,
    /// New password (12 to 1024 characters, not one character repeated,
    /// not the name).
    #[schema(format = Password, min_length = 12, max_length = 1024)]
    pub password: Option<String>,
    /// Disable (closes the user's WebSockets at once) or enable.
    pub disabled: Option<bool>,
}

/// A new API token.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// The account the token acts as.
    #[schema(min_length = 1, max_length = 64)]
    pub user: String,
    /// What it is for (at most 100 characters, no control characters).
    #[schema(schema_with = label_schema)]
    pub label: Option<String>,
    /// Lifetime in days (1 to 3650); omit for 90, `0` for never.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 0, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

/// Longest token lifetime over REST, in days (ten years).
pub(crate) const MAX_TOKEN_DAYS: u32 = 3650;

/// `label`: the pattern and length [`accounts::create_token`] checks.
fn label_schema() -> utoipa::openapi::Object {
    string_schema(
        accounts::label_pattern(),
        None,
        Some(accounts::MAX_LABEL_LEN),
        true,
        "What it is for (at most 100 characters, no control characters).",
    )
}

/// A server tag: 1-64 characters, no whitespace, control characters or
/// commas (checked by [`accounts::validate_tags`], whose sets the
/// pattern is made from).
#[derive(Deserialize, Serialize)]
#[serde(transparent)]
pub struct Tag(pub String);

impl utoipa::PartialSchema for Tag {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(
            accounts::tag_pattern(),
            Some(1),
            Some(accounts::MAX_TAG_LEN),
            false,
            "a server tag: 1-64 characters without whitespace, control characters or commas",
        )
        .into()
    }
}

impl utoipa::ToSchema for Tag {}

/// A token just created: the secret is shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// `ppt_<id>_<secret>`; store it now, it cannot be shown again.
    pub token: String,
    /// The token's record.
    pub info: TokenInfo,
}

/// Filter for the token list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenFilter {
    /// Only this account's tokens.
    pub user: Option<String>,
}

fn parse_role(text: &str) -> Result<Role, AppError> {
    text.parse::<Role>()
        .map_err(|e| AppError::with_detail(ErrorCode::Validation, e))
}

async fn hash_password(state: &AppState, name: &str, password: String) -> Result<String, AppError> {
    let password = Secret::new(password);
    password::check_strength(&password, name)?;
    state
        .identity
        .hashing(move || password::hash(&password))
        .await?
        .map_err(AppError::from)
}

async fn changed(
    state: &AppState,
    caller: &Caller,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<(), AppError> {
    let mut event = NewAuditEvent::new(caller.user(), action)
        .by(Some(&caller.user()), caller.remote_addr())
        .on(target);
    event.detail = Some(detail);
    state.journal.audit(event);
    refresh(&state.identity, &state.accounts, &state.broadcast, true).await?;
    Ok(())
}

/// Every account (never a password or its hash).
#[utoipa::path(tag = "users", responses((status = 200, body = Vec<User>)))]
#[get("/api/v1/users")]
pub async fn list_users(state: web::Data<AppState>, _admin: Caller) -> Result<HttpResponse, ApiError> {
    let users = state.accounts.list_users().await?;
    Ok(HttpResponse::Ok().json(users))
}

/// Creates an account.
#[utoipa::path(tag = "users", request_body = NewUser, responses(
    (status = 201, body = User),
    (status = 400, description = "bad name, role, tags or weak password; name taken (10001)", body = super::error::ErrorResponse)))]
#[post("/api/v1/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let NewUser {
        name,
        role,
        servers,
        password,
    } = body.into_inner();
    let role = parse_role(&role)?;
    let servers = servers.map(|t| t.into_iter().map(|t| t.0).collect::<Vec<_>>());
    accounts::validate_name(&name).map_err(AppError::from)?;
    let hash = match password {
        Some(p) => Some(hash_password(&state, &name, p).await?),
        None => None,
    };
    let user = state.accounts.add_user(name.clone(), role, servers, hash).await?;
    changed(
        &state,
        &caller,
        "user.add",
        &name,
        serde_json::json!({"name": name, "role": role.as_str(), "servers": user.servers}),
    )
    .await?;
    Ok(HttpResponse::Created().json(user))
}

/// Changes an account's role, servers, password or disabled flag.
#[utoipa::path(tag = "users", request_body = UserChange,
    params(("name" = String, Path, description = "account name")),
    responses(
        (status = 200, body = User),
        (status = 400, description = "bad value (10001)", body = super::error::ErrorResponse),
        (status = 404, description = "no such account (10004)", body = super::error::ErrorResponse)))]
#[patch("/api/v1/users/{name}")]
pub async fn change_user(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: web::Json<UserChange>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let change = body.into_inner();
    let role = change.role.as_deref().map(parse_role).transpose()?;
    if change.servers.is_some() && change.all_servers == Some(true) {
        return Err(
            AppError::with_detail(ErrorCode::Validation, "give servers or all_servers, not both").into(),
        );
    }
    // An admin cannot lock themself out, and the daemon never loses its
    // last admin: either would need the command line to undo.
    let demoting = role.is_some_and(|r| r != Role::Admin) || change.disabled == Some(true);
    if demoting && name == caller.user() {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            "you cannot disable or demote your own account; another admin can",
        )
        .into());
    }
    let hash = match change.password {
        Some(p) => Some(hash_password(&state, &name, p).await?),
        None => None,
    };
    let target = name.clone();
    let detail = serde_json::json!({
        "name": name,
        "role": role.map(|r| r.as_str()),
        "servers": change.servers,
        "all_servers": change.all_servers,
        "password_changed": hash.is_some(),
        "disabled": change.disabled,
    });
    let servers = match (change.servers, change.all_servers) {
        (Some(tags), _) => Some(Some(tags.into_iter().map(|t| t.0).collect::<Vec<String>>())),
        (None, Some(true)) => Some(None),
        (None, _) => None,
    };
    let user = state
        .accounts
        .change_user(
            name,
            Change {
                role,
                servers,
                password_hash: hash,
                disabled: change.disabled,
            },
        )
        .await?;
    changed(&state, &caller, "user.change", &target, detail).await?;
    Ok(HttpResponse::Ok().json(user))
}

/// Every API token (never a secret).
#[utoipa::path(tag = "users", params(TokenFilter), responses((status = 200, body = Vec<TokenInfo>)))]
#[get("/api/v1/tokens")]
pub async fn list_tokens(
    state: web::Data<AppState>,
    _admin: Caller,
    q: web::Query<TokenFilter>,
) -> Result<HttpResponse, ApiError> {
    let user = q.into_inner().user;
    let tokens = state.accounts.list_tokens(user).await?;
    Ok(HttpResponse::Ok().json(tokens))
}

/// Creates an API token; its secret is in this reply only.
#[utoipa::path(tag = "users", request_body = NewToken, responses(
    (status = 201, body = CreatedToken),
    (status = 400, description = "bad label or lifetime (10001)", body = super::error::ErrorResponse),
    (status = 404, description = "no such account (10004)", body = super::error::ErrorResponse)))]
#[post("/api/v1/tokens")]
pub async fn create_token(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<NewToken>,
) -> Result<HttpResponse, ApiError> {
    let NewToken {
        user,
        label,
        expires_in_days,
    } = body.into_inner();
    let days = expires_in_days.unwrap_or(90);
    if days > MAX_TOKEN_DAYS {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            format!("expires_in_days must be 0 to {MAX_TOKEN_DAYS}"),
        )
        .into());
    }
    let expires = (days > 0).then(|| chrono::Duration::days(i64::from(days)));
    let label = label.unwrap_or_default();
    let (info, secret) = state.accounts.create_token(user, label, expires).await?;
    changed(
        &state,
        &caller,
        "token.create",
        &info.id,
        serde_json::json!({"id": info.id, "user": info.user, "expires_at": info.expires_at}),
    )
    .await?;
    Ok(HttpResponse::Created().json(CreatedToken {
        token: secret.expose().to_owned(),
        info,
    }))
}

/// Revokes an API token; WebSockets opened with it close at once.
#[utoipa::path(tag = "users", params(("id" = String, Path, description = "the token's public id")),
    responses(
        (status = 200, body = TokenInfo),
        (status = 404, description = "no such token (10004)", body = super::error::ErrorResponse)))]
#[delete("/api/v1/tokens/{id}")]
pub async fn revoke_token(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let info = state.accounts.revoke_token(id.clone()).await?;
    changed(
        &state,
        &caller,
        "token.revoke",
        &id,
        serde_json::json!({"id": id, "user": info.user}),
    )
    .await?;
    Ok(HttpResponse::Ok().json(info))
}
