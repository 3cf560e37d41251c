//! A scripted [`StepLauncher`] for the run's tests: each command step plays
//! a [`Play`] under paused time (print, then exit; run until stopped; or
//! ignore its stop), with no SSH. Only command steps are scripted: the
//! run's rules do not depend on the kind of task.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler};

use super::{StepClients, StepLauncher};
use crate::error::{AppError, ErrorCode};
use crate::task::{Pending, Reporter, Stop, TaskHandle, TaskId};
use crate::terminal::shell::{Completion, FinishReason};
use crate::workflow::plan::Action;

/// What one command step does.
#[derive(Debug, Clone)]
pub(crate) enum Play {
    /// Prints each line, then exits with `status` after `after`.
    Exit {
        lines: Vec<&'static str>,
        after: Duration,
        status: u32,
    },
    /// Runs until stopped, then ends cancelled (a PTY closed under it).
    UntilStopped,
    /// Never ends, not even when told to stop (a stuck cleanup).
    IgnoresStop,
}

/// What the launcher saw, shared with the test.
#[derive(Default)]
pub(crate) struct Seen {
    /// Commands started, in order.
    pub(crate) started: Vec<String>,
    /// Stops the tasks were told.
    pub(crate) stops: u32,
}

/// Plays one [`Play`] per command step, in order.
pub(crate) struct Scripted {
    plays: RefCell<VecDeque<Play>>,
    pub(crate) seen: Rc<RefCell<Seen>>,
}

impl Scripted {
    pub(crate) fn new(plays: Vec<Play>) -> Rc<Scripted> {
        Rc::new(Scripted {
            plays: RefCell::new(plays.into()),
            seen: Rc::default(),
        })
    }
}

impl StepLauncher for Scripted {
    fn launch(
        &self,
        _step: usize,
        action: &Action,
        task_id: TaskId,
        to: &StepClients,
    ) -> Result<TaskHandle, AppError> {
        let Action::Command { command, .. } = action else {
            return Err(AppError::with_detail(
                ErrorCode::Internal,
                "only commands are scripted",
            ));
        };
        let play = self
            .plays
            .borrow_mut()
            .pop_front()
            .ok_or_else(|| AppError::with_detail(ErrorCode::Internal, "no play left"))?;
        self.seen.borrow_mut().started.push(command.clone());
        let (reporter, handle) = Pending::new(task_id, to.shell.clone()).split();
        let task = FakeCommand {
            play,
            reporter: Some(reporter),
            seen: self.seen.clone(),
            reason: FinishReason::Cancelled,
        };
        Ok(handle(task.start().recipient()))
    }
}

/// A command that plays its script.
struct FakeCommand {
    play: Play,
    reporter: Option<Reporter<String, Completion>>,
    seen: Rc<RefCell<Seen>>,
    /// How it ends when it stops: cancelled unless it exited.
    reason: FinishReason,
}

impl Actor for FakeCommand {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Play::Exit { lines, after, .. } = &self.play {
            if let Some(r) = &self.reporter {
                for line in lines {
                    r.notice(format!("{line}\n"));
                }
            }
            ctx.run_later(*after, |act, ctx| {
                act.reason = FinishReason::Exit;
                ctx.stop();
            });
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let exit_status = match (&self.play, self.reason) {
            (Play::Exit { status, .. }, FinishReason::Exit) => Some(*status),
            _ => None,
        };
        if let Some(r) = self.reporter.take() {
            r.finish(
                Completion {
                    reason: self.reason,
                    exit_status,
                    error: None,
                    bytes: 0,
                },
                None,
            );
        }
    }
}

impl Handler<Stop> for FakeCommand {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        self.seen.borrow_mut().stops += 1;
        if !matches!(self.play, Play::IgnoresStop) {
            ctx.stop();
        }
    }
}
