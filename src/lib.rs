//! Pink-Page, the daemon: settings, the HTTP/WebSocket surface and the
//! SQLite store, on top of the `pinkpage-actors` engine.
//!
//! # Layout
//! - [`accounts`]: users, API tokens and sign-in sessions in SQLite,
//!   password hashing; shared by the daemon and the command line.
//! - [`settings`]: environment, `.env` and the servers file, validated once.
//! - [`logging`]: `env_logger` set up for text or JSON lines.
//! - [`startup`]: [`startup::Application`] builds the store, the actors and
//!   the HTTP server; `main` only loads settings and runs it.
//! - [`request`]: request fields parsed once into validated types, shared
//!   by WebSocket and REST.
//! - [`diff_jobs`]: diff requests validated once and run, shared by the
//!   DIFF WebSocket domain and the REST diff handlers.
//! - [`admission`]: the single middleware every request passes through.
//! - [`auth`]: identity and access: the access table, credentials, the
//!   `Host`/`Origin` checks, login throttling.
//! - [`api`]: REST handlers, OpenAPI and Swagger UI.
//! - [`console`]: the operator console at `/ui/`, embedded static files.
//! - [`records`]: the daemon's record types, each defined once.
//! - [`store`]: where records are kept: one trait per domain; SQLite on
//!   its own threads, and an in-memory store for unit tests.
//! - [`journal`]: the one path every record takes to the store, bounded
//!   and kept while the store fails.
//! - [`state`]: what every handler can reach.
//! - [`systemd`]: `sd_notify` readiness under `Type=notify`.
//! - [`shutdown`]: the graceful stop on SIGTERM/SIGINT.
//! - [`ws`]: the WebSocket endpoints, one connection actor for all domains.
//! - [`workflows`]: workflow runs from request to running actor, their
//!   frames, history and audit (`WorkflowHub`).

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
pub mod logging;
pub mod records;
pub mod request;
pub mod settings;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod store;
pub mod systemd;
pub mod text;
pub mod workflows;
pub mod ws;
