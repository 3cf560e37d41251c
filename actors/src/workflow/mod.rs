//! Workflows: the seed's SSH -> transfer -> SSH sequence (and any other)
//! defined once, run with one action under the session lock, step by step.
//!
//! - [`template`]: command templates whose parameters reach the shell only
//!   as quoted words.
//! - [`definition`]: a configured [`definition::Workflow`], its typed
//!   parameters and binding a caller's values (10001 before anything runs).
//! - [`plan`]: the steps with values bound: what `workflow_plan` shows and
//!   exactly what a run executes.
//! - [`run`]: `WorkflowRunActor`, one run, each step as the existing task
//!   actor (shell, transfer, batch) or a pause.

pub mod definition;
pub mod plan;
pub mod run;
pub mod template;
