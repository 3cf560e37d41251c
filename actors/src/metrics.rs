//! The metrics catalogue: every series `GET /metrics` shows, named once,
//! and the functions that move the ones counted as work happens.
//!
//! Two kinds of series:
//! - **Counted** (counters and histograms): moved here, through the
//!   [`metrics`] facade, where the work happens (a command starts, a
//!   transfer writes a file, a health check ends). Without a recorder
//!   installed (the engine's own tests, `pinkpage check-config`) every call
//!   is a no-op; the daemon installs the Prometheus recorder at start.
//! - **Read at scrape time** (gauges of what is true now: open
//!   connections, a server's health, the lock's holder, the journal's
//!   queue): the daemon reads them from their owners when `/metrics` is
//!   asked and renders them itself, so a server removed by a reload, or a
//!   connection that closed, leaves no stale series behind.
//!
//! Labels are bounded: kinds and reasons from fixed lists here, and
//! configured server names; never a command, a path or a user name.
//! [`CATALOGUE`] is what `docs/operations.md` lists (a test keeps them
//! equal) and what the scrape test checks, series by series.

use std::time::Duration;

/// How a series is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// A value now.
    Gauge,
    /// Observations in buckets (`_seconds`, `_bytes`).
    Histogram,
}

impl Kind {
    /// The exposition format's `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One series family.
#[derive(Debug)]
pub struct Metric {
    /// The name, `pinkpage_` first.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Its labels (every one bounded).
    pub labels: &'static [&'static str],
    /// What it counts (the `# HELP` line).
    pub help: &'static str,
    /// Whether the daemon reads it at scrape time (true) or it is counted
    /// as work happens (false).
    pub at_scrape: bool,
}

const fn counted(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
        at_scrape: false,
    }
}

const fn scraped(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
        at_scrape: true,
    }
}

use Kind::{Counter, Gauge, Histogram};

/// Open WebSocket connections by endpoint (`stub`, `terminal`, ...).
pub const WEBSOCKET_CONNECTIONS: &str = "pinkpage_websocket_connections";
/// WebSocket connections accepted since start, by endpoint.
pub const WEBSOCKET_CONNECTIONS_OPENED: &str = "pinkpage_websocket_connections_opened_total";
/// SSH sessions open now, by configured server.
pub const SSH_SESSIONS: &str = "pinkpage_ssh_sessions";
/// Callers waiting for an SSH session slot now.
pub const SSH_SESSIONS_WAITING: &str = "pinkpage_ssh_sessions_waiting";
/// Commands started on a PTY (`ssh_command` and workflow steps; an
/// operator terminal's shell).
pub const COMMANDS_STARTED: &str = "pinkpage_commands_started_total";
/// Commands finished, by reason.
pub const COMMANDS_FINISHED: &str = "pinkpage_commands_finished_total";
/// Output bytes received from servers, by kind.
pub const OUTPUT_BYTES: &str = "pinkpage_output_bytes_total";
/// Bytes written by server-to-server transfers.
pub const TRANSFER_BYTES: &str = "pinkpage_transfer_bytes_total";
/// Files written by transfers.
pub const TRANSFER_FILES: &str = "pinkpage_transfer_files_total";
/// Transfers finished, by status.
pub const TRANSFERS: &str = "pinkpage_transfers_total";
/// Batch (BMX4) runs finished, by status.
pub const BATCH_RUNS: &str = "pinkpage_batch_runs_total";
/// Batch results (one per server and command), by status.
pub const BATCH_RESULTS: &str = "pinkpage_batch_results_total";
/// Workflow runs ended, by status.
pub const WORKFLOW_RUNS: &str = "pinkpage_workflow_runs_total";
/// How long workflow steps took, by step kind.
pub const WORKFLOW_STEP_SECONDS: &str = "pinkpage_workflow_step_duration_seconds";
/// Operator terminals now, by state (`attached`, `detached`).
pub const TERMINALS: &str = "pinkpage_terminals";
/// Whether a configured server is healthy (1) or not (0).
pub const SERVER_UP: &str = "pinkpage_server_up";
/// How long the last good health check of a server took (kept while the
/// server is down).
pub const SERVER_LAST_GOOD_CHECK_SECONDS: &str = "pinkpage_server_last_good_check_seconds";
/// How long health checks take, by result.
pub const HEALTH_CHECK_SECONDS: &str = "pinkpage_health_check_duration_seconds";
/// How long a health sweep of every server took.
pub const HEALTH_SWEEP_SECONDS: &str = "pinkpage_health_sweep_duration_seconds";
/// Whether the session lock is held (1) or free (0).
pub const LOCK_HELD: &str = "pinkpage_lock_held";
/// For how long the current holder has held the lock (0 when free).
pub const LOCK_HELD_FOR_SECONDS: &str = "pinkpage_lock_held_for_seconds";
/// How long the lock was held, observed at each release.
pub const LOCK_HOLD_SECONDS: &str = "pinkpage_lock_hold_duration_seconds";
/// How long a batch of records took to write, by stream.
pub const STORE_WRITE_SECONDS: &str = "pinkpage_store_write_duration_seconds";
/// Store writes that failed, by stream.
pub const STORE_WRITE_FAILURES: &str = "pinkpage_store_write_failures_total";
/// Whether records can be written (1) or the store is failing (0).
pub const STORE_UP: &str = "pinkpage_store_up";
/// Records waiting in the journal's queue.
pub const JOURNAL_QUEUE_ROWS: &str = "pinkpage_journal_queue_rows";
/// Their estimated size in memory.
pub const JOURNAL_QUEUE_BYTES: &str = "pinkpage_journal_queue_bytes";
/// Records dropped because the journal's bound was full.
pub const JOURNAL_DROPPED_ROWS: &str = "pinkpage_journal_dropped_rows_total";
/// Requests and messages refused by a cap, by kind.
pub const CAPS_HIT: &str = "pinkpage_caps_hit_total";
/// Errors answered to clients, by code (the catalogue: bounded).
pub const ERRORS: &str = "pinkpage_errors_total";
/// Heap memory in use (glibc's `mallinfo2`).
pub const HEAP_IN_USE_BYTES: &str = "pinkpage_heap_in_use_bytes";
/// Heap memory free but still held by the allocator.
pub const HEAP_FREE_BYTES: &str = "pinkpage_heap_free_bytes";
/// Seconds since the daemon started.
pub const UPTIME_SECONDS: &str = "pinkpage_uptime_seconds";

/// Every series family, in the order `/metrics` and the docs show them.
pub const CATALOGUE: &[Metric] = &[
    scraped(UPTIME_SECONDS, Gauge, &[], "Seconds since the daemon started."),
    scraped(WEBSOCKET_CONNECTIONS, Gauge, &["endpoint"], "Open WebSocket connections, by endpoint."),
    counted(
        WEBSOCKET_CONNECTIONS_OPENED,
        Counter,
        &["endpoint"],
        "WebSocket connections admitted since start, by endpoint.",
    ),
    scraped(
        SSH_SESSIONS,
        Gauge,
        &["server"],
        "SSH sessions open now, by configured server (servers sharing one host:port share its sessions).",
    ),
    scraped(SSH_SESSIONS_WAITING, Gauge, &[], "Callers waiting for an SSH session slot now."),
    counted(
        COMMANDS_STARTED,
        Counter,
        &["kind"],
        "Commands started on a PTY, by kind (command: ssh_command and workflow steps; terminal: an operator terminal's shell).",
    ),
    counted(
        COMMANDS_FINISHED,
        Counter,
        &["kind", "reason"],
        "Commands finished, by kind and reason (command: exit, stop_phrase, timeout, cancelled, error; terminal: exit, closed, idle, detach_expired, access_changed, shutdown, error).",
    ),
    counted(
        OUTPUT_BYTES,
        Counter,
        &["kind"],
        "Output bytes received from servers, by kind (command, terminal).",
    ),
    counted(TRANSFER_BYTES, Counter, &[], "Bytes written to targets by server-to-server transfers."),
    counted(
        TRANSFER_FILES,
        Counter,
        &[],
        "Files renamed into place on targets by server-to-server transfers.",
    ),
    counted(TRANSFERS, Counter, &["status"], "Transfers finished, by status (completed, failed, cancelled)."),
    counted(BATCH_RUNS, Counter, &["status"], "Batch runs finished, by status (completed, failed, cancelled)."),
    counted(BATCH_RESULTS, Counter, &["status"], "Batch results (one per server and command), by status (succeeded, failed, skipped)."),
    counted(
        WORKFLOW_RUNS,
        Counter,
        &["status"],
        "Workflow runs ended, by status (succeeded, failed, cancelled).",
    ),
    counted(
        WORKFLOW_STEP_SECONDS,
        Histogram,
        &["kind"],
        "How long workflow steps took, by step kind (command, transfer, batch, pause).",
    ),
    scraped(TERMINALS, Gauge, &["state"], "Operator terminals now, by state (attached, detached)."),
    scraped(SERVER_UP, Gauge, &["server"], "Whether a configured server is healthy (1) or not (0)."),
    scraped(
        SERVER_LAST_GOOD_CHECK_SECONDS,
        Gauge,
        &["server"],
        "How long the last good health check of a configured server took (TCP connect and SSH banner; kept while the server is down).",
    ),
    counted(
        HEALTH_CHECK_SECONDS,
        Histogram,
        &["result"],
        "How long health checks take, by result (up, down).",
    ),
    counted(
        HEALTH_SWEEP_SECONDS,
        Histogram,
        &[],
        "How long one health sweep of every configured server took (about one health timeout at most when servers hang).",
    ),
    scraped(LOCK_HELD, Gauge, &[], "Whether the session lock is held (1) or free (0)."),
    scraped(
        LOCK_HELD_FOR_SECONDS,
        Gauge,
        &[],
        "For how long the current holder has held the session lock (0 when free).",
    ),
    counted(
        LOCK_HOLD_SECONDS,
        Histogram,
        &[],
        "How long the session lock was held, observed at each release.",
    ),
    counted(
        STORE_WRITE_SECONDS,
        Histogram,
        &["stream"],
        "How long one batch of records took to write to the store, by stream.",
    ),
    counted(STORE_WRITE_FAILURES, Counter, &["stream"], "Store writes that failed, by stream."),
    scraped(
        STORE_UP,
        Gauge,
        &[],
        "Whether records can be written (1) or the store is failing (0; new remote work is refused unless the daemon fails open).",
    ),
    scraped(JOURNAL_QUEUE_ROWS, Gauge, &[], "Records waiting in the journal's queue, every stream."),
    scraped(JOURNAL_QUEUE_BYTES, Gauge, &[], "The estimated size of the records waiting in the journal's queue."),
    scraped(
        JOURNAL_DROPPED_ROWS,
        Counter,
        &[],
        "Records dropped because the journal's bound was full, since start.",
    ),
    counted(
        CAPS_HIT,
        Counter,
        &["kind"],
        "Requests and messages refused by a cap, by kind (operations_per_connection, request_body, login_attempts, ssh_sessions_per_server, websocket_connections, websocket_connections_per_user, pending_per_address, message_size, diff_memory, terminals_per_user, terminals, watchers_per_pty, held_commands).",
    ),
    counted(ERRORS, Counter, &["code"], "Errors answered to clients, by catalogue code."),
    scraped(
        HEAP_IN_USE_BYTES,
        Gauge,
        &[],
        "Heap memory the daemon uses now (glibc's allocator; absent on other C libraries).",
    ),
    scraped(
        HEAP_FREE_BYTES,
        Gauge,
        &[],
        "Heap memory freed but still held by the allocator (above 8 MiB given back every PINKPAGE_HEAP_TRIM_S; absent on other C libraries).",
    ),
];

/// Every kind [`cap_kind`] names, once, in the catalogue's order of
/// codes (so each starts at zero); derived, so a new cap cannot be missed.
pub fn cap_kinds() -> impl Iterator<Item = &'static str> {
    crate::error::ErrorCode::ALL.iter().filter_map(|c| cap_kind(*c))
}

/// The cap behind an error code, for [`CAPS_HIT`]; `None` when the code
/// is not a cap.
pub fn cap_kind(code: crate::error::ErrorCode) -> Option<&'static str> {
    use crate::error::ErrorCode as C;
    Some(match code {
        C::TooManyOperations => "operations_per_connection",
        C::RequestBodyTooLarge => "request_body",
        C::LoginThrottled => "login_attempts",
        C::SshNoSessionSlot => "ssh_sessions_per_server",
        C::WsTooManyConnections => "websocket_connections",
        C::WsTooManyUserConnections => "websocket_connections_per_user",
        C::TooManyPending => "pending_per_address",
        C::WsTooLarge => "message_size",
        C::DiffBudgetExhausted => "diff_memory",
        C::TooManyTerminalsForUser => "terminals_per_user",
        C::TooManyTerminals => "terminals",
        C::TooManyWatchers => "watchers_per_pty",
        C::TooManyHeld => "held_commands",
        _ => return None,
    })
}

/// An error answered to a client: counts it by code, and as a cap hit
/// when it is one. Called by the daemon where errors leave it (the HTTP
/// error response, the WebSocket error frame), once per answer.
pub fn error_answered(code: crate::error::ErrorCode) {
    metrics::counter!(ERRORS, "code" => code.code().to_string()).increment(1);
    if let Some(kind) = cap_kind(code) {
        metrics::counter!(CAPS_HIT, "kind" => kind).increment(1);
    }
}

/// A command started on a PTY.
pub fn command_started(kind: &'static str) {
    metrics::counter!(COMMANDS_STARTED, "kind" => kind).increment(1);
}

/// A command finished.
pub fn command_finished(kind: &'static str, reason: &'static str) {
    metrics::counter!(COMMANDS_FINISHED, "kind" => kind, "reason" => reason).increment(1);
}

/// The output counter for `kind`; take it once and add to it per chunk.
pub fn output_bytes(kind: &'static str) -> metrics::Counter {
    metrics::counter!(OUTPUT_BYTES, "kind" => kind)
}

/// A transfer wrote `n` bytes to a target (counted as they are written).
pub fn transfer_bytes(n: u64) {
    metrics::counter!(TRANSFER_BYTES).increment(n);
}

/// A transfer renamed one verified file into place.
pub fn transfer_file_done() {
    metrics::counter!(TRANSFER_FILES).increment(1);
}

/// A transfer finished.
pub fn transfer_finished(status: &'static str) {
    metrics::counter!(TRANSFERS, "status" => status).increment(1);
}

/// A batch run finished.
pub fn batch_run_finished(status: &'static str) {
    metrics::counter!(BATCH_RUNS, "status" => status).increment(1);
}

/// A batch result was settled.
pub fn batch_result(status: &'static str) {
    metrics::counter!(BATCH_RESULTS, "status" => status).increment(1);
}

/// A workflow run ended.
pub fn workflow_run_ended(status: &'static str) {
    metrics::counter!(WORKFLOW_RUNS, "status" => status).increment(1);
}

/// A workflow step ended after `took`.
pub fn workflow_step(kind: &'static str, took: Duration) {
    metrics::histogram!(WORKFLOW_STEP_SECONDS, "kind" => kind).record(took.as_secs_f64());
}

/// A health check ended after `took`.
pub fn health_check(up: bool, took: Duration) {
    let result = if up { "up" } else { "down" };
    metrics::histogram!(HEALTH_CHECK_SECONDS, "result" => result).record(took.as_secs_f64());
}

/// A health sweep of every server ended after `took`.
pub fn health_sweep(took: Duration) {
    metrics::histogram!(HEALTH_SWEEP_SECONDS).record(took.as_secs_f64());
}

/// The session lock was released after being held for `held`.
pub fn lock_released(held: Duration) {
    metrics::histogram!(LOCK_HOLD_SECONDS).record(held.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prometheus_conventions_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for m in CATALOGUE {
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(m.name.starts_with("pinkpage_"), "{}", m.name);
            assert!(
                m.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == Counter,
                m.name.ends_with("_total"),
                "{}: counters and only counters end _total",
                m.name
            );
            if m.kind == Histogram {
                assert!(
                    m.name.ends_with("_seconds") || m.name.ends_with("_bytes"),
                    "{}: a unit",
                    m.name
                );
            }
            assert!(m.help.ends_with('.'), "{}", m.name);
        }
    }

    #[test]
    fn every_cap_code_has_a_kind_and_no_other_code_does() {
        use crate::error::ErrorCode as C;
        assert_eq!(
            cap_kind(C::WsTooManyUserConnections),
            Some("websocket_connections_per_user")
        );
        assert_eq!(cap_kind(C::TooManyTerminalsForUser), Some("terminals_per_user"));
        assert_eq!(cap_kind(C::NotFound), None);
        assert_eq!(cap_kind(C::SshCommandFailed), None);
        // each kind names one cap, and the help text names every kind
        let kinds: Vec<_> = cap_kinds().collect();
        let distinct: std::collections::BTreeSet<_> = kinds.iter().collect();
        assert_eq!(kinds.len(), distinct.len(), "{kinds:?}");
        assert_eq!(kinds.len(), 13);
        for kind in kinds {
            let m = CATALOGUE.iter().find(|m| m.name == CAPS_HIT).unwrap();
            assert!(m.help.contains(kind), "{kind} is not in the help text");
        }
    }
}
