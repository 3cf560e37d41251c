//! [`Application`]: builds the whole daemon (store, actors, HTTP server) and
//! runs it until it is stopped.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, Addr};
use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};
use pinkpage_actors::broadcast::BroadcastActor;
use pinkpage_actors::files::temp_files::TempFiles;
use pinkpage_actors::health::monitor::{HealthMonitorActor, StopMonitor};
use pinkpage_actors::lock::SessionLockActor;
use pinkpage_actors::pty::book::PtyBook;
use pinkpage_actors::ssh::{ConnectHooks, HostKeyPolicy, SessionSlots, SshOptions};
use pinkpage_actors::terminal::book::TerminalBook;
use pinkpage_actors::transfer::TransferGate;
use pinkpage_actors::AppError;

use crate::admission::admit;
use crate::auth::directory::Directory;
use crate::auth::refresher::Refresher;
use crate::auth::Identity;
use crate::journal::engine::{HealthRecorder, JournalTempFiles};
use crate::journal::Journal;
use crate::records::instance;
use crate::settings::Settings;
use crate::state::AppState;
use crate::store::chain::KeyFile;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::store::OpenError;
use crate::store::{AccountStore, Stores};
use crate::workflows::hub::RunParts;
use crate::workflows::WorkflowHub;
use crate::{api, settings::SettingsError, ws};

/// Opens the store the settings name: PostgreSQL when
/// `PINKPAGE_DATABASE_URL` is set, else the SQLite file `PINKPAGE_DB`.
/// Both bring the schema up to date and open the audit chain.
fn open_store(settings: &Settings) -> Result<(Stores, Arc<dyn AccountStore>), SettingsError> {
    let key_file = KeyFile::new(&settings.audit_key_file);
    let variable = if settings.database_url.is_some() {
        "PINKPAGE_DATABASE_URL"
    } else {
        "PINKPAGE_DB"
    };
    let failed = |e: OpenError| match e {
        OpenError::Database(e) => SettingsError {
            variable: variable.into(),
            problem: e.detail.unwrap_or_else(|| e.code.message().to_owned()),
        },
        OpenError::Chain(e) => SettingsError {
            variable: "PINKPAGE_AUDIT_KEY_FILE".into(),
            problem: e.to_string(),
        },
    };
    Ok(match &settings.database_url {
        Some(url) => {
            let pg = PgStore::open(url.expose(), &key_file).map_err(failed)?;
            log::info!(instance = crate::records::instance(); "records kept in PostgreSQL");
            (Stores::of(pg.clone()), pg)
        }
        None => {
            let sqlite = SqliteStore::open(&settings.db_path, &key_file).map_err(failed)?;
            (Stores::of(sqlite.clone()), sqlite)
        }
    })
}

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
    /// The metrics-only listener (`PINKPAGE_METRICS_BIND`), when set.
    metrics_server: Option<Server>,
    /// Stopped once the HTTP server has finished, so no check outlives it.
    health: Addr<HealthMonitorActor>,
    /// What the shutdown needs: connections, the store, the broadcast.
    state: web::Data<AppState>,
}

impl Application {
    /// Opens the store, runs the start-up recovery, starts the actors and
    /// binds the listener. Must run inside an actix system
    /// (`#[actix_web::main]`).
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        // first: everything started below counts into it
        let metrics = crate::metrics::install();
        let settings = Arc::new(settings);
        let live = crate::settings::live::LiveSettings::new(settings.clone());
        private_dir(&settings.data_dir).map_err(|e| SettingsError {
            variable: "PINKPAGE_DATA_DIR".into(),
            problem: format!("cannot create {}: {e}", settings.data_dir.display()),
        })?;
        let db = |what: &'static str| {
            move |e: AppError| SettingsError {
                variable: "PINKPAGE_DB".into(),
                problem: format!(
                    "{what}{}",
                    e.detail.unwrap_or_else(|| e.code.message().to_owned())
                ),
            }
        };
        if let Some(id) = &settings.instance_id {
            crate::records::set_instance(id).map_err(|problem| SettingsError {
                variable: "PINKPAGE_INSTANCE_ID".into(),
                problem,
            })?;
        }
        let (stores, accounts) = open_store(&settings)?;
        let tls = match &settings.tls {
            Some(files) => Some(crate::tls::Certificates::load(&files.cert, &files.key).map_err(
                |problem| SettingsError {
                    variable: "PINKPAGE_TLS_CERT".into(),
                    problem,
                },
            )?),
            None => None,
        };
        warn_if_exposed(&settings);
        let descriptors = plan_descriptors(&settings)?;
        crate::limits::heap::spawn_trimmer(settings.heap_trim);
        let listener = TcpListener::bind(settings.bind).map_err(|e| SettingsError {
            variable: "PINKPAGE_BIND".into(),
            problem: format!("cannot listen on {}: {e}", settings.bind),
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartupError::Other(e.to_string()))?;
        let metrics_listener = match settings.metrics_bind {
            None => None,
            Some(at) => Some(TcpListener::bind(at).map_err(|e| SettingsError {
                variable: "PINKPAGE_METRICS_BIND".into(),
                problem: format!("cannot listen on {at}: {e}"),
            })?),
        };

        // What the last daemon of this instance left, before this one writes
        // anything (and after it has its port: a second daemon started by
        // mistake on the same files fails there first).
        let (workflows_left, batches_left) = stores
            .interrupt_left_runs()
            .await
            .map_err(db("cannot mark interrupted runs: "))?;
        if workflows_left + batches_left > 0 {
            log::warn!(workflow_runs = workflows_left, batch_runs = batches_left;
                "runs left running by the last daemon marked interrupted");
        }
        let left_temp_files = stores
            .temp_files
            .left(instance())
            .await
            .map_err(db("cannot read the records of temporary files: "))?;
        if !left_temp_files.is_empty() {
            log::warn!(files = left_temp_files.len();
                "temporary files the last daemon left on servers; each is removed at the next connection to its server");
        }
        let cut_off = stores
            .audit
            .interrupt_left_work_and_start(instance())
            .await
            .map_err(db("cannot write the audit trail: "))?;
        for kind in ["ssh.command", "transfer", "script"] {
            let count = cut_off
                .iter()
                .filter(|a| a.strip_suffix(".interrupted") == Some(kind))
                .count();
            if count > 0 {
                log::warn!(kind = kind, count = count;
                    "work the last daemon left unfinished recorded as interrupted in the audit trail");
            }
        }
        let journal = Journal::start(stores.clone(), settings.audit_fail_open);
        let identity = Arc::new(Identity::new(settings.access.clone()));
        {
            let loaded = accounts.load().await.map_err(db("cannot read accounts: "))?;
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
        let health = start_health_monitor(&settings, descriptors.health_checks, &journal, &broadcast);
        Refresher::new(identity.clone(), accounts.clone(), broadcast.clone()).start();
        // The files domain records its temporary files here and removes
        // an earlier write's leftovers on each new session to their server.
        let temp_files = TempFiles::new(Arc::new(JournalTempFiles(journal.clone())), left_temp_files);
        let ssh = Arc::new(SshOptions {
            connect_timeout: settings.ssh_connect_timeout,
            host_keys: HostKeyPolicy {
                known_hosts: settings.known_hosts.clone(),
                mode: settings.host_key_mode,
            },
            keepalive: settings.ssh_keepalive,
            sessions: SessionSlots::new(
                settings.caps.ssh_sessions_per_server,
                settings.caps.ssh_session_wait,
            ),
            on_connect: ConnectHooks::new(vec![Arc::new(temp_files.clone())]),
        });
        let transfers = TransferGate::default();
        // Every PTY is recorded (issue 26): the book asks the recordings
        // service for each PTY about to open.
        let recordings = Arc::new(crate::recordings::Recordings::new(
            crate::recordings::directory(&settings.data_dir),
            settings.recordings.clone(),
            journal.clone(),
            Some(broadcast.clone()),
        ));
        crate::recordings::retention::spawn(recordings.clone(), stores.recordings.clone());
        // Retention of the other records and the audit trail (issue 28);
        // its limits are read at each sweep, as a reload last left them
        let now = live.clone();
        crate::retention::spawn(
            stores.clone(),
            journal.clone(),
            Arc::new(move || now.current().retention.clone()),
        );
        // Every running PTY, and the operator terminals among them.
        let ptys = PtyBook::new(
            pinkpage_actors::pty::book::DEFAULT_COMMAND_SCROLLBACK,
            settings.terminals.max_watchers,
        )
        .recording(recordings.clone());
        let terminals = TerminalBook::new(settings.terminals.per_user, settings.terminals.max);
        let in_flight = Arc::new(crate::in_flight::InFlight::default());
        let reviews =
            crate::reviews::ReviewDesk::new(settings.review_timeout, journal.clone(), broadcast.clone());
        let workflows = WorkflowHub::new(
            journal.clone(),
            session_lock.clone(),
            Arc::new(RunParts {
                ssh: ssh.clone(),
                temp_files: temp_files.clone(),
                gate: transfers.clone(),
                throttle: settings.throttle,
                batch_output_cap: settings.batch_output_cap,
                ptys: ptys.clone(),
                live: live.clone(),
                reviews: reviews.clone(),
                journal: journal.clone(),
            }),
            identity.clone(),
            live.clone(),
            broadcast.clone(),
            in_flight.clone(),
        )
        .start();
        let terminal_warden = crate::terminals::TerminalWarden::new(
            terminals.clone(),
            identity.clone(),
            live.clone(),
            journal.clone(),
            broadcast.clone(),
            in_flight.clone(),
        )
        .start();
        let state = web::Data::new(AppState {
            reviews,
            live,
            ssh,
            temp_files,
            stores,
            journal,
            accounts,
            identity,
            broadcast,
            session_lock,
            health: health.clone(),
            transfers,
            connections: crate::connections::Connections::bounded(
                settings.caps,
                descriptors.websockets,
                descriptors.websockets_reason(),
            ),
            diff_budget: pinkpage_actors::diff::budget::DiffBudget::new(
                settings.work_limits.diff_budget_bytes,
            ),
            frame_budget: crate::limits::frame_budget::FrameBudget::new(settings.caps.ws_frame_budget),
            workflows,
            in_flight,
            ptys,
            terminals,
            terminal_warden,
            recordings,
            tls: tls.clone(),
            metrics,
            health_in_flight: descriptors.health_checks,
            started: Instant::now(),
            started_at: chrono::Utc::now(),
        });
        ws::stall::spawn_watchdog(state.clone());
        crate::api::auth::spawn_login_audit(state.clone());
        let app_state = state.clone();
        let pending = crate::limits::pending::Pending::new(settings.caps.pending_per_address);
        let access = settings.access.clone();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(admit))
                .configure(api::configure)
                .configure(ws::configure)
                .configure(crate::console::configure)
                .default_service(web::to(api::not_found))
        })
        // Each connection's socket descriptor, so a WebSocket upgrade can
        // keep a duplicate to shut a stalled client down (crate::connections);
        // and its place among its address's connections not yet admitted
        // (crate::limits::pending), given back when the connection ends.
        .on_connect(move |io, ext| {
            use std::os::fd::AsRawFd;
            type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
            let tcp = io
                .downcast_ref::<actix_web::rt::net::TcpStream>()
                .or_else(|| io.downcast_ref::<Tls>().map(|tls| (**tls).get_ref().0));
            if let Some(tcp) = tcp {
                ext.insert(crate::connections::SocketFd(tcp.as_raw_fd()));
                if let Ok(peer) = tcp.peer_addr() {
                    if !access.is_trusted_proxy(peer.ip()) {
                        ext.insert(pending.arrived(peer.ip()));
                    }
                }
            }
        })
        // Client connections never take the descriptors kept for SSH, the
        // store and health checks: past this many, accepting pauses
        // (crate::limits::descriptors).
        .workers(workers)
        .max_connections(descriptors.connections_per_worker(workers))
        .client_request_timeout(settings.caps.request_head_timeout);
        let server = match &tls {
            Some(certificates) => server.listen_rustls_0_23(
                listener,
                certificates.server_config().map_err(StartupError::Other)?,
            ),
            None => server.listen(listener),
        }
        .map_err(|e| StartupError::Other(e.to_string()))?
        // SIGTERM and SIGINT are ours (run_until_stopped): actix-web's own
        // handling would close the WebSockets without a word
        .disable_signals()
        .shutdown_timeout(settings.shutdown_grace.as_secs().max(1))
        // A client's EOF ends its request: the handler's future is dropped,
        // and with it the cancel signal of the remote work it started (a
        // REST diff_command, upload or download stops on the servers).
        // Half-closing clients (shut the write side, then read) lose their
        // answer; no client we know of does that (issue 11 item 4).
        .h1_allow_half_closed(false)
        .run();

        let metrics_server = match metrics_listener {
            None => None,
            Some(listener) => Some(metrics_server(listener, app_state.clone())?),
        };

        log::info!(
            addr = addr.to_string().as_str(),
            scheme = if tls.is_some() { "https" } else { "http" },
            servers = settings.servers.len(),
            transfers = settings.transfers.len(),
            workflows = settings.workflows.len();
            "listening"
        );
        Ok(Application {
            port: addr.port(),
            server,
            metrics_server,
            health,
            state: app_state,
        })
    }

    /// The port actually bound (useful with `PINKPAGE_BIND=...:0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, then shuts down gracefully
    /// (`crate::shutdown`); a second signal during that ends it at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let handle = self.server.handle();
        // The server's own commands (pause, stop) are served while its
        // future is polled: it runs as a task of its own, not inside the
        // select below, which stops polling its branches once a signal
        // comes.
        let mut server = actix::spawn(self.server);
        let metrics = self.metrics_server.map(|m| {
            let handle = m.handle();
            actix::spawn(m);
            handle
        });
        let which = loop {
            tokio::select! {
                result = &mut server => {
                    let _ = self.health.send(StopMonitor).await;
                    return result.unwrap_or_else(|e| Err(std::io::Error::other(e)));
                }
                _ = term.recv() => break "SIGTERM",
                _ = int.recv() => break "SIGINT",
                // a refused reload is logged and audited by `reload`; the
                // daemon goes on as it was
                _ = hup.recv() => {
                    let state = self.state.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        crate::reload::reload(&state, &crate::reload::Asker::signal())
                    })
                    .await;
                }
            }
        };
        let grace = self.state.settings().shutdown_grace;
        tokio::select! {
            _ = crate::shutdown::graceful(&self.state, &handle, which, grace) => {}
            _ = term.recv() => log::warn!("second signal: shutdown abandoned"),
            _ = int.recv() => log::warn!("second signal: shutdown abandoned"),
        }
        let _ = self.health.send(StopMonitor).await;
        if let Some(metrics) = metrics {
            metrics.stop(false).await;
        }
        handle.stop(false).await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), server).await;
        Ok(())
    }
}

/// Connections the metrics-only listener serves at once.
const METRICS_CONNECTIONS: usize = 8;

/// The listener of `PINKPAGE_METRICS_BIND`: `GET /metrics` and nothing
/// else, without a credential (anything else is 404), on one worker.
/// Its address is logged as `metrics listening`.
fn metrics_server(listener: TcpListener, state: web::Data<AppState>) -> Result<Server, StartupError> {
    let at = listener
        .local_addr()
        .map_err(|e| StartupError::Other(e.to_string()))?;
    let server = HttpServer::new(move || {
        App::new().app_data(state.clone()).route(
            "/metrics",
            web::get().to(crate::api::metrics::metrics_unauthenticated),
        )
    })
    .workers(1)
    // anyone who reaches it needs no credential: a few connections at
    // a time, taken from the descriptors kept for the daemon's own work
    // (PINKPAGE_RESERVED_FDS), never enough to starve it
    .max_connections(METRICS_CONNECTIONS)
    .max_connection_rate(METRICS_CONNECTIONS)
    .disable_signals()
    .listen(listener)
    .map_err(|e| StartupError::Other(e.to_string()))?
    .run();
    if !at.ip().is_loopback() {
        log::warn!(addr = at.to_string().as_str();
            "metrics listening beyond loopback without a credential: server names and health are readable by anyone who reaches it");
    }
    log::info!(addr = at.to_string().as_str(); "metrics listening");
    Ok(server)
}

/// Warns when the daemon listens beyond loopback in clear: passwords and
/// session cookies would cross the network readable, unless a proxy in
/// front of it (`PINKPAGE_TRUSTED_PROXIES`) ends TLS.
fn warn_if_exposed(settings: &Settings) {
    if settings.tls.is_none()
        && !settings.bind.ip().is_loopback()
        && settings.access.trusted_proxies.is_empty()
    {
        log::warn!(addr = settings.bind.to_string().as_str();
            "listening beyond loopback over plain HTTP: set PINKPAGE_TLS_CERT and PINKPAGE_TLS_KEY, or put a TLS proxy in front (PINKPAGE_TRUSTED_PROXIES)");
    }
}

/// Raises the descriptor limit and decides what clients may take of it
/// (`crate::limits::descriptors`); logs both.
fn plan_descriptors(settings: &Settings) -> Result<crate::limits::descriptors::DescriptorPlan, StartupError> {
    use crate::limits::descriptors::{raise_nofile, DescriptorPlan};
    let limit = match raise_nofile() {
        Ok(got) => {
            log::info!(soft_before = got.before, soft = got.now, hard = got.hard;
                "file descriptor limit (RLIMIT_NOFILE)");
            got.now
        }
        Err(e) => {
            log::warn!(error = e.to_string(); "cannot read or raise the file descriptor limit; assuming 1024");
            1024
        }
    };
    let plan = DescriptorPlan::new(
        limit,
        settings.caps.reserved_fds,
        settings.caps.ws_max,
        health_wanted(settings),
    )
    .map_err(|problem| SettingsError {
        variable: "PINKPAGE_RESERVED_FDS".into(),
        problem,
    })?;
    if plan.websockets_bound_by_descriptors {
        log::warn!(websockets = plan.websockets, setting = settings.caps.ws_max, limit = plan.limit,
            reserved = plan.reserved;
            "the descriptor limit allows fewer WebSockets than PINKPAGE_WS_MAX_CONNECTIONS: raise `ulimit -n` to three times the setting plus PINKPAGE_RESERVED_FDS (plus one for each health check beyond 64)");
    }
    log::info!(websockets = plan.websockets, connections = plan.connections, reserved = plan.reserved,
        health_checks = plan.health_checks;
        "client connections bounded to leave descriptors for SSH, the store and health checks");
    Ok(plan)
}

/// Health checks wanted at once: `PINKPAGE_HEALTH_MAX_IN_FLIGHT`, or every
/// server (at least as many as the reserve covers, so servers added by a
/// reload are checked at once too).
fn health_wanted(settings: &Settings) -> usize {
    use crate::limits::descriptors::HEALTH_IN_RESERVE;
    settings
        .health_max_in_flight
        .unwrap_or(settings.servers.len().max(HEALTH_IN_RESERVE))
}

/// Starts the health monitor; its transitions go to the journal.
fn start_health_monitor(
    settings: &Settings,
    in_flight: usize,
    journal: &Journal,
    broadcast: &Addr<BroadcastActor>,
) -> Addr<HealthMonitorActor> {
    let config = crate::reload::health_config(settings, in_flight);
    HealthMonitorActor::new(
        settings.servers.values().map(|s| &**s),
        config,
        broadcast.clone().recipient(),
        HealthRecorder(journal.clone()).start().recipient(),
    )
    .start()
}

/// Creates `dir` (and its missing parents) owner-only (0700) whatever the
/// process umask: recordings and other files the daemon keeps there are
/// nobody else's to read. A directory that exists already is the
/// operator's: it is left as it is, with a warning when others may read it.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        log::warn!(path = dir.display().to_string().as_str(), mode = format!("{:o}", mode & 0o777).as_str(); "the data directory is readable by others; make it owner-only (chmod 700)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The access table (`crate::auth::table`) against what the daemon
    //! mounts: every REST operation of the OpenAPI document and every
    //! WebSocket message type is named in it. Here, at the top, because
    //! only the top sees both the table and the surfaces.
    use crate::auth::table;
    use crate::ws::connection::Domain;

    fn types_of<D: Domain>() -> Vec<&'static str> {
        D::TYPES.to_vec()
    }

    #[test]
    fn every_websocket_type_is_in_the_table() {
        for (endpoint, types) in [
            ("/ws/v1/stub", types_of::<crate::ws::stub::Stub>()),
            ("/ws/v1/bmx4", types_of::<crate::ws::bmx4::Bmx4>()),
            ("/ws/v1/bmx5", types_of::<crate::ws::bmx5::Bmx5>()),
            ("/ws/v1/diff", types_of::<crate::ws::diff::Diff>()),
        ] {
            for kind in &types {
                assert!(
                    table::MESSAGES
                        .iter()
                        .any(|m| m.endpoint == endpoint && m.kind == *kind),
                    "{endpoint} {kind} is not in the access table"
                );
            }
            for m in table::MESSAGES.iter().filter(|m| m.endpoint == endpoint) {
                assert!(
                    types.contains(&m.kind),
                    "{} {} is not a type of that endpoint",
                    endpoint,
                    m.kind
                );
            }
        }
    }

    #[test]
    fn every_openapi_operation_is_in_the_table() {
        use utoipa::OpenApi;
        let doc = crate::api::ApiDoc::openapi();
        for (path, item) in &doc.paths.paths {
            for (method, present) in [
                ("GET", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
                ("PATCH", item.patch.is_some()),
            ] {
                if present {
                    assert!(
                        table::ROUTES
                            .iter()
                            .any(|r| r.pattern == path && r.method == method),
                        "{method} {path} is not in the access table"
                    );
                }
            }
        }
    }
}
