//! [`Application`]: builds the whole daemon (store, actors, HTTP server) and
//! runs it until it is stopped.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, Addr};
use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use pinkpage_actors::broadcast::BroadcastActor;
use pinkpage_actors::health::monitor::{
    HealthConfig, HealthMonitorActor, StopMonitor, DEFAULT_MAX_IN_FLIGHT,
};
use pinkpage_actors::health::Thresholds;
use pinkpage_actors::lock::SessionLockActor;
use pinkpage_actors::ssh::{HostKeyPolicy, SshOptions};
use pinkpage_actors::transfer::TransferGate;
use pinkpage_actors::AppError;

use crate::admission::admit;
use crate::auth::directory::Directory;
use crate::auth::refresher::Refresher;
use crate::auth::Identity;
use crate::settings::Settings;
use crate::state::AppState;
use crate::store::{NewAuditEvent, Store};
use crate::workflows::hub::RunParts;
use crate::workflows::WorkflowHub;
use crate::{api, settings::SettingsError, ws};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting cannot be used (bad bind address, unusable database, ...).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Anything else that stopped the start.
    #[error("cannot start: {0}")]
    Other(String),
}

/// A built daemon, bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    /// Stopped once the HTTP server has finished, so no check outlives it.
    health: Addr<HealthMonitorActor>,
}

impl Application {
    /// Opens the store, starts the actors and binds the listener. Must run
    /// inside an actix system (`#[actix_web::main]`).
    pub fn build(settings: Settings) -> Result<Application, StartupError> {
        let settings = Arc::new(settings);
        std::fs::create_dir_all(&settings.data_dir).map_err(|e| SettingsError {
            variable: "PINKPAGE_DATA_DIR".into(),
            problem: format!("cannot create {}: {e}", settings.data_dir.display()),
        })?;
        let store = Store::open(&settings.db_path).map_err(|e: AppError| SettingsError {
            variable: "PINKPAGE_DB".into(),
            problem: e.detail.unwrap_or_else(|| e.code.message().to_owned()),
        })?;
        let listener = TcpListener::bind(settings.bind).map_err(|e| SettingsError {
            variable: "PINKPAGE_BIND".into(),
            problem: format!("cannot listen on {}: {e}", settings.bind),
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartupError::Other(e.to_string()))?;

        let interrupted = store
            .interrupt_left_workflow_runs_now()
            .map_err(|e| SettingsError {
                variable: "PINKPAGE_DB".into(),
                problem: format!("cannot mark interrupted workflow runs: {e}"),
            })?;
        if interrupted > 0 {
            log::warn!(runs = interrupted; "workflow runs left running by the last daemon marked interrupted");
        }
        store.audit(NewAuditEvent::new("system", "daemon.start"));
        let identity = Arc::new(Identity::new(settings.access.clone()));
        {
            let loaded = store.load_directory_now().map_err(|e: AppError| SettingsError {
                variable: "PINKPAGE_DB".into(),
                problem: format!("cannot read accounts: {e}"),
            })?;
            let mut dir = identity.write();
            *dir = Directory::from_loaded(loaded, &dir);
        }
        if !identity.has_accounts() {
            log::warn!(
                "no account exists yet: create the first admin with `{}` (see README, Signing in)",
                crate::accounts::first_admin_hint()
            );
        }
        // The engine's long-lived actors run on the system arbiter, shared
        // by every HTTP worker through their addresses.
        let broadcast = BroadcastActor::default().start();
        let session_lock = SessionLockActor::new(broadcast.clone()).start();
        let health = start_health_monitor(&settings, &store, &broadcast);
        Refresher::new(identity.clone(), store.clone(), broadcast.clone()).start();
        let ssh = Arc::new(SshOptions {
            connect_timeout: settings.ssh_connect_timeout,
            host_keys: HostKeyPolicy {
                known_hosts: settings.known_hosts.clone(),
                mode: settings.host_key_mode,
            },
        });
        let transfers = TransferGate::default();
        let workflows = WorkflowHub::new(
            store.clone(),
            session_lock.clone(),
            RunParts {
                ssh: ssh.clone(),
                gate: transfers.clone(),
                throttle: settings.throttle,
                batch_output_cap: settings.batch_output_cap,
            },
            identity.clone(),
            broadcast.clone(),
        )
        .start();
        let state = web::Data::new(AppState {
            settings: settings.clone(),
            ssh,
            store,
            identity,
            broadcast,
            session_lock,
            health: health.clone(),
            transfers,
            diff_budget: pinkpage_actors::diff::budget::DiffBudget::new(
                settings.work_limits.diff_budget_bytes,
            ),
            workflows,
            started: Instant::now(),
            started_at: chrono::Utc::now(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(admit))
                .configure(api::configure)
                .configure(ws::configure)
                .configure(crate::console::configure)
                .default_service(web::to(api::not_found))
        })
        .listen(listener)
        .map_err(|e| StartupError::Other(e.to_string()))?
        .shutdown_timeout(5)
        // A client's EOF ends its request: the handler's future is dropped,
        // and with it the cancel signal of the remote work it started (a
        // REST diff_command, upload or download stops on the servers).
        // Half-closing clients (shut the write side, then read) lose their
        // answer; no client we know of does that (issue 11 item 4).
        .h1_allow_half_closed(false)
        .run();

        log::info!(
            addr = addr.to_string().as_str(),
            servers = settings.servers.len(),
            transfers = settings.transfers.len(),
            workflows = settings.workflows.len();
            "listening"
        );
        Ok(Application {
            port: addr.port(),
            server,
            health,
        })
    }

    /// The port actually bound (useful with `PINKPAGE_BIND=...:0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, then shuts down gracefully.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        // The monitor may already be gone if the system is stopping.
        let _ = self.health.send(StopMonitor).await;
        result
    }
}

/// Starts the health monitor; its transitions go to the store.
fn start_health_monitor(
    settings: &Settings,
    store: &Store,
    broadcast: &Addr<BroadcastActor>,
) -> Addr<HealthMonitorActor> {
    let config = HealthConfig {
        interval: settings.health_interval,
        timeout: settings.health_timeout,
        thresholds: Thresholds {
            failures: settings.health_failures,
            successes: settings.health_successes,
        },
        max_in_flight: DEFAULT_MAX_IN_FLIGHT,
    };
    HealthMonitorActor::new(
        settings.servers.values().map(|s| &**s),
        config,
        broadcast.clone(),
        store.addr().clone().recipient(),
    )
    .start()
}
