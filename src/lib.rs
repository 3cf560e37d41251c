//! Pink-Page, the daemon: settings, the HTTP/WebSocket surface, the
//! records path and the store, on top of the `pinkpage-actors` engine.
//!
//! # Layout, lowest layer first
//! A module imports its own layer and those below, never one above, and
//! no two files import each other (`tests/api/layers.rs` checks both;
//! `docs/architecture.md` draws them).
//! 1. Leaves:
//!    [`settings`] (environment, `.env` and the servers file, validated
//!    once), [`systemd`] (`sd_notify` readiness), [`in_flight`] (work the
//!    graceful stop waits for), [`records`] (every record type, defined
//!    once), [`text`] (character rules of names and labels), [`tls`] (the
//!    certificate served over HTTPS, renewed without a restart),
//!    [`metrics`] (the Prometheus recorder and the text format of the
//!    series read at scrape time).
//! 2. [`accounts`] (users, tokens, sessions as records; password hashing),
//!    [`logging`] (text or JSON lines), [`request`] (request fields parsed
//!    once into validated types), [`connections`] (the open WebSockets and
//!    their caps), [`limits`] (what else one client may make the daemon
//!    hold: descriptors, connections not yet admitted, request bodies, the
//!    memory of incomplete WebSocket messages).
//! 3. [`store`]: where records are kept, one trait per domain; SQLite on
//!    its own threads, and an in-memory store for unit tests.
//! 4. [`journal`] (the one path every record takes to the store, bounded
//!    and kept while the store fails) and [`auth`] (who may do what: the
//!    access table, credentials, `Host`/`Origin`, login throttling).
//! 5. [`diff_jobs`] (diff requests validated once and run, for WebSocket
//!    and REST), [`workflows`] (`WorkflowHub`: runs in flight, their
//!    history, typed events for watchers) and [`terminals`]
//!    (`TerminalWarden`: operator terminals re-judged, closed at shutdown
//!    and audited outside any connection); below them [`retention`]
//!    (deleting finished work's old records and the audit trail's old
//!    prefixes, in small batches, on a schedule).
//! 6. [`state`]: what every handler can reach; then [`reload`] (the
//!    configuration read again while the daemon serves, on SIGHUP or a
//!    request).
//! 7. [`api`]: REST handlers, OpenAPI and Swagger UI.
//! 8. [`ws`]: the WebSocket endpoints, one connection actor for all
//!    domains, each domain's frames.
//! 9. [`admission`] (the single middleware every request passes through)
//!    and [`console`] (the operator console at `/ui/`, embedded files).
//! 10. [`shutdown`] (the graceful stop on SIGTERM/SIGINT) and [`cli`] (the
//!     command line's account commands).
//! 11. [`startup`]: [`startup::Application`] builds the store, the journal,
//!     the actors and the HTTP server; `main` only loads settings and runs
//!     it.

pub mod accounts;
pub mod admission;
pub mod api;
pub mod auth;
pub mod cli;
pub mod connections;
pub mod console;
pub mod diff_jobs;
pub mod in_flight;
pub mod journal;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod recordings;
pub mod records;
pub mod reload;
pub mod request;
pub mod retention;
pub mod reviews;
pub mod settings;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod store;
pub mod systemd;
pub mod terminals;
pub mod text;
pub mod tls;
pub mod workflows;
pub mod ws;
