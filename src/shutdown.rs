//! Graceful shutdown on SIGTERM or SIGINT, within
//! `PINKPAGE_SHUTDOWN_GRACE_S` (default 10 s), in this order:
//! 1. stop accepting connections; tell systemd `STOPPING=1`;
//! 2. tell every WebSocket client (a `shutdown` frame with 30004, then a
//!    close frame, code 1012 "service restart"), which stops the
//!    connection's tasks as any disconnect does (remote processes killed,
//!    temporary files removed); workflow runs are cancelled;
//! 3. a client that does not go by itself within a moment (it stopped
//!    reading) has its tasks stopped and its socket shut down, as the stall
//!    watchdog does;
//! 4. wait for every task's cleanup and every run's end ([`InFlight`]);
//! 5. stop the HTTP workers, letting requests in flight finish;
//! 6. write the records still queued in the journal;
//! 7. record runs that did not end as `interrupted`.
//!
//! What is not done by the deadline is abandoned: the log names what was
//! left, and the next start marks leftover runs `interrupted`. A second
//! signal during the shutdown abandons it at once. The process exits 0
//! either way: the stop was asked for.

use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web;
use pinkpage_actors::broadcast::{Event, Publish};
use tokio::time::Instant;

use crate::state::AppState;

/// How long clients get to take their `shutdown` frame and go before the
/// ones still there are cut off (at most; less when the grace is short).
const CLIENTS_GO_WITHIN: Duration = Duration::from_secs(2);

/// Runs the shutdown (see the module docs) until `deadline`; true when
/// everything finished in time.
pub async fn graceful(
    state: &web::Data<AppState>,
    server: &ServerHandle,
    signal: &str,
    grace: Duration,
) -> bool {
    let deadline = Instant::now() + grace;
    log::warn!(
        signal = signal,
        grace_s = grace.as_secs_f64(),
        websockets = state.connections.count(),
        in_flight = state.in_flight.count();
        "shutting down: accepting no new connections, telling clients, stopping tasks"
    );
    crate::systemd::notify("STOPPING=1");
    server.pause().await;
    state.broadcast.do_send(Publish(Event::ShuttingDown { grace }));
    // operator terminals, attached or not, close now; answered once their
    // closes count as work in flight
    let _ = state
        .terminal_warden
        .send(crate::terminals::CloseForShutdown)
        .await;

    let clients_deadline = deadline.min(Instant::now() + CLIENTS_GO_WITHIN.min(grace / 2));
    let clients_gone = until(clients_deadline, async {
        while state.connections.count() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if !clients_gone {
        let left = state.connections.take_all();
        for watch in &left {
            crate::ws::stall::cut_off(state, watch);
        }
        log::warn!(connections = left.len(); "clients still connected after the shutdown frame (not reading): their tasks stopped, their sockets shut down");
    }
    let tasks_done = until(deadline, state.in_flight.drained()).await;
    let http_done = until(deadline, server.stop(true)).await;
    // the PTYs closed with their tasks: their recordings write their last
    // events and hand their ends to the journal before its last write
    let left = deadline.saturating_duration_since(Instant::now());
    state.recordings.drained(left).await;
    // the login summaries counted so far, before the journal's last write
    crate::api::auth::flush_login_audit(state, true);
    let audit_done = until(deadline, state.journal.flushed()).await;
    match state.stores.interrupt_left_runs().await {
        Ok((0, 0)) => {}
        Ok((workflows, batches)) => {
            log::warn!(workflow_runs = workflows, batch_runs = batches; "runs that did not end before the shutdown marked interrupted")
        }
        Err(e) => {
            log::error!(code = e.code.code(), error = e.to_string(); "cannot mark unfinished workflow runs interrupted")
        }
    }
    let clean = tasks_done && http_done && audit_done;
    if clean {
        log::info!("shutdown complete");
    } else {
        log::warn!(
            tasks_in_flight = state.in_flight.count(),
            http_stopped = http_done,
            records_unwritten = state.journal.health().pending_rows;
            "shutdown grace over: what is left is abandoned"
        );
    }
    clean
}

/// Runs `work` until `deadline`; whether it finished.
async fn until(deadline: Instant, work: impl std::future::Future) -> bool {
    tokio::time::timeout_at(deadline, work).await.is_ok()
}
