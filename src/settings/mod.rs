//! Settings: everything the daemon is told by its environment.
//!
//! (Over 450 lines: this is the one list of every variable with its default
//! and its check; split, the list would be scattered. The servers file has
//! its own module.)
//!
//! Values come from the process environment, after `.env` has been loaded
//! (by `main`, with [`dotenv::load_dotenv`]: `$` literal, errors without
//! values). [`Settings::from_lookup`] takes the lookup as a
//! function so tests can feed it a map instead of touching the process
//! environment.
//!
//! Servers come from two places that work together:
//! - the seed's variables: `MDWAP1P_IP` / `MYPAP1D_IP` define the servers
//!   `mdwap1p` and `mypap1d`, logging in as `HIWARE_ID` with `HIWARE_PW`;
//! - the servers file (`PINKPAGE_SERVERS_FILE`, TOML; see
//!   [`servers_file`]) for any number of servers and named transfers.
//!
//! A bad or missing setting is a [`SettingsError`] naming the variable; `main`
//! prints it and exits non-zero.

pub mod access;
pub mod caps;
pub mod command_rules;
pub mod dotenv;
mod env;
pub mod live;
pub mod names;
pub mod recordings;
pub mod retention;
pub mod servers_file;
pub mod terminals;
pub mod work_limits;
pub mod workflows;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pinkpage_actors::secret::Secret;
use pinkpage_actors::server::{Auth, ServerSpec, TransferSpec};
use pinkpage_actors::ssh::HostKeyMode;

use self::env::Env;
pub use self::env::{SettingDoc, SettingsError};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `env_logger`'s human-readable lines, key-values appended.
    Text,
    /// One JSON object a line: time, level, target, message, fields.
    Json,
}

/// Where the TLS certificate and its key are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// Every setting the daemon reads.
pub const SETTINGS: &[SettingDoc] = &[
    SettingDoc {
        name: "PINKPAGE_BIND",
        default: "127.0.0.1:8000",
        meaning: "listen address (port 0 picks a free port)",
    },
    SettingDoc {
        name: "PINKPAGE_METRICS_BIND",
        default: "unset (off)",
        meaning: "a second listener serving only GET /metrics, without a credential, for a Prometheus on this host: a port (`9464`: on 127.0.0.1) or an address; beyond loopback only behind a firewall (the main listener's /metrics needs a sign-in)",
    },
    SettingDoc {
        name: "PINKPAGE_TLS_CERT",
        default: "unset",
        meaning: "PEM certificate chain (leaf first): serve HTTPS and WSS; read again on SIGHUP (set with PINKPAGE_TLS_KEY)",
    },
    SettingDoc {
        name: "PINKPAGE_TLS_KEY",
        default: "unset",
        meaning: "PEM private key of PINKPAGE_TLS_CERT (PKCS#8, PKCS#1 or SEC1); read again on SIGHUP",
    },
    SettingDoc {
        name: "PINKPAGE_DB",
        default: DEFAULT_DB_PATH,
        meaning: "SQLite file (when PINKPAGE_DATABASE_URL is unset)",
    },
    SettingDoc {
        name: "PINKPAGE_DATABASE_URL",
        default: "unset (SQLite)",
        meaning: "postgres://user:password@host:port/database: keep the records in PostgreSQL, shared by several instances, instead of SQLite (never logged)",
    },
    SettingDoc {
        name: "PINKPAGE_INSTANCE_ID",
        default: "local on SQLite; <hostname>:<port> on PostgreSQL",
        meaning: "names this daemon's records of live work; what it recovers at start is only its own: unique per instance sharing a database, the same across its restarts",
    },
    SettingDoc {
        name: "PINKPAGE_DATA_DIR",
        default: "data",
        meaning: "recordings and other files",
    },
    SettingDoc {
        name: "PINKPAGE_SCRIPTS_DIR",
        default: "scripts.d",
        meaning: "local directory of scripts BMX5 script_execute may run by name",
    },
    SettingDoc {
        name: "PINKPAGE_SERVERS_FILE",
        default: "unset",
        meaning: "servers/transfers TOML file",
    },
    SettingDoc {
        name: "ENV",
        default: "dev",
        meaning: "environment name shown by /api/v1/health",
    },
    SettingDoc {
        name: "HIWARE_ID",
        default: "unset",
        meaning: "login user of the seed servers (required when MDWAP1P_IP or MYPAP1D_IP is set)",
    },
    SettingDoc {
        name: "HIWARE_PW",
        default: "unset",
        meaning: "password of the seed servers (required with HIWARE_ID; never logged)",
    },
    SettingDoc {
        name: "MDWAP1P_IP",
        default: "unset",
        meaning: "host of server mdwap1p",
    },
    SettingDoc {
        name: "MYPAP1D_IP",
        default: "unset",
        meaning: "host of server mypap1d",
    },
    SettingDoc {
        name: "MDWAP1P_PORT",
        default: "22",
        meaning: "SSH port of mdwap1p",
    },
    SettingDoc {
        name: "MYPAP1D_PORT",
        default: "22",
        meaning: "SSH port of mypap1d",
    },
    SettingDoc {
        name: "MDWAP1P_COMMAND_MODE",
        default: "exec",
        meaning: "how mdwap1p runs commands: exec, or shell (typed into the login shell on a PTY, for gateways that allow only shell channels)",
    },
    SettingDoc {
        name: "MYPAP1D_COMMAND_MODE",
        default: "exec",
        meaning: "how mypap1d runs commands: exec or shell",
    },
    SettingDoc {
        name: "MDWAP1P_ENCODING",
        default: "utf-8",
        meaning: "output encoding of mdwap1p (a WHATWG label: utf-8, euc-kr, ...)",
    },
    SettingDoc {
        name: "MYPAP1D_ENCODING",
        default: "utf-8",
        meaning: "output encoding of mypap1d",
    },
    SettingDoc {
        name: "PINKPAGE_KNOWN_HOSTS",
        default: "known_hosts",
        meaning: "OpenSSH-format known hosts file",
    },
    SettingDoc {
        name: "PINKPAGE_HOST_KEY_POLICY",
        default: "strict",
        meaning: "strict (refuse unknown keys) or accept-new (record them on first use)",
    },
    SettingDoc {
        name: "PINKPAGE_SSH_CONNECT_TIMEOUT_S",
        default: "10",
        meaning: "SSH connect + handshake + auth timeout (fractions allowed)",
    },
    SettingDoc {
        name: "PINKPAGE_SSH_KEEPALIVE_S",
        default: "15",
        meaning: "ask a silent server every this many seconds whether it is still there; after 3 unanswered asks its session ends with an error (0: never ask)",
    },
    SettingDoc {
        name: "PINKPAGE_HEALTH_INTERVAL_S",
        default: "30",
        meaning: "health check period (fractions allowed)",
    },
    SettingDoc {
        name: "PINKPAGE_HEALTH_TIMEOUT_S",
        default: "5",
        meaning: "one health check's timeout (fractions allowed)",
    },
    SettingDoc {
        name: "PINKPAGE_HEAP_TRIM_S",
        default: "10",
        meaning: "every this many seconds, give free heap memory back to the system when more than 8 MiB is free (glibc; fractions allowed; 0: never)",
    },
    SettingDoc {
        name: "PINKPAGE_HEALTH_MAX_IN_FLIGHT",
        default: "every server (at least 64)",
        meaning: "health checks at once (1-4096): by default every server is checked at once, so servers that hang cost one timeout, not one per wave; each takes a descriptor from the clients' share (planned at start; a reload keeps it)",
    },
    SettingDoc {
        name: "PINKPAGE_HEALTH_FAILURES",
        default: "2",
        meaning: "consecutive failed checks that make a server unhealthy",
    },
    SettingDoc {
        name: "PINKPAGE_HEALTH_SUCCESSES",
        default: "1",
        meaning: "consecutive good checks that make a server healthy again",
    },
    SettingDoc {
        name: "PINKPAGE_THROTTLE_MS",
        default: "100",
        meaning: "default terminal output flush interval",
    },
    SettingDoc {
        name: "PINKPAGE_BATCH_OUTPUT_CAP_BYTES",
        default: "1048576",
        meaning: "BMX4 batch: bytes of stdout and of stderr kept per command (the rest is read and dropped)",
    },
    SettingDoc {
        name: "PINKPAGE_DIFF_MAX_BYTES",
        default: "10485760",
        meaning: "DIFF: largest file compared, and stdout kept per side of diff_command (1 to 268435456)",
    },
    work_limits::DIFF_BUDGET_DOC,
    work_limits::BODY_IDLE_TIMEOUT_DOC,
    SettingDoc {
        name: "PINKPAGE_SHUTDOWN_GRACE_S",
        default: "10",
        meaning: "on SIGTERM/SIGINT: how long clients are told and tasks, requests and audit writes get to finish before the daemon exits anyway",
    },
    SettingDoc {
        name: "PINKPAGE_AUDIT_FAIL_OPEN",
        default: "false",
        meaning: "true lets new remote actions start while audit rows cannot be written (logged loudly); by default they are refused with 40000",
    },
    SettingDoc {
        name: "PINKPAGE_AUDIT_KEY_FILE",
        default: "<PINKPAGE_DATA_DIR>/audit.key",
        meaning: "key of the tamper-evident audit chain (64 hex digits); created owner-only (0600) at first start; refused if others may read it; never in the database or logs. Keep a copy: a chained trail refuses to start without its key",
    },
    SettingDoc {
        name: "PINKPAGE_BACKUP_DIR",
        default: "<PINKPAGE_DATA_DIR>/backups",
        meaning: "where POST /api/v1/admin/backup writes its copies of the database (made 0700; each copy 0600, named by the daemon)",
    },
    SettingDoc {
        name: "PINKPAGE_WS_HEARTBEAT_S",
        default: "5",
        meaning: "WebSocket ping period (fractions allowed)",
    },
    SettingDoc {
        name: "PINKPAGE_WS_TIMEOUT_S",
        default: "10",
        meaning: "drop a WebSocket client silent this long (fractions allowed)",
    },
    SettingDoc {
        name: "PINKPAGE_ALLOWED_ORIGINS",
        default: "unset",
        meaning: "comma-separated origins (https://console.example) besides the daemon's own that may open WebSockets, send POST/PUT/DELETE and use CORS with credentials",
    },
    SettingDoc {
        name: "PINKPAGE_ALLOWED_HOSTS",
        default: "localhost, 127.0.0.1, [::1] and the bind address",
        meaning: "comma-separated Host header values accepted (name = any port, name:port = that port); stops DNS rebinding",
    },
    SettingDoc {
        name: "PINKPAGE_TRUSTED_PROXIES",
        default: "unset",
        meaning: "comma-separated addresses/CIDRs of reverse proxies whose X-Forwarded-For/-Proto/-Host and user header are believed",
    },
    SettingDoc {
        name: "PINKPAGE_AUTH_PROXY_HEADER",
        default: "unset",
        meaning: "header naming the signed-in user, set by a trusted proxy (X-Forwarded-User); needs PINKPAGE_TRUSTED_PROXIES",
    },
    SettingDoc {
        name: "PINKPAGE_AUTH_PROXY_AUTOCREATE_ROLE",
        default: "unset",
        meaning: "role (viewer, operator, admin) given to a proxy user with no local account; unset refuses such users",
    },
    SettingDoc {
        name: "PINKPAGE_COOKIE_SECURE",
        default: "false",
        meaning: "true adds Secure to the session cookie (set it when users reach the daemon over HTTPS)",
    },
    SettingDoc {
        name: "PINKPAGE_SESSION_IDLE_S",
        default: "1800",
        meaning: "a sign-in session unused this long ends (WebSocket frames count as use)",
    },
    SettingDoc {
        name: "PINKPAGE_SESSION_MAX_S",
        default: "43200",
        meaning: "a sign-in session ends this long after sign-in, used or not",
    },
    SettingDoc {
        name: "PINKPAGE_SESSIONS_PER_USER",
        default: "20",
        meaning: "sign-in sessions one user may hold; a new sign-in past it ends the user's oldest session",
    },
    SettingDoc {
        name: "PINKPAGE_LOGIN_MAX_FAILURES",
        default: "5",
        meaning: "failed logins per address (and per name, for the addresses that failed on it) before the next attempt waits 1 s, 2 s, 4 s, ... (429 with Retry-After)",
    },
    SettingDoc {
        name: "PINKPAGE_LOGIN_WINDOW_S",
        default: "900",
        meaning: "how long failed logins are remembered",
    },
    SettingDoc {
        name: "PINKPAGE_LOGIN_MAX_DELAY_S",
        default: "30",
        meaning: "the longest wait imposed on a login attempt (fractions allowed)",
    },
    SettingDoc {
        name: "PINKPAGE_LOGIN_AUDIT_INTERVAL_S",
        default: "60",
        meaning: "throttled logins, and failed logins past PINKPAGE_LOGIN_AUDIT_ROWS, are audited as one row per name and address per this many seconds",
    },
    SettingDoc {
        name: "PINKPAGE_LOGIN_AUDIT_ROWS",
        default: "100",
        meaning: "failed-login audit rows written one by one per interval, and summary rows per interval (the rest in one row)",
    },
    SettingDoc {
        name: "PINKPAGE_LOG_FORMAT",
        default: "text",
        meaning: "text or json (one object a line)",
    },
    SettingDoc {
        name: "RUST_LOG",
        default: "info",
        meaning: "log filter (env_logger syntax)",
    },
    SettingDoc {
        name: "PINKPAGE_WS_MAX_CONNECTIONS",
        default: "10000",
        meaning: "WebSocket connections the daemon serves at once (fewer when the descriptor limit binds, see PINKPAGE_RESERVED_FDS); past it an upgrade gets 30001 (HTTP 503)",
    },
    SettingDoc {
        name: "PINKPAGE_WS_MAX_CONNECTIONS_PER_USER",
        default: "100",
        meaning: "WebSocket connections one user may hold at once; past it an upgrade gets 30002 (HTTP 429)",
    },
    SettingDoc {
        name: "PINKPAGE_WS_MAX_OPS_PER_CONNECTION",
        default: "16",
        meaning: "concurrent operations (SFTP work, diffs, scripts) one connection may run; past it 10008",
    },
    SettingDoc {
        name: "PINKPAGE_SSH_MAX_SESSIONS_PER_SERVER",
        default: "200",
        meaning: "SSH sessions open at once to one server (host and port) across the daemon; more wait in a queue",
    },
    SettingDoc {
        name: "PINKPAGE_SSH_SESSION_WAIT_S",
        default: "10",
        meaning: "longest wait in that queue before 20003",
    },
    caps::PENDING_DOC,
    caps::RESERVED_FDS_DOC,
    caps::REQUEST_HEAD_TIMEOUT_DOC,
    caps::FRAME_ALLOWANCE_DOC,
    caps::FRAME_BUDGET_DOC,
    work_limits::BODY_MAX_DOC,
    work_limits::ANON_BODY_MAX_DOC,
    terminals::DOCS[0],
    terminals::DOCS[1],
    terminals::DOCS[2],
    terminals::DOCS[3],
    terminals::DOCS[4],
    terminals::DOCS[5],
    recordings::DOCS[0],
    recordings::DOCS[1],
    recordings::DOCS[2],
    recordings::DOCS[3],
    retention::DOCS[0],
    retention::DOCS[1],
    retention::DOCS[2],
    command_rules::REVIEW_TIMEOUT_DOC,
];

/// The daemon's settings, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Environment name (`ENV`), shown by the health endpoint.
    pub env_name: String,
    /// Listen address; port 0 picks a free one.
    pub bind: SocketAddr,
    /// The metrics-only listener, when set (`PINKPAGE_METRICS_BIND`).
    pub metrics_bind: Option<SocketAddr>,
    /// SQLite file (when `database_url` is unset).
    pub db_path: PathBuf,
    /// The PostgreSQL database, when the records are kept there
    /// (`PINKPAGE_DATABASE_URL`; may hold a password).
    pub database_url: Option<Secret>,
    /// This daemon's instance id (`PINKPAGE_INSTANCE_ID`,
    /// `crate::records::instance`); `None`: the records' default, for a
    /// daemon alone on its SQLite file.
    pub instance_id: Option<String>,
    /// Directory for recordings and other files.
    pub data_dir: PathBuf,
    /// Where `POST /api/v1/admin/backup` writes its copies.
    pub backup_dir: PathBuf,
    /// Scripts BMX5 `script_execute` may run by name (names only, no paths).
    pub scripts_dir: PathBuf,
    /// Known-hosts file for servers without a pinned fingerprint.
    pub known_hosts: PathBuf,
    /// What to do with an unknown host key.
    pub host_key_mode: HostKeyMode,
    /// SSH connect + handshake + auth timeout.
    pub ssh_connect_timeout: Duration,
    /// Keepalive period of established SSH sessions (`None`: never).
    pub ssh_keepalive: Option<Duration>,
    /// Health check period.
    pub health_interval: Duration,
    /// One health check's timeout.
    pub health_timeout: Duration,
    /// How often free heap is given back (`PINKPAGE_HEAP_TRIM_S`; zero:
    /// never).
    pub heap_trim: Duration,
    /// Health checks at once, when set (`PINKPAGE_HEALTH_MAX_IN_FLIGHT`);
    /// unset: every server.
    pub health_max_in_flight: Option<usize>,
    /// Consecutive failures that make a server unhealthy.
    pub health_failures: u32,
    /// Consecutive successes that make a server healthy again.
    pub health_successes: u32,
    /// Default terminal output flush interval.
    pub throttle: Duration,
    /// BMX4: bytes of stdout, and of stderr, kept per command.
    pub batch_output_cap: usize,
    /// DIFF: largest file compared (bytes), and stdout kept per side of
    /// `diff_command`.
    pub diff_max_bytes: u64,
    /// Admit new remote actions while audit rows cannot be written.
    pub audit_fail_open: bool,
    /// The audit chain's key file (never the key itself).
    pub audit_key_file: PathBuf,
    /// How long a graceful shutdown may take.
    pub shutdown_grace: Duration,
    /// The diff memory budget and the upload body idle timeout.
    pub work_limits: work_limits::WorkLimits,
    /// WebSocket ping period.
    pub ws_heartbeat: Duration,
    /// A WebSocket client silent this long is dropped.
    pub ws_client_timeout: Duration,
    /// Log line format.
    pub log_format: LogFormat,
    /// Who may reach the daemon from where; sign-in lifetimes.
    pub access: access::AccessSettings,
    /// Caps on connections, operations and SSH sessions.
    pub caps: caps::CapSettings,
    /// Operator terminals: scrollback, detach and idle times, limits.
    pub terminals: terminals::TerminalSettings,
    /// Recordings of PTYs: input, failure, retention.
    pub recordings: recordings::RecordingSettings,
    /// HTTPS: the certificate and key files (`None`: plain HTTP).
    pub tls: Option<TlsFiles>,
    /// How long finished work's records and the audit trail are kept.
    pub retention: retention::RetentionSettings,
    /// Configured servers by name (sorted, so listings are stable).
    pub servers: BTreeMap<String, Arc<ServerSpec>>,
    /// Configured transfers by name.
    pub transfers: BTreeMap<String, Arc<TransferSpec>>,
    /// Configured workflows by name, each checked against the servers and
    /// transfers.
    pub workflows: BTreeMap<String, Arc<pinkpage_actors::workflow::definition::Workflow>>,
    /// The command rules (`[[command_rules]]`) and their default action.
    pub command_policy: Arc<pinkpage_actors::policy::rules::CommandPolicy>,
    /// How long a command held for review waits for an answer.
    pub review_timeout: Duration,
}

impl Settings {
    /// Reads settings from the process environment.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a variable name to its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let env = Env(&lookup);
        let mut servers = BTreeMap::new();
        let mut transfers = BTreeMap::new();
        let mut raw_workflows = Vec::new();
        let mut command_policy = pinkpage_actors::policy::rules::CommandPolicy::default();

        for (name, prefix) in [("mdwap1p", "MDWAP1P"), ("mypap1d", "MYPAP1D")] {
            let ip_var = &format!("{prefix}_IP");
            let port_var = &format!("{prefix}_PORT");
            if let Some(host) = env.get(ip_var) {
                let username = env.get("HIWARE_ID").ok_or_else(|| {
                    SettingsError::new("HIWARE_ID", format!("required because {ip_var} is set"))
                })?;
                let password = env.get("HIWARE_PW").ok_or_else(|| {
                    SettingsError::new("HIWARE_PW", format!("required because {ip_var} is set"))
                })?;
                let spec = ServerSpec {
                    name: name.to_owned(),
                    host,
                    port: env.parse_or(port_var, 22u16, |p| *p > 0)?,
                    username,
                    auth: Auth::Password(Secret::new(password)),
                    host_key_fingerprint: None,
                    encoding: env.encoding(&format!("{prefix}_ENCODING"))?,
                    tags: vec!["seed".to_owned()],
                    command_mode: env.command_mode(&format!("{prefix}_COMMAND_MODE"))?,
                    record: true,
                };
                servers.insert(name.to_owned(), Arc::new(spec));
            }
        }

        let servers_file = env.get("PINKPAGE_SERVERS_FILE").map(PathBuf::from);
        if let Some(path) = &servers_file {
            let file = servers_file::load(path, &lookup)?;
            for server in file.servers {
                if servers.contains_key(&server.name) {
                    return Err(SettingsError::new(
                        "PINKPAGE_SERVERS_FILE",
                        format!("server '{}' is defined twice", server.name),
                    ));
                }
                servers.insert(server.name.clone(), Arc::new(server));
            }
            for transfer in file.transfers {
                if transfers.contains_key(&transfer.name) {
                    return Err(SettingsError::new(
                        "PINKPAGE_SERVERS_FILE",
                        format!("transfer '{}' is defined twice", transfer.name),
                    ));
                }
                transfers.insert(transfer.name.clone(), Arc::new(transfer));
            }
            raw_workflows = file.workflows;
            command_policy = file.command_policy;
        }
        if servers.is_empty() {
            return Err(SettingsError::new(
                "PINKPAGE_SERVERS_FILE",
                "no servers configured: set MDWAP1P_IP / MYPAP1D_IP (with HIWARE_ID, HIWARE_PW) or a servers file",
            ));
        }

        // The seed's one transfer is a default whenever its two servers exist.
        let seed = default_transfer();
        if servers.contains_key(&seed.source_server)
            && servers.contains_key(&seed.destination_server)
            && !transfers.contains_key(&seed.name)
        {
            transfers.insert(seed.name.clone(), Arc::new(seed));
        }
        for t in transfers.values() {
            for (key, server) in [
                ("source_server", &t.source_server),
                ("destination_server", &t.destination_server),
            ] {
                if !servers.contains_key(server) {
                    return Err(SettingsError::new(
                        "PINKPAGE_SERVERS_FILE",
                        format!(
                            "transfer '{}' {key} '{server}' is not a configured server",
                            t.name
                        ),
                    ));
                }
            }
        }

        let workflows = workflows::build(raw_workflows, &servers, &transfers)
            .map_err(|problem| SettingsError::new("PINKPAGE_SERVERS_FILE", problem))?;

        let host_key_mode = match env.get("PINKPAGE_HOST_KEY_POLICY").as_deref() {
            None | Some("strict") => HostKeyMode::Strict,
            Some("accept-new") => HostKeyMode::AcceptNew,
            Some(other) => {
                return Err(SettingsError::new(
                    "PINKPAGE_HOST_KEY_POLICY",
                    format!("'{other}' is not one of strict, accept-new"),
                ))
            }
        };
        let log_format = match env.get("PINKPAGE_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(SettingsError::new(
                    "PINKPAGE_LOG_FORMAT",
                    format!("'{other}' is not one of text, json"),
                ))
            }
        };

        let health_interval = env.seconds("PINKPAGE_HEALTH_INTERVAL_S", 30.0)?;
        let health_timeout = env.seconds("PINKPAGE_HEALTH_TIMEOUT_S", 5.0)?;
        let ws_heartbeat = env.seconds("PINKPAGE_WS_HEARTBEAT_S", 5.0)?;
        let ws_client_timeout = env.seconds("PINKPAGE_WS_TIMEOUT_S", 10.0)?;
        if ws_client_timeout <= ws_heartbeat {
            return Err(SettingsError::new(
                "PINKPAGE_WS_TIMEOUT_S",
                "must be longer than PINKPAGE_WS_HEARTBEAT_S, or every client is dropped between two pings",
            ));
        }

        let bind = env.parse_or("PINKPAGE_BIND", SocketAddr::from(([127, 0, 0, 1], 8000)), |_| {
            true
        })?;
        let access = access::parse(&env, bind)?;
        let data_dir = env.path("PINKPAGE_DATA_DIR", "data");
        Ok(Settings {
            env_name: env.get("ENV").unwrap_or_else(|| "dev".to_owned()),
            bind,
            metrics_bind: metrics_bind(&env)?,
            db_path: env.path("PINKPAGE_DB", DEFAULT_DB_PATH),
            database_url: database_url(&env),
            instance_id: instance_id(&env, bind)?,
            audit_key_file: audit_key_file(&env, &data_dir),
            backup_dir: env
                .get("PINKPAGE_BACKUP_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("backups")),
            data_dir,
            scripts_dir: env.path("PINKPAGE_SCRIPTS_DIR", "scripts.d"),
            known_hosts: env.path("PINKPAGE_KNOWN_HOSTS", "known_hosts"),
            host_key_mode,
            ssh_connect_timeout: env.seconds("PINKPAGE_SSH_CONNECT_TIMEOUT_S", 10.0)?,
            // 0 is off; below 0.25 s the kernel's user timeout (4 periods)
            // would round to "off" and the server would be flooded
            ssh_keepalive: Some(env.seconds_or_zero("PINKPAGE_SSH_KEEPALIVE_S", 15.0)?)
                .filter(|d| !d.is_zero())
                .map(|d| {
                    if d < Duration::from_millis(250) {
                        Err(SettingsError::new(
                            "PINKPAGE_SSH_KEEPALIVE_S",
                            "must be 0 (off) or at least 0.25",
                        ))
                    } else {
                        Ok(d)
                    }
                })
                .transpose()?,
            health_interval,
            health_timeout,
            heap_trim: env.seconds_or_zero("PINKPAGE_HEAP_TRIM_S", 10.0)?,
            health_max_in_flight: match env.get("PINKPAGE_HEALTH_MAX_IN_FLIGHT") {
                None => None,
                Some(_) => Some(env.parse_or("PINKPAGE_HEALTH_MAX_IN_FLIGHT", 0usize, |n| {
                    (1..=4096).contains(n)
                })?),
            },
            health_failures: env.parse_or("PINKPAGE_HEALTH_FAILURES", 2u32, |n| *n > 0)?,
            health_successes: env.parse_or("PINKPAGE_HEALTH_SUCCESSES", 1u32, |n| *n > 0)?,
            throttle: Duration::from_millis(
                env.parse_or("PINKPAGE_THROTTLE_MS", 100u64, |ms| *ms <= 60_000)?,
            ),
            batch_output_cap: env.parse_or("PINKPAGE_BATCH_OUTPUT_CAP_BYTES", 1usize << 20, |n| {
                (1..=64 << 20).contains(n)
            })?,
            diff_max_bytes: env.parse_or("PINKPAGE_DIFF_MAX_BYTES", 10u64 << 20, |n| {
                (1..=256 << 20).contains(n)
            })?,
            audit_fail_open: env.parse_or("PINKPAGE_AUDIT_FAIL_OPEN", false, |_| true)?,
            shutdown_grace: env.seconds("PINKPAGE_SHUTDOWN_GRACE_S", 10.0)?,
            work_limits: work_limits::parse(&env)?,
            ws_heartbeat,
            ws_client_timeout,
            log_format,
            access,
            caps: caps::parse(&env)?,
            terminals: terminals::parse(&env)?,
            recordings: recordings::parse(&env)?,
            tls: match (env.get("PINKPAGE_TLS_CERT"), env.get("PINKPAGE_TLS_KEY")) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.into(),
                    key: key.into(),
                }),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(SettingsError::new(
                        "PINKPAGE_TLS_KEY",
                        "required because PINKPAGE_TLS_CERT is set",
                    ))
                }
                (None, Some(_)) => {
                    return Err(SettingsError::new(
                        "PINKPAGE_TLS_CERT",
                        "required because PINKPAGE_TLS_KEY is set",
                    ))
                }
            },
            retention: retention::parse(&env)?,
            servers,
            transfers,
            workflows,
            command_policy: Arc::new(command_policy),
            review_timeout: env.seconds("PINKPAGE_REVIEW_TIMEOUT_S", 600.0)?,
        })
    }

    /// Looks a configured server up by name.
    pub fn server(&self, name: &str) -> Option<&Arc<ServerSpec>> {
        self.servers.get(name)
    }
}

/// Where the database is when `PINKPAGE_DB` is unset.
pub const DEFAULT_DB_PATH: &str = "pinkpage.db";

/// `PINKPAGE_DB` from the process environment (or its default) alone: the
/// command line's user and token commands need the database but not the
/// servers, so they must not fail on a missing servers file.
pub fn db_path_from_env() -> PathBuf {
    Env(&|name| std::env::var(name).ok()).path("PINKPAGE_DB", DEFAULT_DB_PATH)
}

/// `PINKPAGE_DATABASE_URL`, when set: the records are in PostgreSQL.
fn database_url(env: &Env<'_>) -> Option<Secret> {
    env.get("PINKPAGE_DATABASE_URL")
        .map(|url| Secret::new(url.trim()))
}

/// `PINKPAGE_DATABASE_URL` from the process environment alone, for the
/// command line (as [`db_path_from_env`]).
pub fn database_url_from_env() -> Option<Secret> {
    database_url(&Env(&|name| std::env::var(name).ok()))
}

/// `PINKPAGE_INSTANCE_ID`: letters, digits and `.:_-`, at most 64. Unset:
/// `None` for a daemon on SQLite (the only one on its file: the records'
/// default id), and `<hostname>:<port>` on PostgreSQL, which stays the
/// same across the instance's restarts and differs between instances.
fn instance_id(env: &Env<'_>, bind: SocketAddr) -> Result<Option<String>, SettingsError> {
    const NAME: &str = "PINKPAGE_INSTANCE_ID";
    match env.get(NAME) {
        Some(id) => {
            let id = id.trim().to_owned();
            if id.len() > 64
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '_' | '-'))
            {
                return Err(SettingsError::new(
                    NAME,
                    format!("'{id}' is not an instance id: letters, digits and . : _ -, at most 64"),
                ));
            }
            Ok(Some(id))
        }
        None if env.get("PINKPAGE_DATABASE_URL").is_some() && bind.port() == 0 => Err(SettingsError::new(
            NAME,
            "must be set on PostgreSQL when PINKPAGE_BIND's port is 0: the default, <hostname>:<port>, would not stay the same across restarts nor differ between instances",
        )),
        None if env.get("PINKPAGE_DATABASE_URL").is_some() => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "host".to_owned());
            let host: String = host
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .take(50)
                .collect();
            Ok(Some(format!("{host}:{}", bind.port())))
        }
        None => Ok(None),
    }
}

/// `PINKPAGE_AUDIT_KEY_FILE` from the process environment (or its default
/// in `PINKPAGE_DATA_DIR`) alone: the command line's account and audit
/// commands read the same key file as the daemon.
pub fn audit_key_file_from_env() -> PathBuf {
    let env = Env(&|name| std::env::var(name).ok());
    audit_key_file(&env, &env.path("PINKPAGE_DATA_DIR", "data"))
}

/// `PINKPAGE_METRICS_BIND`: a port alone listens on loopback; an address
/// is taken as written.
fn metrics_bind(env: &Env<'_>) -> Result<Option<SocketAddr>, SettingsError> {
    let Some(raw) = env.get("PINKPAGE_METRICS_BIND") else {
        return Ok(None);
    };
    let raw = raw.trim();
    if let Ok(port) = raw.parse::<u16>() {
        return Ok(Some(SocketAddr::from(([127, 0, 0, 1], port))));
    }
    raw.parse::<SocketAddr>().map(Some).map_err(|_| {
        SettingsError::new(
            "PINKPAGE_METRICS_BIND",
            format!("'{raw}' is neither a port nor an address like 127.0.0.1:9464"),
        )
    })
}

fn audit_key_file(env: &Env<'_>, data_dir: &std::path::Path) -> PathBuf {
    env.get("PINKPAGE_AUDIT_KEY_FILE")
        .map_or_else(|| data_dir.join("audit.key"), PathBuf::from)
}

/// The seed's `stub_data_transfer`, configured whenever `mdwap1p` and
/// `mypap1d` both exist and the servers file does not redefine it.
pub fn default_transfer() -> TransferSpec {
    TransferSpec {
        name: "stub_data_transfer".to_owned(),
        source_server: "mdwap1p".to_owned(),
        source_glob: "/nbsftp/myd/myp/snd/postgresql_unload/*.dat".to_owned(),
        destination_server: "mypap1d".to_owned(),
        destination_dir: "/shbftp/myd/myp/rcv/mock/".to_owned(),
        verify_sha256: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pinkpage_actors::server::CommandMode;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(move |k| map.get(k).cloned())
    }

    const SEED: &[(&str, &str)] = &[
        ("HIWARE_ID", "hiware"),
        ("HIWARE_PW", "s3cret-pw"),
        ("MDWAP1P_IP", "10.0.0.1"),
        ("MYPAP1D_IP", "10.0.0.2"),
    ];

    #[test]
    fn the_instance_id_is_local_on_sqlite_host_and_port_on_postgres_and_checked_when_given() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = SEED.to_vec();
            vars.extend_from_slice(extra);
            settings(&vars)
        };
        let sqlite = with(&[]).unwrap();
        assert_eq!(sqlite.instance_id, None, "the records' default");
        assert!(sqlite.database_url.is_none());
        let url = ("PINKPAGE_DATABASE_URL", "postgres://pp:pw@db/pinkpage");
        let pg = with(&[url]).unwrap();
        let id = pg.instance_id.clone().unwrap();
        assert!(id.ends_with(":8000"), "{id}");
        // the URL holds a password: Debug never shows it
        assert!(!format!("{pg:?}").contains("pw@"), "{pg:?}");
        // port 0 gives no stable default: it must be said
        let e = with(&[url, ("PINKPAGE_BIND", "127.0.0.1:0")]).unwrap_err();
        assert_eq!(e.variable, "PINKPAGE_INSTANCE_ID");
        let given = with(&[
            url,
            ("PINKPAGE_BIND", "127.0.0.1:0"),
            ("PINKPAGE_INSTANCE_ID", "node-1"),
        ]);
        assert_eq!(given.unwrap().instance_id.as_deref(), Some("node-1"));
        for bad in ["a b", "x/y", "'; drop", &"n".repeat(65)] {
            let bad: &'static str = Box::leak(bad.to_owned().into_boxed_str());
            let e = with(&[("PINKPAGE_INSTANCE_ID", bad)]).unwrap_err();
            assert_eq!(e.variable, "PINKPAGE_INSTANCE_ID", "{bad}");
        }
    }

    #[test]
    fn the_seed_variables_define_two_servers_and_the_default_transfer() {
        let s = settings(SEED).unwrap();
        assert_eq!(s.servers.keys().collect::<Vec<_>>(), ["mdwap1p", "mypap1d"]);
        assert_eq!(s.servers["mdwap1p"].port, 22);
        assert_eq!(s.servers["mypap1d"].host, "10.0.0.2");
        assert!(s.transfers.contains_key("stub_data_transfer"));
    }

    #[test]
    fn defaults_follow_the_spec() {
        let s = settings(SEED).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(s.db_path, PathBuf::from("pinkpage.db"));
        assert_eq!(s.host_key_mode, HostKeyMode::Strict);
        assert_eq!(s.health_interval, Duration::from_secs(30));
        assert_eq!(s.health_timeout, Duration::from_secs(5));
        assert_eq!(s.throttle, Duration::from_millis(100));
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn seed_ports_can_be_overridden() {
        let mut vars = SEED.to_vec();
        vars.push(("MDWAP1P_PORT", "2222"));
        assert_eq!(settings(&vars).unwrap().servers["mdwap1p"].port, 2222);
    }

    #[test]
    fn seed_servers_take_a_command_mode_and_an_encoding_each() {
        let s = settings(SEED).unwrap();
        assert_eq!(s.servers["mdwap1p"].command_mode, CommandMode::Exec);
        assert_eq!(s.servers["mdwap1p"].encoding, encoding_rs::UTF_8);
        let mut vars = SEED.to_vec();
        vars.push(("MDWAP1P_COMMAND_MODE", "shell"));
        vars.push(("MYPAP1D_ENCODING", "euc-kr"));
        let s = settings(&vars).unwrap();
        assert_eq!(s.servers["mdwap1p"].command_mode, CommandMode::Shell);
        assert_eq!(s.servers["mypap1d"].command_mode, CommandMode::Exec);
        assert_eq!(s.servers["mypap1d"].encoding, encoding_rs::EUC_KR);
        assert_eq!(s.servers["mdwap1p"].encoding, encoding_rs::UTF_8);
    }

    #[test]
    fn fractional_health_intervals_are_allowed() {
        let mut vars = SEED.to_vec();
        vars.push(("PINKPAGE_HEALTH_INTERVAL_S", "0.2"));
        assert_eq!(
            settings(&vars).unwrap().health_interval,
            Duration::from_millis(200)
        );
    }

    #[test]
    fn keepalives_default_to_15_s_and_0_turns_them_off() {
        assert_eq!(
            settings(SEED).unwrap().ssh_keepalive,
            Some(Duration::from_secs(15))
        );
        let mut vars = SEED.to_vec();
        vars.push(("PINKPAGE_SSH_KEEPALIVE_S", "0"));
        assert_eq!(settings(&vars).unwrap().ssh_keepalive, None);
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (var, value) in [
            ("PINKPAGE_BIND", "not-an-address"),
            ("PINKPAGE_HOST_KEY_POLICY", "yolo"),
            ("PINKPAGE_HEALTH_INTERVAL_S", "-1"),
            ("PINKPAGE_HEALTH_TIMEOUT_S", "NaN"),
            ("PINKPAGE_THROTTLE_MS", "fast"),
            ("PINKPAGE_LOG_FORMAT", "xml"),
            ("MDWAP1P_PORT", "0"),
            ("PINKPAGE_HEALTH_FAILURES", "0"),
            ("PINKPAGE_SSH_KEEPALIVE_S", "-1"),
            ("PINKPAGE_SSH_KEEPALIVE_S", "0.01"),
            ("PINKPAGE_AUDIT_FAIL_OPEN", "yes"),
            ("MDWAP1P_COMMAND_MODE", "pty"),
            ("MYPAP1D_ENCODING", "klingon"),
        ] {
            let mut vars = SEED.to_vec();
            vars.push((var, value));
            let err = settings(&vars).unwrap_err();
            assert_eq!(err.variable, var, "{err}");
        }
    }

    #[test]
    fn a_seed_server_without_credentials_names_the_missing_variable() {
        let err = settings(&[("MDWAP1P_IP", "10.0.0.1"), ("HIWARE_ID", "u")]).unwrap_err();
        assert_eq!(err.variable, "HIWARE_PW");
    }

    #[test]
    fn no_servers_at_all_is_an_error() {
        assert!(settings(&[]).is_err());
    }

    #[test]
    fn a_heartbeat_longer_than_the_timeout_is_refused() {
        let mut vars = SEED.to_vec();
        vars.push(("PINKPAGE_WS_HEARTBEAT_S", "20"));
        assert_eq!(settings(&vars).unwrap_err().variable, "PINKPAGE_WS_TIMEOUT_S");
    }

    #[test]
    fn settings_debug_does_not_show_the_password() {
        let s = settings(SEED).unwrap();
        assert!(!format!("{s:?}").contains("s3cret-pw"));
    }

    #[test]
    fn the_readme_documents_every_setting() {
        let readme = include_str!("../../README.md");
        for s in SETTINGS {
            assert!(readme.contains(s.name), "README.md does not mention {}", s.name);
        }
    }

    #[test]
    fn env_example_documents_every_setting() {
        let example = include_str!("../../.env.example");
        for s in SETTINGS {
            assert!(
                example.contains(s.name),
                ".env.example does not mention {}",
                s.name
            );
        }
    }
}
