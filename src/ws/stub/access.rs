//! What an access change does to a STUB connection
//! ([`Domain::access_changed`](crate::ws::connection::Domain::access_changed)):
//! its command or transfer is judged again with the principal as it is now
//! and stopped with 10010 when no longer covered, and a lock this
//! connection may no longer hold (its role fell below what
//! `start_session` needs) is given back once the task ended. A workflow
//! run under this connection's lock is judged by the workflow hub, which
//! judges every run in flight the same way.

use pinkpage_actors::policy::rules::RuleAction;
use pinkpage_actors::AppError;

use super::session::give_back;
use super::state::{Stub, TaskKind};
use super::tasks::stop_task;
use crate::auth::rejudge::withdrawn;
use crate::ws::connection::{WsConnection, WsCtx};

pub(super) fn access_changed(conn: &mut WsConnection<Stub>, ctx: &mut WsCtx<Stub>) {
    if let Some((what, servers, Err(why))) = judge_task(conn) {
        let rid = conn
            .domain
            .task
            .live()
            .map(|(_, t)| t.rid.clone())
            .unwrap_or(None);
        let servers: Vec<&str> = servers.iter().map(String::as_str).collect();
        // the client hears 10010, then the task's own end
        conn.withdraw(ctx, &why, &rid, what, &servers);
        let _ = stop_task(conn, ctx);
    }
    if conn.domain.grant.is_some() {
        if let Err(why) = conn.judge("start_session", &[]) {
            give_back(conn, why, ctx);
        }
    }
}

/// Whether the command rules as they are now (a reload may have changed
/// them) still let `command` run on `server`: one they now deny is
/// withdrawn; one they now hold for review goes on, since it was allowed
/// to start and cannot be held half-way.
fn still_allowed(conn: &WsConnection<Stub>, server: &str, command: &str) -> Result<(), AppError> {
    let settings = conn.state.settings();
    let Some(spec) = settings.server(server) else {
        return Err(withdrawn(format!("server '{server}' is no longer configured")));
    };
    if command.is_empty() {
        return Ok(());
    }
    let verdict = conn.rules().verdict(spec, command);
    match verdict.action {
        RuleAction::Deny => Err(withdrawn(format!(
            "the command rules changed: {}",
            verdict.denial(server).detail.unwrap_or_default()
        ))),
        RuleAction::Allow | RuleAction::Review => Ok(()),
    }
}

/// The running command or transfer (none for a workflow run: the hub
/// judges runs), what it is, its servers and the verdict.
fn judge_task(conn: &WsConnection<Stub>) -> Option<(&'static str, Vec<String>, Result<(), AppError>)> {
    let (_, task) = conn.domain.task.live()?;
    match &task.kind {
        TaskKind::Shell { server, command, .. } => {
            let verdict = conn
                .judge("ssh_command", &[server])
                .and_then(|()| still_allowed(conn, server, command));
            Some(("ssh command", vec![server.clone()], verdict))
        }
        TaskKind::Transfer { name } => match conn.state.settings().transfers.get(name) {
            Some(t) => {
                let servers = vec![t.source_server.clone(), t.destination_server.clone()];
                let verdict = conn.judge("scp_transfer", &[&t.source_server, &t.destination_server]);
                Some(("transfer", servers, verdict))
            }
            None => Some((
                "transfer",
                Vec::new(),
                Err(withdrawn(format!("transfer '{name}' is no longer configured"))),
            )),
        },
        TaskKind::Workflow => None,
    }
}
