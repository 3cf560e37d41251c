//! The DIFF domain (`/ws/v1/diff`): compare files, directories and command
//! output between two servers (SPEC section 4, DIFF; protocol in
//! docs/diff.md). REST (`POST /api/v1/diff/...`) takes the same requests
//! and answers the same objects through [`DiffJob`], which lives in
//! [`crate::diff_jobs`] so REST does not import this layer.
//!
//! - [`wire`]: what a client sends;
//! - this file: per-connection state and dispatch.
//!
//! Per connection it owns:
//! - an [`SftpPool`]: one SSH + SFTP session per server, reused by this
//!   client's diffs, closed by the pool's actor when idle and when the
//!   client goes away;
//! - the handles of its running diffs: each is a `DiffJobActor` (the task
//!   contract), so when the connection stops every diff is stopped, and a
//!   `diff_command` signals its commands on both servers (they run without
//!   a PTY and would otherwise outlive their client).
//!
//! Diffs run concurrently, each its own task; the reply carries the
//! request's `request_id`. Diffs need no session lock; each one is logged,
//! and audited when accepted (`diff.files`, `diff.dirs`, `diff.command`
//! with its command text), since each runs on the servers.

pub mod wire;

use std::collections::HashMap;

use actix::{Actor, AsyncContext, Handler};
use pinkpage_actors::files::pool::SftpPool;
use pinkpage_actors::task::{Done, Pending, TaskEvent, TaskHandle, TaskId};

use self::wire::DiffRequest;
use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::RequestId;
use crate::diff_jobs::task::{DiffJobActor, DiffJobRequest, DiffMessage};
use crate::diff_jobs::DiffJob;

/// Per-connection DIFF state. Owned by the connection actor alone.
#[derive(Default)]
pub struct Diff {
    /// This client's SFTP sessions; started with the first diff, stopped
    /// with the connection.
    pool: Option<SftpPool>,
    /// The running diffs.
    running: HashMap<TaskId, RunningDiff>,
}

/// A running diff: the request it answers, how to stop it, and what it
/// was allowed on (judged again when access changes).
struct RunningDiff {
    rid: RequestId,
    task: TaskHandle,
    /// Its message type.
    kind: &'static str,
    /// Its two servers.
    servers: [String; 2],
    /// Stopped with 10010 (once).
    withdrawn: bool,
}

impl Domain for Diff {
    type Request = DiffRequest;
    const TYPES: &'static [&'static str] = &["diff_files", "diff_dirs", "diff_command"];
    const WELCOME: &'static str = "Connected to DIFF WebSocket";
    const NAME: &'static str = "diff";
    const PATH: &'static str = "/ws/v1/diff";

    fn handle(conn: &mut WsConnection<Self>, req: DiffRequest, rid: RequestId, ctx: &mut WsCtx<Self>) {
        let settings = &conn.state.settings();
        let job = match &req {
            DiffRequest::DiffFiles(r) => DiffJob::files(settings, &conn.principal, r),
            DiffRequest::DiffDirs(r) => DiffJob::dirs(settings, &conn.principal, r),
            DiffRequest::DiffCommand(r) => DiffJob::command(settings, &conn.principal, r),
        };
        let job = match job {
            Ok(j) => j,
            Err(e) => return conn.send_error(ctx, &e, &rid),
        };
        let held = match job.held(&conn.rules_telling(&rid, ctx)) {
            Ok(held) => held,
            Err(e) => return conn.send_error(ctx, &e, &rid),
        };
        let Some(counted) = conn.operation_or_refuse(&rid, ctx) else {
            return;
        };
        let reservation = match conn.state.diff_budget.reserve(job.memory_bound()) {
            Ok(r) => r,
            Err(e) => return conn.send_error(ctx, &e, &rid),
        };
        conn.state
            .journal
            .audit(job.audit_event(conn.audit_event("diff")));
        let (kind, [left, right]) = job.scope();
        let (kind, servers) = (kind, [left.to_owned(), right.to_owned()]);
        let request = DiffJobRequest {
            reservation,
            job,
            pool: conn
                .domain
                .pool
                .get_or_insert_with(|| SftpPool::start(conn.state.temp_files.clone()))
                .clone(),
            ssh: conn.state.ssh.clone(),
            who: conn.id.to_string(),
            held,
        };
        let task_id = TaskId::next();
        let (reporter, handle) = Pending::new(task_id, ctx.address().recipient()).split();
        let addr = DiffJobActor::new(request, reporter).start();
        let task = counted.until_done(handle(addr.recipient()));
        conn.domain.running.insert(
            task_id,
            RunningDiff {
                rid,
                task,
                kind,
                servers,
                withdrawn: false,
            },
        );
    }

    /// Each running diff is judged again on its two servers with the
    /// principal as it is now, and stopped with 10010 when no longer
    /// covered (a `diff_command` signals its commands).
    fn access_changed(conn: &mut WsConnection<Self>, ctx: &mut WsCtx<Self>) {
        let mut withdrawn = Vec::new();
        for (id, diff) in &conn.domain.running {
            let servers = [diff.servers[0].as_str(), diff.servers[1].as_str()];
            if diff.withdrawn {
                continue;
            }
            if let Err(why) = conn.judge(diff.kind, &servers) {
                withdrawn.push((*id, why));
            }
        }
        for (id, why) in withdrawn {
            let Some(diff) = conn.domain.running.get_mut(&id) else {
                continue;
            };
            diff.withdrawn = true;
            let _ = diff.task.stop();
            let (rid, servers) = (diff.rid.clone(), diff.servers.clone());
            let servers = [servers[0].as_str(), servers[1].as_str()];
            conn.withdraw(ctx, &why, &rid, "diff", &servers);
        }
    }

    fn stopping(conn: &mut WsConnection<Self>, _: &mut WsCtx<Self>) -> Vec<Done> {
        // Stop every diff: a diff_command signals its commands.
        for (_, diff) in conn.domain.running.drain() {
            let _ = diff.task.stop();
        }
        if let Some(pool) = conn.domain.pool.take() {
            pool.stop();
        }
        Vec::new()
    }
}

impl Handler<DiffMessage> for WsConnection<Diff> {
    type Result = ();

    fn handle(&mut self, msg: DiffMessage, ctx: &mut WsCtx<Diff>) {
        let TaskEvent::Finished {
            outcome,
            cleanup_error,
        } = msg.event
        else {
            return; // diff jobs send no notices
        };
        let Some(RunningDiff { rid, .. }) = self.domain.running.remove(&msg.task_id) else {
            return;
        };
        match outcome {
            Some(Ok(reply)) => self.send(ctx, &reply, &rid),
            Some(Err(e)) => self.send_error(ctx, &e.error, &rid),
            None => {}
        }
        if let Some(e) = cleanup_error {
            self.send_error(ctx, &e, &rid);
        }
    }
}
