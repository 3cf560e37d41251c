//! Workflows over REST: the definitions, a plan, starting a run (which
//! answers with its id and streams nothing), confirming its pause,
//! cancelling it, and the run history (docs/workflows.md).

use std::collections::BTreeMap;

use actix_web::{get, post, web, HttpResponse};
use pinkpage_actors::workflow::definition::ParamKind;
use pinkpage_actors::workflow::plan::PlannedStep;
use pinkpage_actors::{AppError, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;
use crate::auth::Caller;
use crate::records::workflow::WorkflowRunsQuery;
use crate::records::{WorkflowRun, WorkflowRunDetail};
use crate::request::ServerRef;
use crate::state::AppState;
use crate::workflows::hub::{CancelRun, ConfirmRun, StartRun};
use crate::workflows::prepare;
use crate::workflows::registry::Asker;

/// A parameter of a workflow.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ParamInfo {
    /// Its name.
    pub name: String,
    /// `string`, `int` or `enum`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// What it is.
    pub description: String,
    /// Its default; null when it is required.
    pub default: Option<String>,
    /// Whether a value must be sent.
    pub required: bool,
    /// For `string`: the pattern the whole value must match.
    pub pattern: Option<String>,
    /// For `int`: the smallest value.
    pub min: Option<i64>,
    /// For `int`: the largest value.
    pub max: Option<i64>,
    /// For `enum`: the allowed values.
    pub values: Option<Vec<String>>,
}

/// A step of a workflow, as defined (templates unresolved).
#[derive(Serialize, utoipa::ToSchema)]
pub struct StepInfo {
    /// Its position.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// `command`, `transfer`, `batch` or `pause`.
    pub kind: &'static str,
    /// Whether the run goes on when it fails.
    pub continue_on_error: bool,
}

/// A configured workflow.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkflowInfo {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its parameters.
    pub params: Vec<ParamInfo>,
    /// Its steps.
    pub steps: Vec<StepInfo>,
}

/// Values for a plan or a run.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// Parameter values by name: strings, or whole numbers for `int`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: BTreeMap<String, Value>,
}

/// What a run would do.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PlanBody {
    /// The workflow.
    pub workflow: String,
    /// The values, defaults filled in.
    pub params: BTreeMap<String, String>,
    /// The resolved steps (commands with values quoted in).
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<PlannedStep>,
}

/// A run was started or told something.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RunAccepted {
    /// The run's id.
    pub run_id: String,
    /// For a confirmation: the pause's step.
    pub step: Option<usize>,
}

/// Filters and paging of the history.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct RunsQuery {
    /// At most this many (1-1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Skip this many of the newest (default 0).
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295.0)]
    pub offset: Option<u32>,
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs in flight (`running` or `paused`): what a console that
    /// was reloaded comes back to.
    pub in_flight: Option<bool>,
}

fn asker(caller: &Caller) -> Result<Asker, AppError> {
    Ok(Asker {
        principal: caller.principal()?.clone(),
        actor: "rest".to_owned(),
        remote: caller.remote_addr(),
    })
}

/// The configured workflows.
#[utoipa::path(tag = "workflows", responses((status = 200, body = [WorkflowInfo])))]
#[get("/api/v1/workflows")]
pub async fn list_workflows(state: web::Data<AppState>) -> HttpResponse {
    let list: Vec<WorkflowInfo> = state
        .settings()
        .workflows
        .values()
        .map(|w| WorkflowInfo {
            name: w.name.clone(),
            description: w.description.clone(),
            params: w
                .params
                .iter()
                .map(|p| {
                    let (pattern, min, max, values) = match &p.kind {
                        ParamKind::String { pattern, .. } => (pattern.clone(), None, None, None),
                        ParamKind::Int { min, max } => (None, *min, *max, None),
                        ParamKind::Enum { values } => (None, None, None, Some(values.clone())),
                    };
                    ParamInfo {
                        name: p.name.clone(),
                        kind: p.kind.as_str(),
                        description: p.description.clone(),
                        default: p.default.clone(),
                        required: p.default.is_none(),
                        pattern,
                        min,
                        max,
                        values,
                    }
                })
                .collect(),
            steps: w
                .steps
                .iter()
                .enumerate()
                .map(|(index, s)| StepInfo {
                    index,
                    name: s.name.clone(),
                    kind: s.kind.as_str(),
                    continue_on_error: s.continue_on_error,
                })
                .collect(),
        })
        .collect();
    HttpResponse::Ok().json(list)
}

/// What a run with these values would do; runs nothing.
#[utoipa::path(tag = "workflows",
    params(("name" = String, Path, description = "The workflow")),
    request_body = RunBody,
    responses(
        (status = 200, body = PlanBody),
        (status = 400, description = "a value fails its type (10001)", body = super::error::ErrorResponse),
        (status = 404, description = "no such workflow (23002)", body = super::error::ErrorResponse)))]
#[post("/api/v1/workflows/{name}/plan")]
pub async fn plan_workflow(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: web::Json<RunBody>,
) -> Result<HttpResponse, ApiError> {
    let rules = state.policy_check(caller.principal()?, "rest", caller.remote_addr());
    let p = prepare(
        &state.settings(),
        caller.principal()?,
        &name,
        &body.params,
        &rules,
    )?;
    Ok(HttpResponse::Ok().json(PlanBody {
        workflow: p.workflow.name.clone(),
        params: p.bound.0,
        steps: p.steps,
    }))
}

/// Starts a run under the session lock; answers with its id at once
/// (follow it with `GET /api/v1/workflows/runs/{run_id}`).
#[utoipa::path(tag = "workflows",
    params(("name" = String, Path, description = "The workflow")),
    request_body = RunBody,
    responses(
        (status = 202, body = RunAccepted),
        (status = 400, description = "a value fails its type (10001)", body = super::error::ErrorResponse),
        (status = 404, description = "no such workflow (23002)", body = super::error::ErrorResponse),
        (status = 409, description = "someone holds the session lock (50004)", body = super::error::ErrorResponse)))]
#[post("/api/v1/workflows/{name}/runs")]
pub async fn start_run(
    state: web::Data<AppState>,
    caller: Caller,
    name: web::Path<String>,
    body: web::Json<RunBody>,
) -> Result<HttpResponse, ApiError> {
    let rules = state.policy_check(caller.principal()?, "rest", caller.remote_addr());
    let prepared = prepare(
        &state.settings(),
        caller.principal()?,
        &name,
        &body.params,
        &rules,
    )?;
    let msg = StartRun {
        prepared,
        asker: asker(&caller)?,
        watcher: None,
    };
    let run_id = state.workflows.send(msg).await.map_err(mailbox)??;
    Ok(HttpResponse::Accepted().json(RunAccepted {
        run_id: run_id.to_string(),
        step: None,
    }))
}

fn mailbox(e: actix::MailboxError) -> AppError {
    AppError::with_detail(ErrorCode::Internal, format!("workflow hub unavailable: {e}"))
}

/// Answers the pause a run waits at.
#[utoipa::path(tag = "workflows",
    params(("run_id" = String, Path, description = "The run")),
    responses(
        (status = 200, body = RunAccepted),
        (status = 404, description = "no such run in flight (10004)", body = super::error::ErrorResponse),
        (status = 409, description = "the run is not waiting at a pause (50015)", body = super::error::ErrorResponse)))]
#[post("/api/v1/workflows/runs/{run_id}/confirm")]
pub async fn confirm_run(
    state: web::Data<AppState>,
    caller: Caller,
    run_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let run_id = run_id.into_inner();
    let msg = ConfirmRun {
        run_id: run_id.clone(),
        asker: asker(&caller)?,
        watcher: None,
    };
    let step = state.workflows.send(msg).await.map_err(mailbox)??;
    Ok(HttpResponse::Ok().json(RunAccepted {
        run_id,
        step: Some(step),
    }))
}

/// Cancels a run: its current step is stopped (the remote process dies, a
/// transfer cleans up) and the run ends `cancelled`.
#[utoipa::path(tag = "workflows",
    params(("run_id" = String, Path, description = "The run")),
    responses(
        (status = 202, body = RunAccepted),
        (status = 404, description = "no such run in flight (10004)", body = super::error::ErrorResponse)))]
#[post("/api/v1/workflows/runs/{run_id}/cancel")]
pub async fn cancel_run(
    state: web::Data<AppState>,
    caller: Caller,
    run_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let run_id = run_id.into_inner();
    let msg = CancelRun {
        run_id: run_id.clone(),
        asker: asker(&caller)?,
        watcher: None,
    };
    state.workflows.send(msg).await.map_err(mailbox)??;
    Ok(HttpResponse::Accepted().json(RunAccepted { run_id, step: None }))
}

/// Workflow runs, newest first, without their steps: those on servers the
/// caller may use (all of them for administrators).
#[utoipa::path(tag = "workflows", params(RunsQuery), responses(
    (status = 200, body = [WorkflowRun]),
    (status = 400, body = super::error::ErrorResponse)))]
#[get("/api/v1/workflows/runs")]
pub async fn list_runs(
    state: web::Data<AppState>,
    caller: Caller,
    q: web::Query<RunsQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = super::paging::page_limit(q.limit, 50)?;
    let visible = ServerRef::visible_to(&state.settings(), caller.principal()?);
    let q = q.into_inner();
    let runs = state
        .stores
        .workflows
        .list(WorkflowRunsQuery {
            limit,
            offset: q.offset.unwrap_or(0),
            workflow: q.workflow,
            visible,
            in_flight: q.in_flight.unwrap_or(false),
        })
        .await?;
    Ok(HttpResponse::Ok().json(runs))
}

/// One run with its steps (status, exit status, duration, the last 64 KiB
/// of each step's output).
#[utoipa::path(tag = "workflows",
    params(("run_id" = String, Path, description = "The run id from `workflow_started`")),
    responses(
        (status = 200, body = WorkflowRunDetail),
        (status = 404, description = "no such run (10004)", body = super::error::ErrorResponse)))]
#[get("/api/v1/workflows/runs/{run_id}")]
pub async fn get_run(
    state: web::Data<AppState>,
    caller: Caller,
    run_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let run_id = run_id.into_inner();
    let visible = ServerRef::visible_to(&state.settings(), caller.principal()?);
    match state.stores.workflows.get(run_id.clone(), visible).await? {
        Some(run) => Ok(HttpResponse::Ok().json(run)),
        None => Err(AppError::with_detail(ErrorCode::NotFound, format!("no workflow run '{run_id}'")).into()),
    }
}
