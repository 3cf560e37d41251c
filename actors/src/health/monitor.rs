//! `HealthMonitorActor`: the live health of every configured server.
//!
//! Owns one [`HealthTracker`] per server; nothing else holds health state
//! except the broadcast registry's copy for welcome messages.
//!
//! What it does:
//! - At start it tells the registry every server is not yet checked
//!   ([`RememberHealth`]), sweeps at once, then sweeps every `interval`
//!   (see [`crate::health::check::sweep`]). A tick that comes while the
//!   previous sweep still runs is skipped and logged: overlapping sweeps
//!   would double the sockets and race each other's results.
//! - Each result is folded in as soon as it arrives. A flip of `is_healthy`
//!   (the first verdict included) is published to every connection
//!   ([`Publish`]) and sent to the history keeper as a [`HealthTransition`].
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
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, MessageResult,
    Recipient,
};

use crate::broadcast::{BroadcastActor, Event, Publish, RememberHealth};
use crate::error::ErrorCode;
use crate::health::check::{ssh_banner_probe, sweep, Probe, Target};
use crate::health::{Change, CheckOutcome, HealthTracker, HealthTransition, ServerHealthStatus, Thresholds};
use crate::server::ServerSpec;

/// Checks in flight at once; enough for a large fleet in one timeout while
/// keeping the daemon's open sockets bounded.
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
    /// Where flips are published and every status is remembered.
    broadcast: Addr<BroadcastActor>,
    /// Where flips are recorded (the daemon's store).
    transitions: Recipient<HealthTransition>,
    /// How a server is checked; replaced in tests.
    probe: Probe,
    /// Whether a sweep is running; a tick never starts a second one.
    sweeping: bool,
}

impl HealthMonitorActor {
    /// A monitor of `servers` that checks their SSH banners.
    pub fn new<'a>(
        servers: impl IntoIterator<Item = &'a ServerSpec>,
        config: HealthConfig,
        broadcast: Addr<BroadcastActor>,
        transitions: Recipient<HealthTransition>,
    ) -> Self {
        let targets: Vec<Target> = servers
            .into_iter()
            .map(|s| Target {
                name: s.name.clone(),
                host: s.host.clone(),
                port: s.port,
            })
            .collect();
        Self::with_targets(targets, config, broadcast, transitions, ssh_banner_probe())
    }

    /// A monitor of `targets` checked by `probe` (tests use probes that
    /// hang or answer on cue).
    pub fn with_targets(
        mut targets: Vec<Target>,
        config: HealthConfig,
        broadcast: Addr<BroadcastActor>,
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
            broadcast,
            transitions,
            probe,
            sweeping: false,
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
            Change::Updated => self.broadcast.do_send(RememberHealth(status)),
            Change::Pending => {
                log::info!(
                    server = status.server_name.as_str(),
                    consecutive_failures = status.consecutive_failures,
                    threshold = self.config.thresholds.failures;
                    "server failed its check; health unknown until the threshold"
                );
                // publishing also remembers it for welcome messages
                self.broadcast.do_send(Publish(Event::ServerHealth(status)));
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
                self.broadcast
                    .do_send(Publish(Event::ServerHealth(status.clone())));
                self.transitions.do_send(HealthTransition { status, previous });
            }
        }
    }
}

impl Actor for HealthMonitorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        for tracker in self.trackers.values() {
            self.broadcast.do_send(RememberHealth(tracker.status().clone()));
        }
        log::info!(
            servers = self.targets.len(),
            interval_s = self.config.interval.as_secs_f64(),
            timeout_s = self.config.timeout.as_secs_f64();
            "health monitor started"
        );
        self.start_sweep(ctx);
        ctx.run_interval(self.config.interval, |act, ctx| act.start_sweep(ctx));
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

impl Handler<StopMonitor> for HealthMonitorActor {
    type Result = ();

    fn handle(&mut self, _: StopMonitor, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::Join;
    use crate::ids::ConnectionId;
    use futures_util::FutureExt;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::sync::mpsc;
    use tokio::time::{sleep, Instant};

    /// Forwards every message it gets into a channel a test can await.
    struct Tap<M>(mpsc::UnboundedSender<M>);
    impl<M: Message<Result = ()> + Unpin + 'static> Actor for Tap<M> {
        type Context = Context<Self>;
    }
    impl<M: Message<Result = ()> + Unpin + 'static> Handler<M> for Tap<M> {
        type Result = ();
        fn handle(&mut self, m: M, _: &mut Context<Self>) {
            let _ = self.0.send(m);
        }
    }
    fn tap<M: Message<Result = ()> + Unpin + Send + 'static>() -> (Recipient<M>, mpsc::UnboundedReceiver<M>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Tap(tx).start().recipient(), rx)
    }

    fn targets(n: usize) -> Vec<Target> {
        (0..n)
            .map(|i| Target {
                name: format!("s{i:03}"),
                host: "127.0.0.1".into(),
                port: 22,
            })
            .collect()
    }

    fn config(interval_ms: u64, timeout_ms: u64) -> HealthConfig {
        HealthConfig {
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(timeout_ms),
            thresholds: Thresholds::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }

    /// Answers from a script the test can change: `true` up, `false` down,
    /// absent hangs. Counts its calls.
    fn scripted(script: Arc<Mutex<HashMap<String, bool>>>, calls: Arc<AtomicUsize>) -> Probe {
        Arc::new(move |t: Target, _| {
            calls.fetch_add(1, Ordering::SeqCst);
            let answer = script.lock().unwrap().get(&t.name).copied();
            async move {
                match answer {
                    Some(true) => CheckOutcome::Up {
                        latency: Duration::from_millis(1),
                    },
                    Some(false) => CheckOutcome::Down {
                        error: "connection refused".into(),
                    },
                    None => futures_util::future::pending().await,
                }
            }
            .boxed()
        })
    }

    fn health_of(e: Event) -> ServerHealthStatus {
        match e {
            Event::ServerHealth(s) => s,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[actix::test]
    async fn every_server_is_not_yet_checked_before_its_first_result() {
        tokio::time::pause();
        let registry = BroadcastActor::default().start();
        let (transitions, _rx) = tap::<HealthTransition>();
        let probe = scripted(Arc::default(), Arc::default());
        let monitor = HealthMonitorActor::with_targets(
            targets(3),
            config(30_000, 5_000),
            registry.clone(),
            transitions,
            probe,
        )
        .start();

        let all = monitor.send(GetHealth).await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(all
            .iter()
            .all(|s| s.is_healthy.is_none() && s.last_checked.is_none()));
        let (events, _rx) = tap::<Event>();
        let snapshot = registry
            .send(Join {
                id: ConnectionId::new(),
                recipient: events,
            })
            .await
            .unwrap();
        assert_eq!(snapshot.health.len(), 3);
        assert!(snapshot.health.values().all(|s| s.is_healthy.is_none()));
    }

    #[actix::test]
    async fn a_sweep_of_hanging_checks_completes_in_one_timeout() {
        tokio::time::pause();
        let registry = BroadcastActor::default().start();
        let (transitions, _rx) = tap::<HealthTransition>();
        let probe = scripted(Arc::default(), Arc::default());
        let t0 = Instant::now();
        // Issue 16 item 8: one failure no longer decides a new server, so
        // this timing test asks for a threshold of one to keep its verdict.
        let config = HealthConfig {
            thresholds: Thresholds {
                failures: 1,
                successes: 1,
            },
            ..config(60_000, 5_000)
        };
        let monitor =
            HealthMonitorActor::with_targets(targets(64), config, registry, transitions, probe).start();

        sleep(Duration::from_millis(4_999) - t0.elapsed()).await;
        let all = monitor.send(GetHealth).await.unwrap();
        assert!(all.iter().all(|s| s.last_checked.is_none()));
        sleep(Duration::from_millis(2)).await;
        let all = monitor.send(GetHealth).await.unwrap();
        assert!(all.iter().all(|s| s.is_healthy == Some(false)), "{all:?}");
    }

    // Issue 16 item 8 changed this test: s001, down from the start, used to
    // be published unhealthy by its first result; now its first failure is
    // published with `is_healthy: null` and its counter, and the second one
    // (the threshold) is its first verdict and first transition.
    #[actix::test]
    async fn the_first_verdict_and_every_flip_are_published_and_recorded() {
        tokio::time::pause();
        let registry = BroadcastActor::default().start();
        let (events, mut events_rx) = tap::<Event>();
        registry
            .send(Join {
                id: ConnectionId::new(),
                recipient: events,
            })
            .await
            .unwrap();
        let (transitions, mut transitions_rx) = tap::<HealthTransition>();
        let script = Arc::new(Mutex::new(HashMap::from([
            ("s000".to_owned(), true),
            ("s001".to_owned(), false),
        ])));
        let probe = scripted(script.clone(), Arc::default());
        let monitor =
            HealthMonitorActor::with_targets(targets(2), config(10_000, 1_000), registry, transitions, probe)
                .start();

        let mut first = [
            health_of(events_rx.recv().await.unwrap()),
            health_of(events_rx.recv().await.unwrap()),
        ];
        first.sort_by(|a, b| a.server_name.cmp(&b.server_name));
        assert_eq!(first[0].is_healthy, Some(true));
        assert_eq!(first[1].is_healthy, None, "one failure is not a verdict");
        assert_eq!(first[1].consecutive_failures, 1);
        let t = transitions_rx.recv().await.unwrap();
        assert_eq!((t.status.server_name.as_str(), t.previous), ("s000", None));

        // s000 goes down: one failure is not enough, the second flips it.
        // s001's second failure is its first verdict; after that it keeps
        // failing and is never published again.
        script.lock().unwrap().insert("s000".to_owned(), false);
        let t0 = Instant::now();
        let s001 = health_of(events_rx.recv().await.unwrap());
        assert_eq!(
            (
                s001.server_name.as_str(),
                s001.is_healthy,
                s001.consecutive_failures
            ),
            ("s001", Some(false), 2)
        );
        let t = transitions_rx.recv().await.unwrap();
        assert_eq!((t.status.server_name.as_str(), t.previous), ("s001", None));
        let flip = health_of(events_rx.recv().await.unwrap());
        assert_eq!(
            (flip.server_name.as_str(), flip.is_healthy),
            ("s000", Some(false))
        );
        assert_eq!(flip.consecutive_failures, 2);
        assert!(
            t0.elapsed() >= Duration::from_secs(10),
            "flipped after one failure"
        );
        let t = transitions_rx.recv().await.unwrap();
        assert_eq!((t.status.server_name.as_str(), t.previous), ("s000", Some(true)));

        let s001 = monitor
            .send(GetServerHealth { name: "s001".into() })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s001.consecutive_failures, 3);
        assert!(monitor
            .send(GetServerHealth { name: "nope".into() })
            .await
            .unwrap()
            .is_none());
    }

    #[actix::test]
    async fn a_tick_is_skipped_while_the_previous_sweep_runs() {
        tokio::time::pause();
        let registry = BroadcastActor::default().start();
        let (transitions, _rx) = tap::<HealthTransition>();
        let calls = Arc::new(AtomicUsize::new(0));
        let probe = scripted(Arc::default(), calls.clone());
        let t0 = Instant::now();
        // Checks hang for the whole 2.5 s timeout; ticks come every second.
        let _monitor =
            HealthMonitorActor::with_targets(targets(5), config(1_000, 2_500), registry, transitions, probe)
                .start();

        sleep(Duration::from_millis(2_900) - t0.elapsed()).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            5,
            "ticks at 1 s and 2 s must be skipped"
        );
        sleep(Duration::from_millis(3_100) - t0.elapsed()).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            10,
            "the tick at 3 s starts the next sweep"
        );
    }

    #[actix::test]
    async fn stop_monitor_stops_the_actor_and_its_sweep() {
        tokio::time::pause();
        let registry = BroadcastActor::default().start();
        let (transitions, _rx) = tap::<HealthTransition>();
        let calls = Arc::new(AtomicUsize::new(0));
        let probe = scripted(Arc::default(), calls.clone());
        let monitor =
            HealthMonitorActor::with_targets(targets(2), config(1_000, 500), registry, transitions, probe)
                .start();
        sleep(Duration::from_millis(100)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the first sweep runs at start");
        monitor.send(StopMonitor).await.unwrap();
        sleep(Duration::from_secs(5)).await;
        assert!(!monitor.connected());
        assert_eq!(calls.load(Ordering::SeqCst), 2, "no sweep after the stop");
    }
}
