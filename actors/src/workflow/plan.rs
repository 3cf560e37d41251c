//! A plan: a workflow's steps with its parameters bound, exactly what a run
//! will do. `workflow_plan` shows it without running anything; a run runs
//! it, so what the operator reviewed is what executes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::definition::{Bound, StepKind, Workflow};
use super::template::Render;
use crate::server::TransferSpec;

/// One resolved step.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlannedStep {
    /// Its position (0-based).
    pub index: usize,
    /// Its name.
    pub name: String,
    /// Whether the run goes on when it fails.
    pub continue_on_error: bool,
    /// What it does, resolved.
    #[serde(flatten)]
    pub action: Action,
}

/// What a resolved step does.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// A command on a PTY.
    Command {
        /// The server.
        server: String,
        /// The command line, parameters quoted in.
        command: String,
        /// Success when this text appears.
        stop_phrase: Option<String>,
        /// Failure after this many seconds.
        timeout_s: f64,
        /// Exit statuses that count as success.
        expect_exit: Vec<u32>,
    },
    /// A named transfer.
    Transfer {
        /// The transfer's name.
        transfer: String,
        /// Where the files come from.
        source_server: String,
        /// Which files.
        source_glob: String,
        /// Where they go.
        destination_server: String,
        /// Into which directory.
        destination_dir: String,
    },
    /// Commands without a PTY on several servers.
    Batch {
        /// The servers, in parallel.
        servers: Vec<String>,
        /// The command lines, parameters quoted in.
        commands: Vec<String>,
        /// Extra attempts per failed command.
        retries: u32,
        /// Seconds between attempts.
        retry_delay_s: f64,
        /// Whether a failure ends a server's commands.
        stop_on_error: bool,
        /// Per-attempt timeout, seconds.
        timeout_s: f64,
    },
    /// Wait for a confirmation.
    Pause {
        /// What to check.
        message: String,
        /// Seconds before the run is cancelled.
        timeout_s: f64,
    },
}

/// Every server a plan's steps act on, each once, sorted: what a run is
/// judged on when access changes, and shown to whom.
pub fn servers_of(steps: &[PlannedStep]) -> Vec<&str> {
    let mut all: Vec<&str> = steps.iter().flat_map(|s| s.action.servers()).collect();
    all.sort_unstable();
    all.dedup();
    all
}

impl Action {
    /// Every server the step acts on.
    pub fn servers(&self) -> Vec<&str> {
        match self {
            Action::Command { server, .. } => vec![server],
            Action::Transfer {
                source_server,
                destination_server,
                ..
            } => vec![source_server, destination_server],
            Action::Batch { servers, .. } => servers.iter().map(String::as_str).collect(),
            Action::Pause { .. } => Vec::new(),
        }
    }

    /// The kind's wire name.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Command { .. } => "command",
            Action::Transfer { .. } => "transfer",
            Action::Batch { .. } => "batch",
            Action::Pause { .. } => "pause",
        }
    }
}

/// The steps of `workflow` with `bound` values. `transfers` must hold every
/// transfer a step names (start-up validation made sure of that; a missing
/// one plans as a transfer with empty ends, which then fails to start).
pub fn plan(
    workflow: &Workflow,
    bound: &Bound,
    transfers: &BTreeMap<String, Arc<TransferSpec>>,
) -> Vec<PlannedStep> {
    let value = |name: &str| bound.get(name);
    workflow
        .steps
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let action = match &step.kind {
                StepKind::Command {
                    server,
                    command,
                    stop_phrase,
                    timeout,
                    expect_exit,
                } => Action::Command {
                    server: server.clone(),
                    command: command.render(Render::Shell, &value),
                    stop_phrase: stop_phrase.clone(),
                    timeout_s: timeout.as_secs_f64(),
                    expect_exit: expect_exit.clone(),
                },
                StepKind::Transfer { transfer } => {
                    let spec = transfers.get(transfer);
                    let field =
                        |f: fn(&TransferSpec) -> &String| spec.map(|s| f(s).clone()).unwrap_or_default();
                    Action::Transfer {
                        transfer: transfer.clone(),
                        source_server: field(|s| &s.source_server),
                        source_glob: field(|s| &s.source_glob),
                        destination_server: field(|s| &s.destination_server),
                        destination_dir: field(|s| &s.destination_dir),
                    }
                }
                StepKind::Batch {
                    servers,
                    commands,
                    retries,
                    retry_delay,
                    stop_on_error,
                    timeout,
                } => Action::Batch {
                    servers: servers.clone(),
                    commands: commands.iter().map(|c| c.render(Render::Shell, &value)).collect(),
                    retries: *retries,
                    retry_delay_s: retry_delay.as_secs_f64(),
                    stop_on_error: *stop_on_error,
                    timeout_s: timeout.as_secs_f64(),
                },
                StepKind::Pause { message, timeout } => Action::Pause {
                    message: message.render(Render::Plain, &value),
                    timeout_s: timeout.as_secs_f64(),
                },
            };
            PlannedStep {
                index,
                name: step.name.clone(),
                continue_on_error: step.continue_on_error,
                action,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::workflow::definition::{Param, ParamKind, Step};
    use crate::workflow::template::Template;

    #[test]
    fn a_plan_quotes_parameters_into_commands_and_names_transfer_ends() {
        let declared = |n: &str| n == "day";
        let wf = Workflow {
            name: "w".into(),
            description: String::new(),
            params: vec![Param {
                name: "day".into(),
                description: String::new(),
                kind: ParamKind::string(None).unwrap(),
                default: None,
            }],
            steps: vec![
                Step {
                    name: "unload".into(),
                    continue_on_error: false,
                    kind: StepKind::Command {
                        server: "a".into(),
                        command: Template::parse("unload {{day}}", &declared).unwrap(),
                        stop_phrase: None,
                        timeout: Duration::from_secs(60),
                        expect_exit: vec![0],
                    },
                },
                Step {
                    name: "copy".into(),
                    continue_on_error: false,
                    kind: StepKind::Transfer { transfer: "t".into() },
                },
                Step {
                    name: "check".into(),
                    continue_on_error: true,
                    kind: StepKind::Pause {
                        message: Template::parse("rows of {{day}}?", &declared).unwrap(),
                        timeout: Duration::from_secs(5),
                    },
                },
            ],
        };
        let transfers = BTreeMap::from([(
            "t".to_owned(),
            Arc::new(TransferSpec {
                name: "t".into(),
                source_server: "a".into(),
                source_glob: "/out/*.dat".into(),
                destination_server: "b".into(),
                destination_dir: "/in/".into(),
                verify_sha256: false,
            }),
        )]);
        let bound = Bound(BTreeMap::from([("day".to_owned(), "1; reboot".to_owned())]));
        let steps = plan(&wf, &bound, &transfers);
        assert_eq!(
            steps[0].action,
            Action::Command {
                server: "a".into(),
                command: "unload '1; reboot'".into(),
                stop_phrase: None,
                timeout_s: 60.0,
                expect_exit: vec![0],
            }
        );
        assert_eq!(steps[1].action.servers(), ["a", "b"]);
        assert_eq!(
            steps[2].action,
            Action::Pause {
                message: "rows of 1; reboot?".into(),
                timeout_s: 5.0
            }
        );
        assert!(steps[2].continue_on_error);
    }
}
