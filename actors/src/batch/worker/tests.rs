//! The retry, delay and stop-on-error rules of [`run_server`] with paused
//! time and a scripted link.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::*;
use crate::batch::link::Cancel;
use crate::batch::plan::CommandResult;
use crate::batch::scripted::*;
use crate::error::ErrorCode;

/// The commands `names` without retries, under `checks`.
fn work<'a>(names: &'a [String], checks: &'a Checks) -> ServerWork<'a> {
    ServerWork {
        commands: names,
        policy: policy(0, 0, false),
        checks,
    }
}

/// Runs one server's commands and returns the results and what the link saw.
async fn run(
    script: &[(&str, Vec<Step>)],
    names: &[&str],
    policy: RetryPolicy,
) -> (Vec<CommandResult>, Seen) {
    run_checked(script, names, policy, Checks::none()).await
}

/// [`run`] with command rules.
async fn run_checked(
    script: &[(&str, Vec<Step>)],
    names: &[&str],
    policy: RetryPolicy,
    checks: Checks,
) -> (Vec<CommandResult>, Seen) {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut link = Scripted::new(script, seen.clone());
    let (_tx, cancel) = Cancel::new();
    let mut results = Vec::new();
    run_server(
        &server("s1"),
        &mut link,
        ServerWork {
            commands: &commands(names),
            policy,
            checks: &checks,
        },
        &cancel,
        &Semaphore::new(1),
        &mut |r| {
            results.push(r);
            async {}.boxed_local()
        },
    )
    .await;
    drop(link);
    let seen = Rc::try_unwrap(seen).ok().unwrap().into_inner();
    (results, seen)
}

#[tokio::test(start_paused = true)]
async fn a_command_that_fails_twice_then_succeeds_takes_three_attempts_with_the_delay_between() {
    let script = [("flaky", vec![exit(1, 100), exit(1, 100), exit(0, 100)])];
    let (results, seen) = run(&script, &["flaky"], policy(5, 500, false)).await;

    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r.status, CommandStatus::Succeeded);
    assert_eq!(r.attempts, 3);
    assert_eq!(r.exit_status, Some(0));
    // three runs of 100 ms and two pauses of 500 ms
    assert_eq!(r.duration_ms, 1300);
    let starts: Vec<u128> = seen.attempts.iter().map(|(_, at)| at.as_millis()).collect();
    assert_eq!(starts, vec![0, 600, 1200]);
    assert_eq!(seen.closed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_command_that_keeps_failing_stops_after_its_retries() {
    let script = [("bad", vec![exit(2, 10)])];
    let (results, seen) = run(&script, &["bad"], policy(2, 1000, false)).await;

    assert_eq!(results[0].status, CommandStatus::Failed);
    assert_eq!(results[0].attempts, 3);
    assert_eq!(results[0].exit_status, Some(2));
    assert_eq!(seen.attempts.len(), 3);
    assert_eq!(results[0].duration_ms, 3 * 10 + 2 * 1000);
}

#[tokio::test(start_paused = true)]
async fn no_retries_means_one_attempt_and_no_delay() {
    let script = [("bad", vec![exit(1, 10)])];
    let (results, _) = run(&script, &["bad"], policy(0, 60_000, false)).await;
    assert_eq!(results[0].attempts, 1);
    assert_eq!(results[0].duration_ms, 10);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_counts_as_a_failed_attempt_and_is_retried() {
    let script = [(
        "slow",
        vec![error(ErrorCode::SshCommandTimeout, 1000), exit(0, 10)],
    )];
    let (results, _) = run(&script, &["slow"], policy(1, 0, true)).await;
    assert_eq!(results[0].status, CommandStatus::Succeeded);
    assert_eq!(results[0].attempts, 2);

    let script = [("slow", vec![error(ErrorCode::SshCommandTimeout, 1000)])];
    let (results, _) = run(&script, &["slow"], policy(0, 0, true)).await;
    assert_eq!(results[0].status, CommandStatus::Failed);
    assert_eq!(
        results[0].error.as_ref().map(|e| e.code),
        Some(ErrorCode::SshCommandTimeout)
    );
}

#[tokio::test(start_paused = true)]
async fn stop_on_error_skips_the_rest_of_the_server_s_commands() {
    let script = [
        ("a", vec![exit(0, 1)]),
        ("b", vec![exit(1, 1)]),
        ("c", vec![exit(0, 1)]),
    ];
    let (results, seen) = run(&script, &["a", "b", "c"], policy(1, 10, true)).await;

    let statuses: Vec<_> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![
            CommandStatus::Succeeded,
            CommandStatus::Failed,
            CommandStatus::Skipped
        ]
    );
    assert_eq!(results[2].attempts, 0);
    assert_eq!(results.iter().map(|r| r.index).collect::<Vec<_>>(), vec![0, 1, 2]);
    // b was tried twice (one retry), c never
    let tried: Vec<&str> = seen.attempts.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(tried, vec!["a", "b", "b"]);
}

#[tokio::test(start_paused = true)]
async fn without_stop_on_error_every_command_runs() {
    let script = [
        ("a", vec![exit(0, 1)]),
        ("b", vec![exit(1, 1)]),
        ("c", vec![exit(0, 1)]),
    ];
    let (results, _) = run(&script, &["a", "b", "c"], policy(0, 0, false)).await;
    let statuses: Vec<_> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![
            CommandStatus::Succeeded,
            CommandStatus::Failed,
            CommandStatus::Succeeded
        ]
    );
    assert_eq!(results[0].stdout, "out of a");
    assert_eq!(results[0].stderr, "err");
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_server_is_tried_once_with_its_retries_and_the_rest_carry_the_error() {
    let script = [
        ("a", vec![error(ErrorCode::SshAuthFailed, 5)]),
        ("b", vec![exit(0, 1)]),
    ];
    let (results, seen) = run(&script, &["a", "b"], policy(2, 100, false)).await;

    assert_eq!(seen.attempts.len(), 3, "only the first command tries to connect");
    assert_eq!(results[0].attempts, 3);
    assert_eq!(results[1].attempts, 0);
    for r in &results {
        assert_eq!(r.status, CommandStatus::Failed);
        assert_eq!(r.error.as_ref().map(|e| e.code), Some(ErrorCode::SshAuthFailed));
    }

    let (results, _) = run(&script, &["a", "b"], policy(0, 0, true)).await;
    assert_eq!(results[1].status, CommandStatus::Skipped);
    assert_eq!(
        results[1].error.as_ref().map(|e| e.code),
        Some(ErrorCode::SshAuthFailed)
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancel_during_the_retry_delay_reports_nothing_more_and_closes_the_link() {
    let seen = Rc::new(RefCell::new(Seen::default()));
    let mut link = Scripted::new(&[("bad", vec![exit(1, 10)])], seen.clone());
    let (tx, cancel) = Cancel::new();
    let t0 = Instant::now();
    let cancel_later = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tx.send(true).unwrap();
    };
    let mut results = Vec::new();
    let (spec, names) = (server("s1"), commands(&["bad"]));
    let mut report = |r| {
        results.push(r);
        async {}.boxed_local()
    };
    let gate = Semaphore::new(1);
    let no_checks = Checks::none();
    let work = run_server(
        &spec,
        &mut link,
        ServerWork {
            commands: &names,
            policy: policy(10, 60_000, false),
            checks: &no_checks,
        },
        &cancel,
        &gate,
        &mut report,
    );
    tokio::join!(work, cancel_later);
    assert!(results.is_empty());
    assert_eq!(t0.elapsed(), Duration::from_millis(500), "the delay is cut short");
    assert_eq!(seen.borrow().closed, 1);
}

#[tokio::test(start_paused = true)]
async fn servers_sharing_a_gate_of_one_permit_run_their_commands_one_at_a_time() {
    let script = [("a", vec![exit(0, 100)]), ("b", vec![exit(0, 100)])];
    let (seen1, seen2) = (
        Rc::new(RefCell::new(Seen::default())),
        Rc::new(RefCell::new(Seen::default())),
    );
    let (mut l1, mut l2) = (
        Scripted::new(&script, seen1.clone()),
        Scripted::new(&script, seen2.clone()),
    );
    let (_tx, cancel) = Cancel::new();
    let (s1, s2, names) = (server("s1"), server("s2"), commands(&["a", "b"]));
    let gate = Semaphore::new(1);
    let t0 = Instant::now();
    let mut r1 = |_| async {}.boxed_local();
    let mut r2 = |_| async {}.boxed_local();

    let no_checks = Checks::none();
    tokio::join!(
        run_server(&s1, &mut l1, work(&names, &no_checks), &cancel, &gate, &mut r1),
        run_server(&s2, &mut l2, work(&names, &no_checks), &cancel, &gate, &mut r2),
    );

    // four commands of 100 ms, never two at once
    assert_eq!(t0.elapsed(), Duration::from_millis(400));
    let mut starts: Vec<u128> = [seen1, seen2]
        .iter()
        .flat_map(|s| {
            s.borrow()
                .attempts
                .iter()
                .map(|(_, at)| at.as_millis())
                .collect::<Vec<_>>()
        })
        .collect();
    starts.sort();
    assert_eq!(starts, vec![0, 100, 200, 300]);
}

#[test]
fn a_run_holds_at_most_its_in_flight_bound_of_output() {
    let limits = |cap: usize| crate::ssh::ExecLimits {
        max_stdout: cap,
        max_stderr: cap,
        timeout: None,
    };
    use crate::batch::run::commands_in_flight;
    assert_eq!(commands_in_flight(&limits(1 << 20)), 64);
    assert_eq!(commands_in_flight(&limits(64 << 20)), 1, "at least one");
    assert_eq!(commands_in_flight(&limits(0)), 128 << 20);
}

/// Refuses `deny*`, holds `held*` for 5 s then lets it run, holds
/// `rejected*` for 1 s then refuses it.
struct FakeRules;

impl crate::policy::CommandCheck for FakeRules {
    fn check(&self, _: &ServerSpec, command: &str) -> Result<Option<crate::policy::Gate>, AppError> {
        if command.starts_with("deny") {
            return Err(AppError::new(ErrorCode::CommandDenied));
        }
        if command.starts_with("held") {
            return Ok(Some(Box::pin(async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })));
        }
        if command.starts_with("rejected") {
            return Ok(Some(Box::pin(async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Err(AppError::new(ErrorCode::CommandRejected))
            })));
        }
        Ok(None)
    }
}

#[tokio::test(start_paused = true)]
async fn refused_commands_fail_unrun_and_held_ones_run_once_released() {
    let script = [
        ("deny-me", vec![exit(0, 10)]),
        ("held", vec![exit(0, 10)]),
        ("rejected", vec![exit(0, 10)]),
        ("after", vec![exit(0, 10)]),
    ];
    let checks = Checks::new(std::sync::Arc::new(FakeRules));
    let names = ["deny-me", "held", "rejected", "after"];
    let (results, seen) = run_checked(&script, &names, policy(2, 100, false), checks).await;

    let statuses: Vec<_> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            CommandStatus::Failed,
            CommandStatus::Succeeded,
            CommandStatus::Failed,
            CommandStatus::Succeeded
        ]
    );
    assert_eq!(results[0].error.as_ref().unwrap().code, ErrorCode::CommandDenied);
    assert_eq!(results[0].attempts, 0, "a refused command is never tried");
    assert_eq!(
        results[2].error.as_ref().unwrap().code,
        ErrorCode::CommandRejected
    );
    // the link ran only the two that were let through: the held one after
    // its 5 s wait, the last after the rejection's 1 s
    let ran: Vec<(&str, u128)> = seen
        .attempts
        .iter()
        .map(|(c, at)| (c.as_str(), at.as_millis()))
        .collect();
    assert_eq!(ran, vec![("held", 5000), ("after", 6010)]);
}

#[tokio::test(start_paused = true)]
async fn a_refused_command_under_stop_on_error_skips_the_rest() {
    let script = [("deny-me", vec![exit(0, 10)]), ("after", vec![exit(0, 10)])];
    let checks = Checks::new(std::sync::Arc::new(FakeRules));
    let (results, seen) = run_checked(&script, &["deny-me", "after"], policy(0, 0, true), checks).await;
    assert_eq!(results[0].status, CommandStatus::Failed);
    assert_eq!(results[1].status, CommandStatus::Skipped);
    assert!(seen.attempts.is_empty());
}
