//! Reloading the configuration while the daemon serves: SIGHUP, and
//! `POST /api/v1/admin/reload` (admins).
//!
//! A reload reads `.env` again (over the process environment as the daemon
//! started with it, which cannot change: `settings::dotenv::reread`) and
//! the servers file, and builds the whole [`Settings`] from them with the
//! same checks as at start. An invalid configuration changes nothing: the
//! answer (and the log line, and the audit row) says why, with 10012.
//!
//! Only what [`LIVE`] names takes effect; a change to any other setting
//! is reported as needing a restart and left as it was (so no reader ever
//! sees a value the daemon does not act on). What takes effect:
//! - the servers, transfers, workflows and command rules: new work uses
//!   them at once; work already running keeps the configuration it started
//!   with, except that a server whose tags changed or that was removed, and
//!   a change of the command rules, are access changes (WAVE2): running
//!   work is judged again and what is now out of scope stops with 10010,
//!   and typed lines and workflow steps meet the new rules;
//! - the health checks: new servers are checked at once, a removed one
//!   leaves the health broadcasts, a new interval, timeout or threshold
//!   applies from now (`HealthMonitorActor`'s `Reconfigure`);
//! - the WebSocket caps (lowered below current use: new connections are
//!   refused until use falls; never raised past what the descriptor plan
//!   made at start allows), the operations per connection, and the
//!   operator terminals a user and the daemon may have;
//! - how long a command held for review waits (holds made after it);
//! - the recordings' settings (new PTYs, the next retention sweep), and
//!   the retention of runs, health history and the audit trail (the next
//!   sweep; a new interval after the wait under way).
//!
//! Every reload is audited (`config.reload`, with a summary of what
//! changed, or why nothing did) and logged. The TLS certificate and key
//! are read again too (`crate::tls`): new connections get a renewed
//! certificate, open ones (WebSockets among them) keep theirs.

use std::collections::BTreeSet;
use std::sync::Arc;

use pinkpage_actors::broadcast::{Event, Publish};
use pinkpage_actors::health::monitor::{HealthConfig, Reconfigure};
use pinkpage_actors::health::Thresholds;
use pinkpage_actors::{AppError, ErrorCode};
use serde::Serialize;

use crate::records::audit::{NewAuditEvent, Outcome};
use crate::settings::dotenv::{self, Reread};
use crate::settings::live::Updating;
use crate::settings::{Settings, SETTINGS};
use crate::state::AppState;

/// The variables a reload applies; a change to any other needs a restart.
pub const LIVE: &[&str] = &[
    // the servers (the seed's variables and the servers file)
    "PINKPAGE_SERVERS_FILE",
    "HIWARE_ID",
    "HIWARE_PW",
    "MDWAP1P_IP",
    "MYPAP1D_IP",
    "MDWAP1P_PORT",
    "MYPAP1D_PORT",
    "MDWAP1P_COMMAND_MODE",
    "MYPAP1D_COMMAND_MODE",
    "MDWAP1P_ENCODING",
    "MYPAP1D_ENCODING",
    // health checks
    "PINKPAGE_HEALTH_INTERVAL_S",
    "PINKPAGE_HEALTH_TIMEOUT_S",
    "PINKPAGE_HEALTH_FAILURES",
    "PINKPAGE_HEALTH_SUCCESSES",
    // caps
    "PINKPAGE_WS_MAX_CONNECTIONS",
    "PINKPAGE_WS_MAX_CONNECTIONS_PER_USER",
    "PINKPAGE_WS_MAX_OPS_PER_CONNECTION",
    "PINKPAGE_TERMINALS_PER_USER",
    "PINKPAGE_TERMINALS_MAX",
    // command review
    "PINKPAGE_REVIEW_TIMEOUT_S",
    // recordings and their retention
    "PINKPAGE_RECORD_INPUT",
    "PINKPAGE_RECORD_FAIL_OPEN",
    "PINKPAGE_RECORDINGS_MAX_AGE_DAYS",
    "PINKPAGE_RECORDINGS_MAX_BYTES",
    // retention of runs, health history and the audit trail
    "PINKPAGE_RETENTION_DAYS",
    "PINKPAGE_AUDIT_RETENTION_DAYS",
    "PINKPAGE_RETENTION_INTERVAL_S",
];

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// What changed, one line each ("server 'db3' added", "command rules
    /// changed", "PINKPAGE_HEALTH_INTERVAL_S changed"); empty when
    /// nothing did.
    pub changes: Vec<String>,
    /// Variables that changed but only take effect after a restart; left
    /// as they were.
    pub restart_needed: Vec<String>,
    /// Whether running work was judged again (a server's tags changed, a
    /// server was removed, or the command rules changed).
    pub access_changed: bool,
}

/// Who asked for a reload, for the audit row and the log.
#[derive(Debug, Clone)]
pub struct Asker {
    /// `signal` for SIGHUP, `rest` for the route.
    pub actor: &'static str,
    /// The signed-in user, for the route.
    pub user: Option<String>,
    /// Where from.
    pub remote: Option<String>,
}

impl Asker {
    /// SIGHUP.
    pub fn signal() -> Asker {
        Asker {
            actor: "signal",
            user: None,
            remote: None,
        }
    }
}

/// Reloads (see the module docs). `Err` (10012) when the new configuration
/// is not valid: nothing changed.
pub fn reload(state: &AppState, asker: &Asker) -> Result<Reloaded, AppError> {
    let mut updating = state.live.update();
    let result = dotenv::reread()
        .map_err(|e| format!(".env: {e}"))
        .and_then(|env| {
            Settings::from_lookup(|name| env.get(name))
                .map(|read| (env, read))
                .map_err(|e| e.to_string())
        })
        .and_then(|(env, read)| {
            // the certificate files are read again too, at the paths the
            // daemon started with
            let renewal = match &state.tls {
                Some(tls) => Some(tls.reread().map_err(|e| format!("PINKPAGE_TLS_CERT: {e}"))?),
                None => None,
            };
            Ok((env, read, renewal))
        });
    let (env, read, renewal) = match result {
        Ok(ok) => ok,
        Err(why) => {
            drop(updating);
            log::error!(actor = asker.actor, error = why.as_str(); "reload refused: the configuration is not valid; nothing changed");
            audit(state, asker, Err(&why));
            return Err(AppError::with_detail(ErrorCode::ConfigInvalid, why));
        }
    };
    let old = state.live.current();
    let changed_vars: BTreeSet<&'static str> = SETTINGS
        .iter()
        .map(|doc| doc.name)
        .filter(|name| updating.before(name) != env.get(name))
        .collect();
    let (next, mut report) = merge(&old, read, &changed_vars, state.connections.ws_max_bound());
    if let (Some(tls), Some(renewal)) = (&state.tls, renewal) {
        if let Some(fingerprint) = tls.install(renewal) {
            report
                .changes
                .push(format!("TLS certificate renewed ({fingerprint})"));
        }
    }
    let next = Arc::new(next);
    updating.replace(next.clone(), env_for_next(env, &changed_vars, &updating));
    apply(state, &next);
    drop(updating);
    if report.access_changed {
        state.broadcast.do_send(Publish(Event::AccessChanged));
    }
    log::info!(actor = asker.actor, changes = report.changes.join("; ").as_str(),
        restart_needed = report.restart_needed.join(", ").as_str(), access_changed = report.access_changed;
        "configuration reloaded");
    audit(state, asker, Ok(&report));
    Ok(report)
}

/// The `.env` the next reload compares with: the one just read, except
/// that a changed variable a reload does not apply (not in [`LIVE`]) keeps
/// its old value there, so the next reload reports it again.
fn env_for_next(env: Reread, changed: &BTreeSet<&'static str>, updating: &Updating<'_>) -> Reread {
    let waiting: Vec<(&'static str, Option<String>)> = changed
        .iter()
        .filter(|name| !LIVE.contains(name))
        .map(|name| (*name, updating.before(name)))
        .collect();
    env.with_overrides(waiting)
}

/// The settings from now on: `old` with what [`LIVE`] covers taken from
/// `read`; and the report.
fn merge(
    old: &Settings,
    read: Settings,
    changed_vars: &BTreeSet<&'static str>,
    ws_bound: usize,
) -> (Settings, Reloaded) {
    let mut report = Reloaded::default();
    for name in changed_vars {
        if LIVE.contains(name) {
            // the servers' own variables show as server changes below
            if name.starts_with("PINKPAGE_") && *name != "PINKPAGE_SERVERS_FILE" {
                report.changes.push(format!("{name} changed"));
            }
        } else {
            report.restart_needed.push((*name).to_owned());
        }
    }
    if changed_vars.contains("PINKPAGE_WS_MAX_CONNECTIONS") && read.caps.ws_max > ws_bound {
        report.restart_needed.push(format!(
            "PINKPAGE_WS_MAX_CONNECTIONS above {ws_bound} (the descriptor plan made at start)"
        ));
    }

    for (name, new) in &read.servers {
        match old.servers.get(name) {
            None => report.changes.push(format!("server '{name}' added")),
            Some(was) => {
                if was.tags != new.tags {
                    report.access_changed = true;
                    report.changes.push(format!("server '{name}' tags changed"));
                }
                if !same_connection(was, new) {
                    report.changes.push(format!("server '{name}' changed"));
                }
            }
        }
    }
    for name in old.servers.keys().filter(|n| !read.servers.contains_key(*n)) {
        report.access_changed = true;
        report.changes.push(format!("server '{name}' removed"));
    }
    named_changes(
        &mut report.changes,
        "transfer",
        &old.transfers,
        &read.transfers,
        |a, b| a == b,
    );
    named_changes(
        &mut report.changes,
        "workflow",
        &old.workflows,
        &read.workflows,
        |a, b| format!("{a:?}") == format!("{b:?}"),
    );
    if format!("{:?}", old.command_policy) != format!("{:?}", read.command_policy) {
        report.access_changed = true;
        report.changes.push("command rules changed".to_owned());
    }

    let mut next = old.clone();
    next.servers = read.servers;
    next.transfers = read.transfers;
    next.workflows = read.workflows;
    next.command_policy = read.command_policy;
    next.health_interval = read.health_interval;
    next.health_timeout = read.health_timeout;
    next.health_failures = read.health_failures;
    next.health_successes = read.health_successes;
    next.caps.ws_max = read.caps.ws_max.min(ws_bound);
    next.caps.ws_max_per_user = read.caps.ws_max_per_user;
    next.caps.ops_per_connection = read.caps.ops_per_connection;
    next.terminals.per_user = read.terminals.per_user;
    next.terminals.max = read.terminals.max;
    next.review_timeout = read.review_timeout;
    next.recordings = read.recordings;
    next.retention = read.retention;
    (next, report)
}

/// Whether two definitions of a server reach it the same way (address,
/// login, credential, how commands run); its tags are judged apart.
fn same_connection(a: &pinkpage_actors::server::ServerSpec, b: &pinkpage_actors::server::ServerSpec) -> bool {
    use pinkpage_actors::server::Auth;
    let auth = match (&a.auth, &b.auth) {
        (Auth::Password(x), Auth::Password(y)) => x.expose() == y.expose(),
        (
            Auth::KeyFile {
                path: p,
                passphrase: x,
            },
            Auth::KeyFile {
                path: q,
                passphrase: y,
            },
        ) => p == q && x.as_ref().map(|s| s.expose()) == y.as_ref().map(|s| s.expose()),
        _ => false,
    };
    auth && a.host == b.host
        && a.port == b.port
        && a.username == b.username
        && a.host_key_fingerprint == b.host_key_fingerprint
        && a.encoding == b.encoding
        && a.command_mode == b.command_mode
        && a.record == b.record
}

/// "`kind` 'name' added / removed / changed" lines.
fn named_changes<T>(
    into: &mut Vec<String>,
    kind: &str,
    old: &std::collections::BTreeMap<String, Arc<T>>,
    new: &std::collections::BTreeMap<String, Arc<T>>,
    same: impl Fn(&T, &T) -> bool,
) {
    for (name, n) in new {
        match old.get(name) {
            None => into.push(format!("{kind} '{name}' added")),
            Some(o) if !same(o, n) => into.push(format!("{kind} '{name}' changed")),
            Some(_) => {}
        }
    }
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        into.push(format!("{kind} '{name}' removed"));
    }
}

/// Tells the parts that keep their own copy.
fn apply(state: &AppState, next: &Settings) {
    state.health.do_send(Reconfigure {
        servers: next.servers.values().map(|s| (**s).clone()).collect(),
        config: health_config(next, state.health_in_flight),
    });
    state
        .connections
        .set_caps(next.caps.ws_max, next.caps.ws_max_per_user);
    state.recordings.set_settings(next.recordings.clone());
    state
        .terminals
        .set_limits(next.terminals.per_user, next.terminals.max);
    state.reviews.set_timeout(next.review_timeout);
}

fn audit(state: &AppState, asker: &Asker, outcome: Result<&Reloaded, &str>) {
    let mut row = NewAuditEvent::new(asker.actor, "config.reload")
        .by(asker.user.as_deref(), asker.remote.clone())
        .in_domain("daemon");
    match outcome {
        Ok(report) => {
            row.detail = Some(serde_json::json!({
                "changes": report.changes,
                "restart_needed": report.restart_needed,
                "access_changed": report.access_changed,
            }));
        }
        Err(why) => {
            row.ended(Outcome::Failed, Some(ErrorCode::ConfigInvalid.code()));
            row.detail = Some(serde_json::json!({ "error": why }));
        }
    }
    state.journal.audit(row);
}

/// How the health monitor checks, from `settings`, with at most
/// `in_flight` checks at once (planned at start with the descriptors).
pub fn health_config(settings: &Settings, in_flight: usize) -> HealthConfig {
    HealthConfig {
        interval: settings.health_interval,
        timeout: settings.health_timeout,
        thresholds: Thresholds {
            failures: settings.health_failures,
            successes: settings.health_successes,
        },
        max_in_flight: in_flight,
    }
}
