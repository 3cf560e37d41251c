//! Starting a step's task, and judging its end: the seam between a run and
//! what actually touches servers.
//!
//! [`StepLauncher`] starts the task of one step, reporting to the run's
//! [`StepClients`]; [`SshSteps`] is the real one (a command step is an
//! `SshShellActor`, a transfer step a `TransferActor`, a batch step a
//! `BatchRunActor`). Unit tests of the run put a scripted launcher in its
//! place (`super::scripted`), as BMX4's tests do with `batch::scripted`.
//! The judges turn each kind of task's end into a step's status.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Recipient};

use super::outcome::StepStatus;
use crate::batch::link::SshLinkFactory;
use crate::batch::plan::{BatchPlan, BatchSummary, RetryPolicy};
use crate::batch::run::{BatchMessage, BatchRunActor};
use crate::error::{AppError, ErrorCode};
use crate::files::temp_files::TempFiles;
use crate::pty::book::{PtyKind, PtyTag};
use crate::server::{ServerSpec, TransferSpec};
use crate::ssh::{ExecLimits, PtyRequest, SshOptions};
use crate::task::{Pending, TaskHandle, TaskId};
use crate::terminal::shell::{Completion, FinishReason, ShellMessage, ShellRequest, SshShellActor};
use crate::transfer::{TransferActor, TransferGate, TransferMessage, TransferOutcome, TransferRequest};
use crate::workflow::plan::Action;

/// Where a step's task reports: the run, one recipient per kind of task.
#[derive(Clone)]
pub struct StepClients {
    /// A command step's shell.
    pub shell: Recipient<ShellMessage>,
    /// A transfer step's transfer.
    pub transfer: Recipient<TransferMessage>,
    /// A batch step's run.
    pub batch: Recipient<BatchMessage>,
}

/// Starts the task of a step (never a pause: the run waits for those
/// itself).
pub trait StepLauncher {
    /// Starts `action`, the run's step `step`, as task `task_id`,
    /// reporting to `to`; its handle, or why it could not start (an
    /// unknown server, a busy transfer, a recording that cannot start).
    fn launch(
        &self,
        step: usize,
        action: &Action,
        task_id: TaskId,
        to: &StepClients,
    ) -> Result<TaskHandle, AppError>;
}

/// The real launcher: everything a run's steps need to reach servers.
pub struct SshSteps {
    /// The run's id, given to a batch step's run.
    pub run_id: String,
    /// Every server the plan acts on, already checked against the caller's
    /// scope.
    pub servers: BTreeMap<String, Arc<ServerSpec>>,
    /// Every transfer the plan names.
    pub transfers: BTreeMap<String, Arc<TransferSpec>>,
    /// How to connect.
    pub ssh: Arc<SshOptions>,
    /// Where transfer steps record their temporary files.
    pub temp_files: TempFiles,
    /// One transfer at a time in the daemon (50009).
    pub gate: TransferGate,
    /// Output flush interval of command steps.
    pub throttle: Duration,
    /// Bytes kept of each stream of a batch command.
    pub batch_output_cap: usize,
    /// Where command steps' PTYs are listed, and the run's user.
    pub ptys: Option<(crate::pty::book::PtyBook, Arc<str>)>,
    /// The command rules, asked again as each command step starts (and
    /// for each command of a batch step at its turn).
    pub checks: crate::policy::Checks,
}

impl SshSteps {
    fn server(&self, name: &str) -> Result<Arc<ServerSpec>, AppError> {
        self.servers.get(name).cloned().ok_or_else(|| {
            AppError::with_detail(ErrorCode::UnknownServer, format!("no server named '{name}'"))
        })
    }
}

impl StepLauncher for SshSteps {
    fn launch(
        &self,
        step: usize,
        action: &Action,
        task_id: TaskId,
        to: &StepClients,
    ) -> Result<TaskHandle, AppError> {
        Ok(match action {
            Action::Command {
                server,
                command,
                stop_phrase,
                timeout_s,
                ..
            } => {
                let spec = self.server(server)?;
                // refused: the step fails unrun; held: it waits in its shell
                let held = self.checks.check(&spec, command)?;
                let pty = PtyRequest {
                    term: "xterm".to_owned(),
                    cols: 200,
                    rows: 50,
                };
                let listed = match &self.ptys {
                    Some((book, user)) => {
                        let mut tag = PtyTag::new(book, PtyKind::WorkflowStep, user.clone(), server, command);
                        tag.info.run_id = crate::ids::RunId::parse(&self.run_id);
                        tag.info.step = Some(step);
                        Some(tag.recorded(&spec, &pty)?)
                    }
                    None => None,
                };
                let request = ShellRequest {
                    server: spec,
                    ssh: self.ssh.clone(),
                    command: command.clone(),
                    stop_phrase: stop_phrase.clone(),
                    timeout: Some(Duration::from_secs_f64(*timeout_s)),
                    throttle: self.throttle,
                    pty,
                    listed,
                    typed_lines: None,
                };
                let (reporter, handle) = Pending::new(task_id, to.shell.clone()).split();
                let shell = SshShellActor::new(request, reporter);
                let shell = match held {
                    Some(gate) => shell.gated(gate),
                    None => shell,
                };
                handle(shell.start().recipient())
            }
            Action::Transfer { transfer, .. } => {
                let spec = self.transfers.get(transfer).cloned().ok_or_else(|| {
                    AppError::with_detail(
                        ErrorCode::UnknownTransfer,
                        format!("no transfer named '{transfer}'"),
                    )
                })?;
                let request = TransferRequest {
                    source: self.server(&spec.source_server)?,
                    destination: self.server(&spec.destination_server)?,
                    permit: self.gate.try_acquire(transfer)?,
                    spec,
                    ssh: self.ssh.clone(),
                    temp_files: self.temp_files.clone(),
                };
                let (reporter, handle) = Pending::new(task_id, to.transfer.clone()).split();
                handle(TransferActor::spawn(request, reporter).recipient())
            }
            Action::Batch {
                servers,
                commands,
                retries,
                retry_delay_s,
                stop_on_error,
                timeout_s,
            } => {
                let plan = BatchPlan {
                    run_id: self.run_id.clone(),
                    servers: servers.iter().map(|s| self.server(s)).collect::<Result<_, _>>()?,
                    commands: commands.clone(),
                    policy: RetryPolicy {
                        retries: *retries,
                        retry_delay: Duration::from_secs_f64(*retry_delay_s),
                        stop_on_error: *stop_on_error,
                    },
                    limits: ExecLimits {
                        max_stdout: self.batch_output_cap,
                        max_stderr: self.batch_output_cap,
                        timeout: Some(Duration::from_secs_f64(*timeout_s)),
                    },
                    checks: self.checks.clone(),
                };
                let links = Rc::new(SshLinkFactory {
                    ssh: self.ssh.clone(),
                });
                let (reporter, handle) = Pending::new(task_id, to.batch.clone()).split();
                handle(BatchRunActor::new(plan, links, reporter).start().recipient())
            }
            Action::Pause { .. } => {
                return Err(AppError::with_detail(
                    ErrorCode::Internal,
                    "a pause has no task to launch",
                ))
            }
        })
    }
}

/// A command step's end: succeeded when it exited with a status it may
/// (`expect`) or its stop phrase appeared.
pub fn judge_command(done: &Completion, expect: &[u32]) -> (StepStatus, Option<AppError>) {
    match done.reason {
        FinishReason::Exit if done.exit_status.is_some_and(|s| expect.contains(&s)) => {
            (StepStatus::Succeeded, None)
        }
        FinishReason::StopPhrase => (StepStatus::Succeeded, None),
        FinishReason::Exit => (
            StepStatus::Failed,
            Some(AppError::with_detail(
                ErrorCode::SshCommandFailed,
                format!(
                    "exit status {}, expected one of {expect:?}",
                    done.exit_status.map_or("none".to_owned(), |s| s.to_string())
                ),
            )),
        ),
        FinishReason::Cancelled => (StepStatus::Cancelled, None),
        FinishReason::Timeout | FinishReason::Error => (StepStatus::Failed, done.error.clone()),
    }
}

/// A transfer step's end.
pub fn judge_transfer(outcome: &TransferOutcome) -> (StepStatus, Option<AppError>) {
    match outcome {
        TransferOutcome::Complete(_) => (StepStatus::Succeeded, None),
        TransferOutcome::Failed(e) => (StepStatus::Failed, Some(e.clone())),
        TransferOutcome::Cancelled { .. } => (StepStatus::Cancelled, None),
    }
}

/// A batch step's end: succeeded only when every command did.
pub fn judge_batch(summary: &BatchSummary) -> (StepStatus, Option<AppError>) {
    if summary.cancelled {
        (StepStatus::Cancelled, None)
    } else if summary.failed > 0 || summary.skipped > 0 {
        let detail = format!(
            "{} failed, {} skipped, {} succeeded",
            summary.failed, summary.skipped, summary.succeeded
        );
        (
            StepStatus::Failed,
            Some(AppError::with_detail(ErrorCode::BatchFailed, detail)),
        )
    } else {
        (StepStatus::Succeeded, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(status: u32) -> Completion {
        Completion {
            reason: FinishReason::Exit,
            exit_status: Some(status),
            error: None,
            bytes: 0,
        }
    }

    #[test]
    fn a_command_succeeds_on_an_expected_status_or_its_stop_phrase() {
        assert_eq!(judge_command(&exit(0), &[0]).0, StepStatus::Succeeded);
        assert_eq!(judge_command(&exit(3), &[0, 3]).0, StepStatus::Succeeded);
        let (status, error) = judge_command(&exit(1), &[0]);
        assert_eq!(status, StepStatus::Failed);
        assert_eq!(error.unwrap().code, ErrorCode::SshCommandFailed);
        let phrase = Completion {
            reason: FinishReason::StopPhrase,
            exit_status: None,
            error: None,
            bytes: 0,
        };
        assert_eq!(judge_command(&phrase, &[0]).0, StepStatus::Succeeded);
    }

    #[test]
    fn a_batch_succeeds_only_when_every_command_did() {
        let summary = |failed, skipped, cancelled| BatchSummary {
            run_id: "r".into(),
            succeeded: 1,
            failed,
            skipped,
            duration_ms: 1,
            cancelled,
            unreachable: Vec::new(),
        };
        assert_eq!(judge_batch(&summary(0, 0, false)).0, StepStatus::Succeeded);
        assert_eq!(judge_batch(&summary(0, 1, false)).0, StepStatus::Failed);
        assert_eq!(judge_batch(&summary(1, 0, true)).0, StepStatus::Cancelled);
    }
}
