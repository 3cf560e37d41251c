//! `pinkpage hostkey show NAME` and `pinkpage hostkey accept NAME
//! SHA256:...`: host-key rotation from the command line, for when the
//! daemon is down or the admin is on the host. They read the settings
//! (servers, known_hosts, host key policy, connect timeout) as the daemon
//! does, fetch the key the server offers themselves, and share the
//! engine's writer lock on known_hosts with a running daemon
//! (`pinkpage_actors::ssh::rotation`).
//!
//! `accept` writes its `host_key.accept` row straight into the database,
//! linked into the audit chain like the account commands' rows, with the
//! shape the REST route writes ([`crate::api::host_key::audit_row`]). The
//! database and the audit key are opened before anything else, so a
//! change of trust is never made where its row could not be written.

use std::io::Write;
use std::path::Path;

use pinkpage_actors::ssh::rotation::{self, HostKeyReport};
use pinkpage_actors::ssh::{ConnectHooks, HostKeyPolicy, SessionSlots, SshOptions};
use pinkpage_actors::{AppError, ErrorCode};
use rusqlite::{Transaction, TransactionBehavior};

use super::HostKeyCommand;
use crate::records::NewAuditEvent;
use crate::settings::Settings;
use crate::store::chain::KeyFile;
use crate::store::sqlite::audit::insert_audit;

/// Why a host-key command failed; `main` prints it after `pinkpage: `.
#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    /// The engine refused or failed (its code and detail).
    #[error("{0}")]
    Refused(#[from] AppError),
    /// The database or the audit key could not be used.
    #[error("{0}")]
    Audit(String),
    /// Writing the output failed (a closed pipe).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs one `hostkey` command with `settings`, the database at `db` and
/// the audit key in `key_file`.
pub fn run_hostkey(
    settings: &Settings,
    db: &Path,
    key_file: &KeyFile,
    cmd: HostKeyCommand,
    out: &mut dyn Write,
) -> Result<(), HostKeyError> {
    let ssh = ssh_options(settings);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cmd {
        HostKeyCommand::Show { name } => {
            let server = server(settings, &name)?;
            let report = runtime.block_on(rotation::host_key_report(server, &ssh))?;
            print_report(&report, out)?;
        }
        HostKeyCommand::Accept { name, fingerprint } => {
            let server = server(settings, &name)?;
            let (conn, chain) = crate::store::sqlite::open_direct(db, key_file).map_err(|e| {
                HostKeyError::Audit(format!(
                    "the audit trail cannot be written, nothing was changed: {e}"
                ))
            })?;
            let result = runtime.block_on(rotation::accept_host_key(server, &ssh, &fingerprint));
            let row = crate::api::host_key::audit_row(
                NewAuditEvent::new("cli", "host_key.accept").in_domain("cli"),
                &server.name,
                &fingerprint,
                &result,
            );
            let written = Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)
                .and_then(|tx| insert_audit(&tx, &chain, &row).and_then(|_| tx.commit()));
            let accepted = result?;
            written.map_err(|e| HostKeyError::Audit(format!("accepted, but the audit row failed: {e}")))?;
            let previous: Vec<&str> = accepted.previous.iter().map(|k| k.fingerprint.as_str()).collect();
            writeln!(
                out,
                "accepted {} {} for server '{}' in {} (replaced: {})",
                accepted.accepted.algorithm,
                accepted.accepted.fingerprint,
                accepted.server,
                accepted.known_hosts.display(),
                if previous.is_empty() {
                    "nothing".to_owned()
                } else {
                    previous.join(", ")
                }
            )?;
        }
    }
    Ok(())
}

/// The SSH options a host-key command needs: the daemon's timeout and
/// host key policy; no keepalives, no session cap, no hooks (it never
/// opens a session).
fn ssh_options(settings: &Settings) -> SshOptions {
    SshOptions {
        connect_timeout: settings.ssh_connect_timeout,
        host_keys: HostKeyPolicy {
            known_hosts: settings.known_hosts.clone(),
            mode: settings.host_key_mode,
        },
        keepalive: None,
        sessions: SessionSlots::default(),
        on_connect: ConnectHooks::default(),
    }
}

fn server<'a>(
    settings: &'a Settings,
    name: &str,
) -> Result<&'a pinkpage_actors::server::ServerSpec, AppError> {
    settings
        .servers
        .get(name)
        .map(|s| &**s)
        .ok_or_else(|| AppError::with_detail(ErrorCode::UnknownServer, format!("no server named '{name}'")))
}

/// The report as lines of `field value`, the fields of the REST answer.
fn print_report(r: &HostKeyReport, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "server   {} ({}:{})", r.server, r.host, r.port)?;
    writeln!(out, "offered  {} {}", r.offered.algorithm, r.offered.fingerprint)?;
    let status = serde_json::to_value(r.status).unwrap_or_default();
    writeln!(out, "status   {}", status.as_str().unwrap_or("?"))?;
    for k in &r.known {
        writeln!(
            out,
            "known    {} {} (line {})",
            k.algorithm, k.fingerprint, k.line
        )?;
    }
    if let Some(pinned) = &r.pinned {
        writeln!(out, "pinned   {pinned}")?;
    }
    Ok(())
}
