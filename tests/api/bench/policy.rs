//! The command policy benchmark's body (issue 27): `cargo bench --bench
//! policy` runs it with [`Workload::FULL`], the suite's smoke run
//! (`bench::policy_benchmark_reports_rule_checks_and_echo_on_a_tiny_workload`)
//! with a tiny one.
//!
//! Three measures, each side by side in one run:
//! - **A check, in the process**: the verdict on a typical command with
//!   `rules` rules none of which match (every rule is tried: the worst
//!   case), against the same command with no rules (the check is skipped),
//!   in microseconds per check.
//! - **Keystroke echo** in an operator terminal at a typist's 0.15 s gap
//!   (`stty -icanon; cat`: the PTY echoes each key), on a daemon with the
//!   same `rules` rules in its servers file and on one without: each
//!   keystroke passes the typed-line tracker; none is an Enter.
//! - **Enter to prompt**: a line typed at a real bash prompt and its
//!   Enter, until the next prompt, on both daemons: the line is judged
//!   against every rule at the Enter.

use std::fmt;
use std::time::{Duration, Instant};

use pinkpage_actors::access::Role;
use pinkpage_actors::policy::rules::{CommandPolicy, CommandRule, Matcher, RuleAction};
use serde_json::json;

use super::stats::{median, percentile};
use super::terminals::{echo_terminal, echoes, open, until_output};
use crate::support::daemon::TestApp;
use crate::support::sshd::{SshdOptions, SshdServer};
use crate::support::ws::WsClient;

/// How much the benchmark measures.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Rules in the policy.
    pub rules: usize,
    /// Checks timed in the process, per round.
    pub checks: usize,
    /// Keystrokes (and Enters) timed on each daemon.
    pub keystrokes: usize,
}

impl Workload {
    /// The workload of docs/benchmarks.md.
    pub const FULL: Workload = Workload {
        rules: 1000,
        checks: 20_000,
        keystrokes: 100,
    };
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    /// Microseconds per check with the rules, per round.
    pub check_us: Vec<f64>,
    /// Microseconds per check with no rules, per round.
    pub open_check_us: Vec<f64>,
    /// Echo round trips with the rules, ms.
    pub echo_ruled_ms: Vec<f64>,
    /// Echo round trips without rules, ms.
    pub echo_plain_ms: Vec<f64>,
    /// Enter to the next prompt with the rules, ms.
    pub enter_ruled_ms: Vec<f64>,
    /// Enter to the next prompt without rules, ms.
    pub enter_plain_ms: Vec<f64>,
}

/// A typical command no rule matches.
const COMMAND: &str = "cd /var/log && grep -c error syslog | sort -n > /tmp/errors.txt";

/// `n` deny rules, half of words, half of regular expressions, none
/// matching [`COMMAND`] nor the typed lines; as TOML and as the policy.
fn rules(n: usize) -> (String, CommandPolicy) {
    let mut toml = String::new();
    let mut built = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("rule-{i}");
        let matcher = if i % 2 == 0 {
            let words = [format!("forbidden-{i} now"), format!("danger{i}")];
            toml.push_str(&format!(
                "[[command_rules]]\nname = \"{name}\"\nwords = [\"{}\", \"{}\"]\naction = \"deny\"\n",
                words[0], words[1]
            ));
            Matcher::words(&words).unwrap()
        } else {
            let regex = format!(r"^never-{i}\s+\d+$");
            toml.push_str(&format!(
                "[[command_rules]]\nname = \"{name}\"\nregex = '{regex}'\naction = \"deny\"\n"
            ));
            Matcher::regex(&regex).unwrap()
        };
        built.push(CommandRule {
            name,
            matcher,
            tags: vec![],
            roles: vec![],
            action: RuleAction::Deny,
            message: String::new(),
            approvers: vec![],
        });
    }
    (toml, CommandPolicy::new(built, RuleAction::Allow).unwrap())
}

/// Microseconds per check of [`COMMAND`] under `policy`, over `checks`.
fn time_checks(policy: &CommandPolicy, checks: usize) -> f64 {
    let tags = vec!["prod".to_owned()];
    let start = Instant::now();
    for _ in 0..checks {
        let verdict = policy.judge(std::hint::black_box(COMMAND), &tags, Role::Operator);
        assert_eq!(verdict.action, RuleAction::Allow);
    }
    start.elapsed().as_secs_f64() * 1e6 / checks as f64
}

/// Echo round trips of `count` keystrokes 150 ms apart in a terminal of
/// its own, ms (the terminals benchmark's measure).
async fn keystrokes(app: &TestApp, count: usize) -> Vec<f64> {
    let (mut ws, id) = echo_terminal(app).await;
    echoes(&mut ws, &id, count).await
}

/// Enter to the next prompt at a bash prompt, `count` times 150 ms apart,
/// ms: the typed line (`true <n>`) goes first, then its Enter is timed.
async fn enters(app: &TestApp, count: usize) -> Vec<f64> {
    let mut ws = WsClient::connect(app, "/ws/v1/terminal").await;
    let id = open(&mut ws, "").await;
    ws.send(json!({"type": "terminal_input", "terminal_id": id, "data": "PS1='BE''NCH> '\r"}))
        .await;
    until_output(&mut ws, &id, "BENCH> ").await;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let line = format!("true {i}");
        ws.send(json!({"type": "terminal_input", "terminal_id": id, "data": line}))
            .await;
        until_output(&mut ws, &id, &line).await;
        let start = Instant::now();
        ws.send(json!({"type": "terminal_input", "terminal_id": id, "data": "\r"}))
            .await;
        until_output(&mut ws, &id, "BENCH> ").await;
        out.push(start.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    out
}

/// A daemon with `alpha` on `sshd` and `extra` TOML.
async fn daemon(sshd: &SshdServer, extra: &str) -> TestApp {
    TestApp::builder()
        .sshd("alpha", sshd)
        .transfers_toml(extra)
        .env("RUST_LOG", "info,russh=warn")
        .spawn()
        .await
}

/// Runs the benchmark.
pub async fn run(w: Workload) -> Report {
    let (toml, policy) = rules(w.rules);
    let open = CommandPolicy::default();
    let mut check_us = Vec::new();
    let mut open_check_us = Vec::new();
    for _ in 0..5 {
        check_us.push(time_checks(&policy, w.checks));
        open_check_us.push(time_checks(&open, w.checks));
    }

    let sshd = SshdServer::start(SshdOptions::default());
    let ruled = daemon(&sshd, &toml).await;
    let plain = daemon(&sshd, "").await;
    // interleaved halves, so drift on the machine falls on both
    let half = w.keystrokes.div_ceil(2);
    let mut echo_ruled_ms = keystrokes(&ruled, half).await;
    let mut echo_plain_ms = keystrokes(&plain, half).await;
    echo_plain_ms.extend(keystrokes(&plain, half).await);
    echo_ruled_ms.extend(keystrokes(&ruled, half).await);
    let mut enter_ruled_ms = enters(&ruled, half).await;
    let mut enter_plain_ms = enters(&plain, half).await;
    enter_plain_ms.extend(enters(&plain, half).await);
    enter_ruled_ms.extend(enters(&ruled, half).await);
    Report {
        workload: w,
        check_us,
        open_check_us,
        echo_ruled_ms,
        echo_plain_ms,
        enter_ruled_ms,
        enter_plain_ms,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.workload;
        let p = |v: &[f64], q: f64| percentile(v.to_vec(), q);
        writeln!(
            f,
            "## Command policy ({} rules, none matching; {} checks a round, median of 5; {} keystrokes each way, 0.15 s apart)",
            w.rules, w.checks, self.echo_ruled_ms.len()
        )?;
        writeln!(f)?;
        writeln!(f, "| measure | {} rules | no rules |", w.rules)?;
        writeln!(f, "|---|---|---|")?;
        writeln!(
            f,
            "| one check of a command, in the process | {:.2} µs | {:.3} µs |",
            median(self.check_us.clone()),
            median(self.open_check_us.clone())
        )?;
        writeln!(
            f,
            "| keystroke echo in a terminal, p50 / p99 | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
            p(&self.echo_ruled_ms, 0.5),
            p(&self.echo_ruled_ms, 0.99),
            p(&self.echo_plain_ms, 0.5),
            p(&self.echo_plain_ms, 0.99)
        )?;
        writeln!(
            f,
            "| Enter to the next prompt, p50 / p99 | {:.2} / {:.2} ms | {:.2} / {:.2} ms |",
            p(&self.enter_ruled_ms, 0.5),
            p(&self.enter_ruled_ms, 0.99),
            p(&self.enter_plain_ms, 0.5),
            p(&self.enter_plain_ms, 0.99)
        )
    }
}
