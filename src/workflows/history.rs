//! A run's records: its history rows (`WorkflowWrite`s, in the order things
//! happened) and audit rows, made from what the run reports. Pure: the hub
//! records what these return through the journal.

use pinkpage_actors::workflow::plan::{Action, PlannedStep};
use pinkpage_actors::workflow::run::{RunOutcome, StepOutcome, StepReport};
use pinkpage_actors::AppError;

use super::registry::{Asker, Entry, Params};
use crate::records::workflow::{RunState, StepState};
use crate::records::{NewAuditEvent, NewWorkflowRun, Outcome, WorkflowWrite};

/// The audit outcome of a run or step that ended in `state`.
fn outcome_of(state: &str) -> Outcome {
    match state {
        "failed" => Outcome::Failed,
        "cancelled" | "skipped" => Outcome::Cancelled,
        "interrupted" => Outcome::Interrupted,
        _ => Outcome::Ok,
    }
}

/// The run's first rows (the run, `running`, and every step `pending`) and
/// its `workflow.start` audit row.
pub fn started(entry: &Entry, params: &Params, under_callers_lock: bool) -> (WorkflowWrite, NewAuditEvent) {
    let asker = &entry.started_by;
    let write = WorkflowWrite::Create(NewWorkflowRun {
        run_id: entry.run_id.to_string(),
        at: crate::records::now(),
        workflow: entry.workflow.clone(),
        actor: asker.actor.clone(),
        user: asker.principal.user.to_string(),
        remote_addr: asker.remote.clone(),
        params: params.clone(),
        steps: entry.steps.to_vec(),
    });
    let mut event = asker.audit("workflow.start").on(entry.run_id.to_string());
    event.detail = Some(serde_json::json!({
        "run_id": entry.run_id,
        "workflow": entry.workflow,
        "params": params,
        "under_callers_lock": under_callers_lock,
    }));
    (write, event)
}

/// Step `step` started.
pub fn step_started(entry: &Entry, step: usize) -> WorkflowWrite {
    WorkflowWrite::StepStarted {
        run_id: entry.run_id.to_string(),
        step,
        at: crate::records::now(),
    }
}

/// The run waits at pause `step`.
pub fn paused(entry: &Entry, step: usize) -> WorkflowWrite {
    WorkflowWrite::Paused {
        run_id: entry.run_id.to_string(),
        step,
    }
}

/// A step's end: its row and its `workflow.step` audit row.
pub fn step_finished(entry: &Entry, report: &StepReport) -> (WorkflowWrite, NewAuditEvent) {
    let step = report.step;
    let error = report.error.as_ref().map(AppError::body);
    let duration_ms = report.duration.as_millis() as u64;
    let state = StepState::from(report.status);
    let confirmed_by = match &report.outcome {
        StepOutcome::Confirmed { by } => Some(by.to_string()),
        _ => None,
    };
    let write = WorkflowWrite::StepFinished {
        run_id: entry.run_id.to_string(),
        step,
        state,
        duration_ms,
        exit_status: report.exit_status,
        error: error.clone(),
        output_tail: report.output_tail.clone(),
        confirmed_by: confirmed_by.clone(),
    };
    let starter = &entry.started_by;
    let mut event = NewAuditEvent::new(format!("workflow:{}", entry.run_id), "workflow.step")
        .on(entry.run_id.to_string())
        .by(Some(&starter.principal.user), starter.remote.clone());
    event.ended(outcome_of(state.as_str()), error.as_ref().map(|e| e.code));
    let mut detail = serde_json::json!({
        "run_id": entry.run_id,
        "workflow": entry.workflow,
        "step": step,
        "status": state.as_str(),
        "duration_ms": duration_ms,
        "error": error.map(|e| e.code),
    });
    if let Some(p) = entry.steps.get(step) {
        describe_step(p, &mut event, &mut detail, confirmed_by);
    }
    event.exit_status = report.exit_status.map(i64::from);
    event.detail = Some(detail);
    (write, event)
}

/// What a step's audit row names: its server and command, its transfer,
/// its batch, or who confirmed its pause.
fn describe_step(
    p: &PlannedStep,
    event: &mut NewAuditEvent,
    detail: &mut serde_json::Value,
    confirmed_by: Option<String>,
) {
    detail["name"] = p.name.clone().into();
    detail["kind"] = p.action.kind().into();
    match &p.action {
        Action::Command { server, command, .. } => {
            event.server = Some(server.clone());
            event.command = Some(command.clone());
        }
        Action::Transfer {
            transfer,
            source_server,
            ..
        } => {
            event.server = Some(source_server.clone());
            detail["transfer"] = transfer.clone().into();
        }
        Action::Batch {
            servers, commands, ..
        } => {
            event.command = Some(commands.join("\n"));
            detail["servers"] = servers.clone().into();
        }
        Action::Pause { .. } => {
            detail["confirmed_by"] = confirmed_by.into();
        }
    }
}

/// The run's end: its row and its `workflow.end` audit row.
pub fn finished(entry: &Entry, outcome: &RunOutcome) -> (WorkflowWrite, NewAuditEvent) {
    let error = outcome.error.as_ref().map(AppError::body);
    let state = RunState::from(outcome.status);
    let write = WorkflowWrite::Finished {
        run_id: entry.run_id.to_string(),
        state,
        error: error.clone(),
        at: crate::records::now(),
    };
    let starter = &entry.started_by;
    let mut event = NewAuditEvent::new(format!("workflow:{}", entry.run_id), "workflow.end")
        .on(entry.run_id.to_string())
        .by(Some(&starter.principal.user), starter.remote.clone());
    event.ended(outcome_of(state.as_str()), error.as_ref().map(|e| e.code));
    event.detail = Some(serde_json::json!({
        "run_id": entry.run_id,
        "workflow": entry.workflow,
        "status": state.as_str(),
        "stopped_at": outcome.stopped_at,
        "error": error.map(|e| e.code),
    }));
    (write, event)
}

/// A confirmation's audit row.
pub fn confirmed(asker: &Asker, run_id: &str, step: usize) -> NewAuditEvent {
    let mut event = asker.audit("workflow.confirm").on(run_id);
    event.detail = Some(serde_json::json!({"run_id": run_id, "step": step}));
    event
}

/// A cancel's audit row: by `asker`, or by the daemon (`reason` says why).
pub fn cancelled(entry: &Entry, asker: Option<&Asker>, reason: Option<&str>) -> NewAuditEvent {
    let mut event = match asker {
        Some(a) => a.audit("workflow.cancel"),
        None => NewAuditEvent::new("system", "workflow.cancel"),
    }
    .on(entry.run_id.to_string());
    let mut detail = serde_json::json!({"run_id": entry.run_id, "workflow": entry.workflow});
    if let Some(reason) = reason {
        detail["reason"] = reason.into();
    }
    event.detail = Some(detail);
    event
}
