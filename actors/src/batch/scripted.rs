//! A scripted [`ServerLink`] for the batch tests: each command plays its
//! steps (a duration, then an exit status or an error) under paused time,
//! and records what it saw. Shared by the rule tests (`worker/tests.rs`)
//! and the actor tests (`run/tests.rs`).

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use tokio::time::Instant;

use super::link::{Cancel, ServerLink};
use super::plan::RetryPolicy;
use crate::error::{AppError, ErrorCode};
use crate::server::ServerSpec;
use crate::ssh::ExecOutput;

/// What one scripted attempt does: take `took`, then end with `outcome`.
#[derive(Clone)]
pub(crate) struct Step {
    pub(crate) took: Duration,
    pub(crate) outcome: Result<u32, ErrorCode>,
}

pub(crate) fn exit(code: u32, ms: u64) -> Step {
    Step {
        took: Duration::from_millis(ms),
        outcome: Ok(code),
    }
}

pub(crate) fn error(code: ErrorCode, ms: u64) -> Step {
    Step {
        took: Duration::from_millis(ms),
        outcome: Err(code),
    }
}

/// What the link saw, shared with the test.
#[derive(Default)]
pub(crate) struct Seen {
    /// (command, when the attempt started, relative to the test's start)
    pub(crate) attempts: Vec<(String, Duration)>,
    pub(crate) closed: u32,
    pub(crate) cancelled: u32,
}

/// A link that plays each command's steps in turn (the last one repeats).
pub(crate) struct Scripted {
    script: HashMap<String, VecDeque<Step>>,
    seen: Rc<RefCell<Seen>>,
    t0: Instant,
    pub(crate) cancel: Option<Cancel>,
}

impl Scripted {
    pub(crate) fn new(script: &[(&str, Vec<Step>)], seen: Rc<RefCell<Seen>>) -> Self {
        Scripted {
            script: script
                .iter()
                .map(|(c, steps)| (c.to_string(), steps.iter().cloned().collect()))
                .collect(),
            seen,
            t0: Instant::now(),
            cancel: None,
        }
    }
}

impl ServerLink for Scripted {
    fn exec<'a>(&'a mut self, command: &'a str) -> LocalBoxFuture<'a, Result<ExecOutput, AppError>> {
        async move {
            self.seen
                .borrow_mut()
                .attempts
                .push((command.to_owned(), self.t0.elapsed()));
            let steps = self.script.get_mut(command).expect("scripted command");
            let step = if steps.len() > 1 {
                steps.pop_front().unwrap()
            } else {
                steps[0].clone()
            };
            let cancel = self.cancel.clone();
            let run = tokio::time::sleep(step.took);
            if let Some(cancel) = cancel {
                tokio::select! {
                    _ = run => {}
                    _ = cancel.cancelled() => {
                        self.seen.borrow_mut().cancelled += 1;
                        return Err(AppError::new(ErrorCode::SshCommandFailed));
                    }
                }
            } else {
                run.await;
            }
            match step.outcome {
                Ok(code) => Ok(ExecOutput {
                    exit_status: Some(code),
                    stdout: format!("out of {command}").into_bytes(),
                    stderr: b"err".to_vec(),
                    ..Default::default()
                }),
                Err(code) => Err(AppError::with_detail(code, "scripted")),
            }
        }
        .boxed_local()
    }

    fn close(&mut self) -> LocalBoxFuture<'_, ()> {
        self.seen.borrow_mut().closed += 1;
        async {}.boxed_local()
    }
}

pub(crate) fn server(name: &str) -> Arc<ServerSpec> {
    Arc::new(ServerSpec::for_tests(name, "127.0.0.1", 1))
}

pub(crate) fn policy(retries: u32, delay_ms: u64, stop_on_error: bool) -> RetryPolicy {
    RetryPolicy {
        retries,
        retry_delay: Duration::from_millis(delay_ms),
        stop_on_error,
    }
}

pub(crate) fn commands(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}
