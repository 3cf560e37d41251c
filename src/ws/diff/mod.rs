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
//! - the sender of a cancel signal: dropping it when the connection stops
//!   stops every `diff_command` still running on the servers (a command
//!   without a PTY would otherwise outlive its client).
//!
//! Diffs run concurrently, each in a detached task; the reply carries the
//! request's `request_id`. Reads need no session lock and are not audited;
//! each one is logged.

pub mod wire;

use actix::{ActorFutureExt, ContextFutureSpawner, WrapFuture};
use pinkpage_actors::files::pool::SftpPool;
use pinkpage_actors::task::Done;
use pinkpage_actors::{AppError, ErrorCode};
use tokio::sync::watch;

use self::wire::DiffRequest;
use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::RequestId;
use crate::diff_jobs::DiffJob;

/// Per-connection DIFF state.
pub struct Diff {
    /// This client's SFTP sessions; started with the first diff, stopped
    /// with the connection.
    pool: Option<SftpPool>,
    /// Dropped when the connection stops: running commands are stopped.
    cancel: watch::Sender<()>,
}

impl Default for Diff {
    fn default() -> Self {
        Diff {
            pool: None,
            cancel: watch::channel(()).0,
        }
    }
}

impl Domain for Diff {
    type Request = DiffRequest;
    const TYPES: &'static [&'static str] = &["diff_files", "diff_dirs", "diff_command"];
    const WELCOME: &'static str = "Connected to DIFF WebSocket";
    const NAME: &'static str = "diff";

    fn handle(conn: &mut WsConnection<Self>, req: DiffRequest, rid: RequestId, ctx: &mut WsCtx<Self>) {
        let settings = &conn.state.settings;
        let job = match &req {
            DiffRequest::DiffFiles(r) => DiffJob::files(settings, r),
            DiffRequest::DiffDirs(r) => DiffJob::dirs(settings, r),
            DiffRequest::DiffCommand(r) => DiffJob::command(settings, r),
        };
        let job = match job {
            Ok(j) => j,
            Err(e) => return conn.send_error(ctx, &e, &rid),
        };
        let pool = conn.domain.pool.get_or_insert_with(SftpPool::start).clone();
        let ssh = conn.state.ssh.clone();
        let cancel = conn.domain.cancel.subscribe();
        let who = conn.id.to_string();
        let task = actix::spawn(async move { job.run(&pool, &ssh, cancel, &who).await });
        task.into_actor(conn)
            .map(move |res, conn, ctx| match res {
                Ok(Ok(reply)) => conn.send(ctx, &reply, &rid),
                Ok(Err(e)) => conn.send_error(ctx, &e.error, &rid),
                Err(e) => {
                    let e = AppError::with_detail(ErrorCode::Internal, format!("diff task: {e}"));
                    conn.send_error(ctx, &e, &rid)
                }
            })
            .spawn(ctx);
    }

    fn stopping(conn: &mut WsConnection<Self>, _: &mut WsCtx<Self>) -> Vec<Done> {
        // stop running commands: their receivers see the sender go
        conn.domain.cancel = watch::channel(()).0;
        if let Some(pool) = conn.domain.pool.take() {
            pool.stop();
        }
        Vec::new()
    }
}
