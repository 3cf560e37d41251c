//! `HealthMonitorActor`: the live health of every configured server.
//!
//! Owns one [`HealthTracker`] per server; nothing else holds health state
//! except the broadcast registry's copy for welcome messages.
//!
//! What it does:
//! - At start it tells the registry every server is not yet checked
//!   ([`HealthNews::Updated`]), sweeps at once, then sweeps every `interval`
//!   (see [`crate::health::check::sweep`]). A tick that comes while the
//!   previous sweep still runs is skipped and logged: overlapping sweeps
//!   would double the sockets and race each other's results.
//! - Each result is folded in as soon as it arrives. A flip of `is_healthy`
//!   (the first verdict included) is published to every connection
//!   ([`HealthNews::Changed`]) and sent to the history keeper as a [`HealthTransition`].
//!   A failure that leaves the verdict unknown (fewer in a row than the
//!   threshold since start) is published too, with `is_healthy: null` and
//!   its counters, but is no transition. Any other change only refreshes
//!   the registry's copy.
//!
//! Who sends it what: REST handlers send [`GetHealth`] and
//! [`GetServerHealth`]; the daemon sends [`StopMonitor`] at shutdown.
//!
//! When it stops: on [`StopMonitor`] (or with its system). A running sweep
//! is dropped with it, which closes its sockets.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::fut::{wrap_stream, ActorStreamExt};
use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, MessageResult, Recipient,
};

use crate::error::ErrorCode;
use crate::health::check::{ssh_banner_probe, sweep, Probe, Target};
use crate::health::{
    Change, CheckOutcome, HealthNews, HealthTracker, HealthTransition, ServerHealthStatus, Thresholds,
};
use crate::server::ServerSpec;

/// Checks in flight at once where nobody planned them (tests). The daemon
/// plans the number with its descriptors: every server at once, up to a
/// bound (`src/limits/descriptors.rs`), so servers that hang cannot push
/// the others into a second timeout.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// Every server's status, sorted by name.
#[derive(Message)]
#[rtype(result = "Vec<ServerHealthStatus>")]
pub struct GetHealth;

/// One server's status; `None` when no server has that name.
#[derive(Message)]
#[rtype(result = "Option<ServerHealthStatus>")]
pub struct GetServerHealth {
    /// Configured server name.
    pub name: String,
}

/// New servers or a new way of checking them (a reload of the daemon's
/// configuration). A server whose name, host and port stay keeps its
/// verdict and counters; a new or moved one starts unchecked; a removed
/// one is forgotten and its health leaves the broadcasts
/// ([`HealthNews::Removed`]). A sweep already running finishes with the
/// servers it started with; results of a server removed meanwhile are
/// dropped. A new interval starts counting now; new thresholds start
/// every server's verdict afresh (counters made under the old ones would
/// mean something else).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconfigure {
    /// Every server to check from now on.
    pub servers: Vec<ServerSpec>,
    /// How.
    pub config: HealthConfig,
}

/// Stops monitoring (daemon shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopMonitor;

/// How the monitor checks.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Time between the starts of two sweeps.
    pub interval: Duration,
    /// One check's timeout (TCP connect + banner).
    pub timeout: Duration,
    /// Results in a row that flip a verdict.
    pub thresholds: Thresholds,
    /// Checks in flight at once.
    pub max_in_flight: usize,
}

/// The monitor. See the module docs.
pub struct HealthMonitorActor {
    /// Servers in name order, as checks see them.
    targets: Vec<Target>,
    /// One verdict per server, by name.
    trackers: BTreeMap<String, HealthTracker>,
    config: HealthConfig,
    /// Whoever shows health to clients (the broadcast registry): told
    /// every status, and which to announce.
    news: Recipient<HealthNews>,
    /// Where flips are recorded (the daemon's store).
    transitions: Recipient<HealthTransition>,
    /// How a server is checked; replaced in tests.
    probe: Probe,
    /// Whether a sweep is running; a tick never starts a second one.
    sweeping: bool,
    /// The tick that starts sweeps, replaced when the interval changes.
    ticks: Option<actix::SpawnHandle>,
}

impl HealthMonitorActor {
    /// A monitor of `servers` that checks their SSH banners.
    pub fn new<'a>(
        servers: impl IntoIterator<Item = &'a ServerSpec>,
        config: HealthConfig,
        news: Recipient<HealthNews>,
        transitions: Recipient<HealthTransition>,
    ) -> Self {
        Self::with_targets(targets_of(servers), config, news, transitions, ssh_banner_probe())
    }

    /// A monitor of `targets` checked by `probe` (tests use probes that
    /// hang or answer on cue).
    pub fn with_targets(
        mut targets: Vec<Target>,
        config: HealthConfig,
        news: Recipient<HealthNews>,
        transitions: Recipient<HealthTransition>,
        probe: Probe,
    ) -> Self {
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        let trackers = targets
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    HealthTracker::new(&t.name, &t.host, config.thresholds),
                )
            })
            .collect();
        HealthMonitorActor {
            targets,
            trackers,
            config,
            news,
            transitions,
            probe,
            sweeping: false,
            ticks: None,
        }
    }

    fn start_sweep(&mut self, ctx: &mut Context<Self>) {
        if self.sweeping {
            log::warn!(
                interval_s = self.config.interval.as_secs_f64(),
                timeout_s = self.config.timeout.as_secs_f64();
                "health sweep still running at the next tick; tick skipped"
            );
            return;
        }
        self.sweeping = true;
        let started = tokio::time::Instant::now();
        let results = sweep(
            self.targets.clone(),
            self.probe.clone(),
            self.config.timeout,
            self.config.max_in_flight,
        );
        let sweep = wrap_stream::<_, Self>(results)
            .map(|(target, outcome), act, _| act.record(&target, outcome))
            .finish()
            .map(move |(), act, _| {
                act.sweeping = false;
                crate::metrics::health_sweep(started.elapsed());
                log::debug!(
                    servers = act.targets.len(),
                    duration_ms = started.elapsed().as_secs_f64() * 1000.0;
                    "health sweep finished"
                );
            });
        ctx.spawn(sweep);
    }

    /// Folds one result in and tells whoever needs to know.
    fn record(&mut self, target: &Target, outcome: CheckOutcome) {
        let Some(tracker) = self.trackers.get_mut(&target.name) else {
            return;
        };
        if let CheckOutcome::Down { error } = &outcome {
            log::debug!(
                code = ErrorCode::HealthCheckFailed.code(),
                server = target.name.as_str(),
                error = error.as_str();
                "health check failed"
            );
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let change = tracker.record(&outcome, now);
        let status = tracker.status().clone();
        match change {
            Change::Updated => self.news.do_send(HealthNews::Updated(status)),
            Change::Pending => {
                log::info!(
                    server = status.server_name.as_str(),
                    consecutive_failures = status.consecutive_failures,
                    threshold = self.config.thresholds.failures;
                    "server failed its check; health unknown until the threshold"
                );
                // announcing also remembers it for welcome messages
                self.news.do_send(HealthNews::Changed(status));
            }
            Change::Flipped { previous } => {
                if status.is_healthy == Some(false) {
                    log::warn!(
                        code = ErrorCode::HealthCheckFailed.code(),
                        server = status.server_name.as_str(),
                        error = status.last_error.as_deref().unwrap_or_default();
                        "server is unhealthy"
                    );
                } else {
                    log::info!(server = status.server_name.as_str(); "server is healthy");
                }
                self.news.do_send(HealthNews::Changed(status.clone()));
                self.transitions.do_send(HealthTransition { status, previous });
            }
        }
    }
}

impl Actor for HealthMonitorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for tracker in self.trackers.values() {
            self.news.do_send(HealthNews::Updated(tracker.status().clone()));
        }
        log::info!(
            servers = self.targets.len(),
            interval_s = self.config.interval.as_secs_f64(),
            timeout_s = self.config.timeout.as_secs_f64();
            "health monitor started"
        );
        self.start_sweep(ctx);
        self.ticks = Some(ctx.run_interval(self.config.interval, |act, ctx| act.start_sweep(ctx)));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        log::info!("health monitor stopped");
    }
}

impl Handler<GetHealth> for HealthMonitorActor {
    type Result = MessageResult<GetHealth>;

    fn handle(&mut self, _: GetHealth, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.trackers.values().map(|t| t.status().clone()).collect())
    }
}

impl Handler<GetServerHealth> for HealthMonitorActor {
    type Result = Option<ServerHealthStatus>;

    fn handle(&mut self, msg: GetServerHealth, _: &mut Context<Self>) -> Self::Result {
        self.trackers.get(&msg.name).map(|t| t.status().clone())
    }
}

impl Handler<Reconfigure> for HealthMonitorActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Context<Self>) {
        let mut targets = targets_of(&msg.servers);
        targets.sort_by(|a, b| a.name.cmp(&b.name));
        let thresholds_moved = msg.config.thresholds != self.config.thresholds;
        let mut trackers = BTreeMap::new();
        for target in &targets {
            let same = self
                .targets
                .iter()
                .any(|t| t.name == target.name && t.host == target.host && t.port == target.port);
            let kept = same && !thresholds_moved;
            let tracker = match self.trackers.remove(&target.name) {
                Some(tracker) if kept => tracker,
                _ => {
                    let fresh = HealthTracker::new(&target.name, &target.host, msg.config.thresholds);
                    self.news.do_send(HealthNews::Updated(fresh.status().clone()));
                    fresh
                }
            };
            trackers.insert(target.name.clone(), tracker);
        }
        for gone in std::mem::take(&mut self.trackers).into_keys() {
            self.news.do_send(HealthNews::Removed(gone));
        }
        let interval_moved = msg.config.interval != self.config.interval;
        log::info!(
            servers = targets.len(),
            interval_s = msg.config.interval.as_secs_f64(),
            timeout_s = msg.config.timeout.as_secs_f64();
            "health monitor reconfigured"
        );
        self.targets = targets;
        self.trackers = trackers;
        self.config = msg.config;
        if interval_moved {
            if let Some(ticks) = self.ticks.take() {
                ctx.cancel_future(ticks);
            }
            self.ticks = Some(ctx.run_interval(self.config.interval, |act, ctx| act.start_sweep(ctx)));
        }
        // new servers are checked now, not an interval from now
        self.start_sweep(ctx);
    }
}

/// What a check needs of each server.
fn targets_of<'a>(servers: impl IntoIterator<Item = &'a ServerSpec>) -> Vec<Target> {
    servers
        .into_iter()
        .map(|s| Target {
            name: s.name.clone(),
            host: s.host.clone(),
            port: s.port,
        })
        .collect()
}

impl Handler<StopMonitor> for HealthMonitorActor {
    type Result = ();

    fn handle(&mut self, _: StopMonitor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
#[path = "monitor_tests.rs"]
mod tests;
