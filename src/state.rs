//! [`AppState`]: what every handler can reach, shared read-only.

use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use pinkpage_actors::broadcast::BroadcastActor;
use pinkpage_actors::files::temp_files::TempFiles;
use pinkpage_actors::health::monitor::HealthMonitorActor;
use pinkpage_actors::lock::SessionLockActor;
use pinkpage_actors::ssh::SshOptions;
use pinkpage_actors::transfer::TransferGate;

use crate::auth::Identity;
use crate::journal::Journal;
use crate::settings::live::LiveSettings;
use crate::settings::Settings;
use crate::store::{AccountStore, Stores};

/// Shared by every HTTP worker through `web::Data`.
///
/// Live state (the session lock, health, running tasks) belongs to actors,
/// reached through their addresses; the exceptions are the connection
/// registry and the SSH session slots, which are read and changed from
/// outside any actor (a stalled connection's actor is not polled) and keep
/// their own locks.
pub struct AppState {
    /// Validated settings, including the servers, as they are now (a
    /// reload replaces them: `crate::reload`). Read them with
    /// [`AppState::settings`].
    pub live: Arc<LiveSettings>,
    /// How to reach servers over SSH (timeouts, host key policy).
    pub ssh: Arc<SshOptions>,
    /// Where file work records the temporary files it makes on servers
    /// (the same registry `ssh`'s connect hook recovers leftovers from).
    pub temp_files: TempFiles,
    /// The records' stores, for reading (every write goes through
    /// `journal`).
    pub stores: Stores,
    /// The one path every record takes to the store.
    pub journal: Journal,
    /// Users, API tokens and sign-in sessions.
    pub accounts: Arc<dyn AccountStore>,
    /// Accounts, tokens and sessions (the checked copy), the login
    /// throttle and the access settings.
    pub identity: Arc<Identity>,
    /// The registry of every WebSocket connection; publishes events to all.
    pub broadcast: Addr<BroadcastActor>,
    /// The session lock.
    pub session_lock: Addr<SessionLockActor>,
    /// The live health of every server.
    pub health: Addr<HealthMonitorActor>,
    /// One transfer at a time in the whole daemon (50009).
    pub transfers: TransferGate,
    /// Every open WebSocket: the connection caps and the stall watchdog's
    /// view (its own locking; see `crate::connections`).
    pub connections: Arc<crate::connections::Connections>,
    /// The bytes running diffs may hold, daemon-wide (53001).
    pub diff_budget: pinkpage_actors::diff::budget::DiffBudget,
    /// The bytes incomplete WebSocket messages may hold beyond each
    /// connection's allowance, daemon-wide (see `crate::ws::reader`).
    pub frame_budget: crate::limits::frame_budget::FrameBudget,
    /// The workflow runs in flight.
    pub workflows: Addr<crate::workflows::WorkflowHub>,
    /// Work a graceful shutdown waits for: closed connections' task
    /// cleanup, workflow runs.
    pub in_flight: Arc<crate::in_flight::InFlight>,
    /// Every running PTY (commands, scripts, workflow steps, operator
    /// terminals): what `GET /api/v1/ptys` lists and watchers follow. Its
    /// own lock, held for no await (`pinkpage_actors::pty::book`).
    pub ptys: pinkpage_actors::pty::book::PtyBook,
    /// The operator terminals, their shares and limits. Its own lock, held
    /// for no await (`pinkpage_actors::terminal::book`).
    pub terminals: pinkpage_actors::terminal::book::TerminalBook,
    /// Re-judges, closes and audits operator terminals outside any
    /// connection (`crate::terminals`).
    pub terminal_warden: Addr<crate::terminals::TerminalWarden>,
    /// Recordings of PTYs: the files, their writers, reads and deletions
    /// (`crate::recordings`).
    pub recordings: Arc<crate::recordings::Recordings>,
    /// Commands held for review (`crate::reviews`). Its own lock, held
    /// for no await.
    pub reviews: Arc<crate::reviews::ReviewDesk>,
    /// The certificate served over HTTPS (`None`: plain HTTP); renewed by
    /// a reload (`crate::tls`).
    pub tls: Option<Arc<crate::tls::Certificates>>,
    /// The Prometheus recorder's handle: renders the counted series for
    /// `GET /metrics` (`crate::metrics`).
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Health checks in flight at most, planned at start with the
    /// descriptors (`crate::limits::descriptors`); a reload keeps it.
    pub health_in_flight: usize,
    /// Monotonic start time, for uptime.
    pub started: Instant,
    /// Wall-clock start time.
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl AppState {
    /// The settings as they are now; work keeps the copy it started with.
    pub fn settings(&self) -> Arc<Settings> {
        self.live.current()
    }

    /// The command rules as `principal` meets them, its audit rows by
    /// `actor` from `remote` (`crate::reviews::check`).
    pub fn policy_check(
        &self,
        principal: &pinkpage_actors::access::Principal,
        actor: impl Into<String>,
        remote: Option<String>,
    ) -> crate::reviews::check::PolicyCheck {
        crate::reviews::check::PolicyCheck::new(
            self.live.clone(),
            self.reviews.clone(),
            self.journal.clone(),
            principal.clone(),
            actor,
            remote,
        )
    }
}
