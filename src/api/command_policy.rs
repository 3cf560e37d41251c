//! Command policy over REST: the rules (`GET /api/v1/command-rules`, shown
//! in full to anyone signed in, so a refusal explains itself), the review
//! queue (`GET /api/v1/command-reviews`: what the caller may answer and
//! their own commands waiting) and an answer
//! (`POST /api/v1/command-reviews/{held_id}`). Who may answer is decided
//! by `crate::reviews::ReviewDesk::decide`, the same for `command_review`
//! on `/ws/v1/stub`.

use actix_web::{get, post, web, HttpResponse};
use pinkpage_actors::policy::rules::{Matcher, RuleAction};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::auth::Caller;
use crate::reviews::{Decision, HeldCommand};
use crate::state::AppState;

/// One rule, as the servers file has it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RuleListing {
    /// Its name (what refusals and holds name).
    pub name: String,
    /// Whole shell words it matches anywhere in a command (empty when it
    /// matches a regex).
    pub words: Vec<String>,
    /// The regular expression it searches a command for, if it has one.
    pub regex: Option<String>,
    /// Server tags it applies to (empty: every server).
    pub tags: Vec<String>,
    /// Roles it applies to (empty: every role).
    pub roles: Vec<String>,
    /// `allow`, `deny` or `review`.
    pub action: &'static str,
    /// Why it exists.
    pub message: String,
    /// Who answers its reviews (empty: every admin).
    pub approvers: Vec<String>,
}

/// The rules in the order they are tried, and the default action.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RulesBody {
    /// First match wins.
    pub rules: Vec<RuleListing>,
    /// What happens to a command no rule matches.
    pub default: &'static str,
    /// How long a held command waits for an answer, in seconds.
    pub review_timeout_s: f64,
}

/// The command rules, in full.
#[utoipa::path(tag = "command policy", responses(
    (status = 200, body = RulesBody),
    (status = 401, body = super::error::ErrorResponse)))]
#[get("/api/v1/command-rules")]
pub async fn list_rules(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.principal()?;
    let policy = &state.settings().command_policy;
    let rules = policy
        .rules()
        .iter()
        .map(|rule| {
            let (words, regex) = match &rule.matcher {
                Matcher::Words(phrases) => (phrases.iter().map(|(p, _)| p.clone()).collect(), None),
                Matcher::Regex(re) => (Vec::new(), Some(re.as_str().to_owned())),
            };
            RuleListing {
                name: rule.name.clone(),
                words,
                regex,
                tags: rule.tags.clone(),
                roles: rule.roles.iter().map(|r| r.as_str().to_owned()).collect(),
                action: rule.action.as_str(),
                message: rule.message.clone(),
                approvers: rule.approvers.clone(),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(RulesBody {
        rules,
        default: RuleAction::as_str(policy.default_action()),
        review_timeout_s: state.settings().review_timeout.as_secs_f64(),
    }))
}

/// Commands waiting for review that the caller may answer, and the
/// caller's own, oldest first.
#[utoipa::path(tag = "command policy", responses(
    (status = 200, body = [HeldCommand]),
    (status = 401, body = super::error::ErrorResponse)))]
#[get("/api/v1/command-reviews")]
pub async fn list_reviews(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let who = caller.principal()?;
    Ok(HttpResponse::Ok().json(state.reviews.visible_to(who)))
}

/// An approver's answer.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// `approve` or `reject`.
    pub decision: Decision,
    /// Why (kept in the audit row; at most 1000 characters are kept).
    #[serde(default)]
    pub comment: String,
}

/// Answers a held command: approved, it runs; rejected, its requester gets
/// 55001. Audited with both names.
#[utoipa::path(tag = "command policy",
    params(("held_id" = String, Path, description = "The hold")),
    request_body = ReviewBody,
    responses(
        (status = 200, description = "answered; the hold as it was", body = HeldCommand),
        (status = 400, description = "bad body (10001)", body = super::error::ErrorResponse),
        (status = 401, body = super::error::ErrorResponse),
        (status = 403, description = "not an approver of its rule (55005), or the caller's own command (55003)", body = super::error::ErrorResponse),
        (status = 404, description = "no such hold: answered, timed out or withdrawn (55004)", body = super::error::ErrorResponse)))]
#[post("/api/v1/command-reviews/{held_id}")]
pub async fn answer_review(
    state: web::Data<AppState>,
    caller: Caller,
    held_id: web::Path<String>,
    body: web::Json<ReviewBody>,
) -> Result<HttpResponse, ApiError> {
    let who = caller.principal()?;
    let held = state
        .reviews
        .decide(&held_id, who, body.decision, &body.comment)?;
    Ok(HttpResponse::Ok().json(held))
}
