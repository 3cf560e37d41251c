//! Everything decided before a run starts (or a plan is shown), in order:
//! the workflow exists (23002), the values fit their types (10001), every
//! server of the plan is in the caller's scope (10003), no command of the
//! plan is refused by a command rule (55000; a `review` rule holds its
//! step when the step starts, and every command is judged again then).

use std::collections::BTreeMap;
use std::sync::Arc;

use pinkpage_actors::access::Principal;
use pinkpage_actors::server::{ServerSpec, TransferSpec};
use pinkpage_actors::workflow::definition::{Arg, Bound, Workflow};
use pinkpage_actors::workflow::plan::{plan, Action, PlannedStep};
use pinkpage_actors::{AppError, ErrorCode};
use serde_json::Value;

use crate::request::ServerRef;
use crate::reviews::check::PolicyCheck;
use crate::settings::Settings;

/// A workflow ready to run.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The definition.
    pub workflow: Arc<Workflow>,
    /// The values, checked, defaults filled in.
    pub bound: Bound,
    /// The resolved steps.
    pub steps: Vec<PlannedStep>,
    /// Every server the steps act on, in the caller's scope.
    pub servers: BTreeMap<String, Arc<ServerSpec>>,
    /// Every transfer the steps name.
    pub transfers: BTreeMap<String, Arc<TransferSpec>>,
}

/// Prepares workflow `name` with `params` for `who`. See the module docs.
pub fn prepare(
    settings: &Settings,
    who: &Principal,
    name: &str,
    params: &BTreeMap<String, Value>,
    rules: &PolicyCheck,
) -> Result<Prepared, AppError> {
    let workflow = settings.workflows.get(name).cloned().ok_or_else(|| {
        AppError::with_detail(ErrorCode::UnknownWorkflow, format!("no workflow named '{name}'"))
    })?;
    let mut args = BTreeMap::new();
    for (key, value) in params {
        let arg = match value {
            Value::String(s) => Arg::Text(s.clone()),
            Value::Number(n) if n.as_i64().is_some() => Arg::Int(n.as_i64().unwrap_or_default()),
            _ => {
                return Err(AppError::with_detail(
                    ErrorCode::Validation,
                    format!("'{key}' must be a string or a whole number"),
                ))
            }
        };
        args.insert(key.clone(), arg);
    }
    let bound = workflow.bind(&args)?;
    let steps = plan(&workflow, &bound, &settings.transfers);
    let mut servers = BTreeMap::new();
    let mut transfers = BTreeMap::new();
    for step in &steps {
        for server in step.action.servers() {
            if !servers.contains_key(server) {
                let spec = ServerRef::resolve(settings, who, server)?.into_spec();
                servers.insert(server.to_owned(), spec);
            }
        }
        match &step.action {
            Action::Command { server, command, .. } => {
                if let Some(spec) = servers.get(server) {
                    rules.refuse_denied(spec, command)?;
                }
            }
            Action::Batch {
                servers: names,
                commands,
                ..
            } => {
                for name in names {
                    if let Some(spec) = servers.get(name) {
                        for command in commands {
                            rules.refuse_denied(spec, command)?;
                        }
                    }
                }
            }
            _ => {}
        }
        if let Action::Transfer { transfer, .. } = &step.action {
            if let Some(spec) = settings.transfers.get(transfer) {
                transfers.insert(transfer.clone(), spec.clone());
            }
        }
    }
    Ok(Prepared {
        workflow,
        bound,
        steps,
        servers,
        transfers,
    })
}
