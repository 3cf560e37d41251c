//! Tests of the `HealthMonitorActor` under paused time, with probes that
//! answer on cue or hang; apart from the actor so each file reads in one
//! sitting.

use super::*;
use crate::broadcast::{BroadcastActor, Event, Join};
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
        Event::ServerHealth(s) => (*s).clone(),
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
        registry.clone().recipient(),
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
    let monitor = HealthMonitorActor::with_targets(
        targets(64),
        config,
        registry.clone().recipient(),
        transitions,
        probe,
    )
    .start();

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
    let monitor = HealthMonitorActor::with_targets(
        targets(2),
        config(10_000, 1_000),
        registry.clone().recipient(),
        transitions,
        probe,
    )
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
    let _monitor = HealthMonitorActor::with_targets(
        targets(5),
        config(1_000, 2_500),
        registry.clone().recipient(),
        transitions,
        probe,
    )
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
    let monitor = HealthMonitorActor::with_targets(
        targets(2),
        config(1_000, 500),
        registry.clone().recipient(),
        transitions,
        probe,
    )
    .start();
    sleep(Duration::from_millis(100)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the first sweep runs at start");
    monitor.send(StopMonitor).await.unwrap();
    sleep(Duration::from_secs(5)).await;
    assert!(!monitor.connected());
    assert_eq!(calls.load(Ordering::SeqCst), 2, "no sweep after the stop");
}

fn spec(name: &str, port: u16) -> ServerSpec {
    ServerSpec::for_tests(name, "127.0.0.1", port)
}

#[actix::test]
async fn a_reconfigure_keeps_the_verdicts_of_servers_that_stay_checks_new_ones_at_once_and_forgets_removed_ones(
) {
    tokio::time::pause();
    let (news, mut news_rx) = tap::<HealthNews>();
    let (transitions, _rx) = tap::<HealthTransition>();
    let script: Arc<Mutex<HashMap<String, bool>>> = Arc::default();
    for name in ["s000", "s001", "s002"] {
        script.lock().unwrap().insert(name.into(), true);
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let kept = |name: &str| Target {
        name: name.into(),
        host: "127.0.0.1".into(),
        port: 22,
    };
    let monitor = HealthMonitorActor::with_targets(
        vec![kept("s000"), kept("s001")],
        config(60_000, 5_000),
        news,
        transitions,
        scripted(script.clone(), calls.clone()),
    )
    .start();
    let all = eventually_healthy(&monitor, 2).await;
    let s000_checked = all[0].last_checked.clone();

    // s001 removed, s002 added, s000 stays; a far longer interval
    monitor
        .send(Reconfigure {
            servers: vec![spec("s000", 22), spec("s002", 22)],
            config: config(3_600_000, 5_000),
        })
        .await
        .unwrap();
    let all = eventually_healthy(&monitor, 2).await;
    let names: Vec<&str> = all.iter().map(|s| s.server_name.as_str()).collect();
    assert_eq!(names, ["s000", "s002"]);
    // s000 kept its verdict through the change (checked again with the
    // new servers, healthy all along)
    assert_eq!(all[0].is_healthy, Some(true));
    assert!(all[0].last_checked >= s000_checked);
    let mut removed = Vec::new();
    while let Ok(n) = news_rx.try_recv() {
        if let HealthNews::Removed(name) = n {
            removed.push(name);
        }
    }
    assert_eq!(removed, ["s001"]);
    // the new interval: no sweep for the next 59 minutes
    let after = calls.load(Ordering::SeqCst);
    sleep(Duration::from_secs(59 * 60)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        after,
        "the old interval still ticks"
    );
}

/// The statuses once `n` servers are healthy.
async fn eventually_healthy(monitor: &actix::Addr<HealthMonitorActor>, n: usize) -> Vec<ServerHealthStatus> {
    for _ in 0..1000 {
        let all = monitor.send(GetHealth).await.unwrap();
        if all.iter().filter(|s| s.is_healthy == Some(true)).count() == n && all.len() == n {
            return all;
        }
        sleep(Duration::from_millis(1)).await;
    }
    panic!("{n} servers never became healthy");
}
