//! The BMX5 domain (`/ws/v1/bmx5`): SFTP file work and remote scripts
//! (SPEC section 4, BMX5; protocol in docs/bmx5.md).
//!
//! Per connection it owns:
//! - an [`SftpCache`]: one SSH + SFTP session per server, reused by this
//!   client's requests and closed after [`sftp_cache::DEFAULT_IDLE`] unused
//!   and when the client goes away;
//! - at most one script run (a `ScriptRunActor`), in [`Bmx5::script`]. The
//!   slot is taken synchronously when `script_execute` is accepted, so two
//!   racing requests cannot both start (the second gets 50010).
//!
//! SFTP requests run concurrently, each in a detached task: a request whose
//! client disconnects still finishes, so an upload's temporary file is
//! always renamed or removed. Replies carry the request's `request_id`.
//! No session lock is needed: BMX5 work is not part of the STUB workflow.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::{ActorFutureExt, AsyncContext, ContextFutureSpawner, Handler, WrapFuture};
use base64::Engine as _;
use pinkpage_actors::files::cache::SftpCache;
use pinkpage_actors::files::script::{
    ScriptCompletion, ScriptMessage, ScriptNotice, ScriptRequest, ScriptRunActor,
};
use pinkpage_actors::files::sftp::{Entry, SftpConn, SftpError};
use pinkpage_actors::task::slot::{Cancel, TaskSlot};
use pinkpage_actors::task::{Pending, TaskEvent};
use pinkpage_actors::terminal::shell::FinishReason;
use pinkpage_actors::{AppError, ErrorCode};
use serde::{Deserialize, Serialize};

use super::connection::{Domain, WsConnection, WsCtx};
use super::protocol::{RequestId, MAX_FRAME_BYTES};
use crate::store::NewAuditEvent;
use pinkpage_actors::task::Done;

/// Largest file `sftp_download` / `sftp_upload` carry inline: its base64
/// (4/3 larger) plus the frame's other fields fit in a 64 KiB frame.
pub const INLINE_MAX_BYTES: u64 = 46 * 1024;
/// Largest named script read from the scripts directory.
pub const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;
/// Longest `timeout_s` a script may ask for (a day).
const MAX_TIMEOUT_S: f64 = 86_400.0;

/// What a BMX5 client may send (besides `ping`).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Bmx5Request {
    /// List a directory.
    SftpList {
        /// Server name.
        server: String,
        /// Directory; relative paths start at the login user's home.
        path: String,
    },
    /// Describe one file (following symlinks).
    SftpStat {
        /// Server name.
        server: String,
        /// The file.
        path: String,
    },
    /// Create a directory.
    SftpMkdir {
        /// Server name.
        server: String,
        /// The directory.
        path: String,
        /// Create missing parents too; an existing directory is then fine.
        #[serde(default)]
        parents: bool,
    },
    /// Remove a file, a symlink or a directory.
    SftpRemove {
        /// Server name.
        server: String,
        /// What to remove.
        path: String,
        /// Remove a directory with everything in it.
        #[serde(default)]
        recursive: bool,
    },
    /// Rename (move) a file or directory; the target must not exist.
    SftpRename {
        /// Server name.
        server: String,
        /// Current path.
        from: String,
        /// New path.
        to: String,
    },
    /// Write a small file, replacing it.
    SftpUpload {
        /// Server name.
        server: String,
        /// The file.
        path: String,
        /// Its bytes, base64 (standard alphabet, padded).
        data: String,
    },
    /// Read a small file.
    SftpDownload {
        /// Server name.
        server: String,
        /// The file.
        path: String,
    },
    /// Upload a script to a private temporary file, run it, remove it.
    ScriptExecute {
        /// Server name.
        server: String,
        /// The script's text; or
        script: Option<String>,
        /// the name of a file in `PINKPAGE_SCRIPTS_DIR`.
        script_name: Option<String>,
        /// Arguments, each passed to the script exactly.
        #[serde(default)]
        args: Vec<String>,
        /// Kill the script after this many seconds.
        timeout_s: Option<f64>,
        /// Output flush interval.
        throttle_ms: Option<u64>,
    },
    /// Stop the running script.
    ScriptCancel,
}

/// What the BMX5 domain sends (besides the common frames).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Bmx5Reply {
    /// A directory's entries, sorted by name.
    SftpListResult {
        /// Server name.
        server: String,
        /// The directory, as asked.
        path: String,
        /// `{name, kind, size, mode, mtime}` each.
        entries: Vec<Entry>,
    },
    /// One file.
    SftpStatResult {
        /// Server name.
        server: String,
        /// The path, as asked.
        path: String,
        /// `{name, kind, size, mode, mtime}`.
        entry: Entry,
    },
    /// The directory exists now.
    SftpMkdirResult {
        /// Server name.
        server: String,
        /// The directory.
        path: String,
        /// Whether it was created (false: it was there already).
        created: bool,
    },
    /// Removed.
    SftpRemoveResult {
        /// Server name.
        server: String,
        /// What was removed.
        path: String,
        /// How many entries were removed.
        removed: u64,
    },
    /// Renamed.
    SftpRenameResult {
        /// Server name.
        server: String,
        /// Old path.
        from: String,
        /// New path.
        to: String,
    },
    /// Written.
    SftpUploadResult {
        /// Server name.
        server: String,
        /// The file.
        path: String,
        /// Bytes written.
        size: u64,
    },
    /// A file's bytes.
    SftpDownloadResult {
        /// Server name.
        server: String,
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// Its bytes, base64.
        data: String,
    },
    /// The script was uploaded and is starting.
    ScriptStarted {
        /// Server name.
        server: String,
        /// The private temporary file it runs from (removed at the end).
        remote_path: String,
    },
    /// Output of the script (stdout and stderr, as a terminal shows them).
    ScriptOutput {
        /// Server name.
        server: String,
        /// Decoded text.
        data: String,
    },
    /// The script is over and its temporary file removed.
    ScriptComplete {
        /// Server name.
        server: String,
        /// Its exit status, when it exited.
        exit_status: Option<u32>,
        /// `exit`, `timeout`, `cancelled` or `error`.
        reason: String,
    },
}

/// What a connection keeps about its script run.
struct ScriptTask {
    server: String,
    /// Inline text or the script's name, for the audit trail.
    label: String,
    /// The request that started it, answered on completion.
    rid: RequestId,
}

/// Per-connection BMX5 state.
#[derive(Default)]
pub struct Bmx5 {
    /// This client's SFTP sessions.
    cache: Arc<SftpCache>,
    /// Whether the idle sweep runs.
    sweeping: bool,
    /// At most one script per connection.
    script: TaskSlot<ScriptTask>,
}

impl Domain for Bmx5 {
    type Request = Bmx5Request;
    const TYPES: &'static [&'static str] = &[
        "sftp_list",
        "sftp_stat",
        "sftp_mkdir",
        "sftp_remove",
        "sftp_rename",
        "sftp_upload",
        "sftp_download",
        "script_execute",
        "script_cancel",
    ];
    const WELCOME: &'static str = "Connected to BMX5 WebSocket";
    const NAME: &'static str = "bmx5";

    fn handle(conn: &mut WsConnection<Self>, req: Bmx5Request, rid: RequestId, ctx: &mut WsCtx<Self>) {
        match req {
            Bmx5Request::SftpList { server, path } => {
                let (s, p) = (server.clone(), path.clone());
                sftp_op(conn, &server, &[&path], None, rid, ctx, move |c| async move {
                    let entries = c.list(&p).await?;
                    Ok(Bmx5Reply::SftpListResult {
                        server: s,
                        path: p,
                        entries,
                    })
                });
            }
            Bmx5Request::SftpStat { server, path } => {
                let (s, p) = (server.clone(), path.clone());
                sftp_op(conn, &server, &[&path], None, rid, ctx, move |c| async move {
                    let entry = c.stat(&p).await?;
                    Ok(Bmx5Reply::SftpStatResult {
                        server: s,
                        path: p,
                        entry,
                    })
                });
            }
            Bmx5Request::SftpMkdir {
                server,
                path,
                parents,
            } => {
                let audit = audit_event(conn, "sftp.mkdir", &server, &path, None);
                let (s, p) = (server.clone(), path.clone());
                sftp_op(
                    conn,
                    &server,
                    &[&path],
                    Some(audit),
                    rid,
                    ctx,
                    move |c| async move {
                        let created = c.mkdir(&p, parents).await?;
                        Ok(Bmx5Reply::SftpMkdirResult {
                            server: s,
                            path: p,
                            created,
                        })
                    },
                );
            }
            Bmx5Request::SftpRemove {
                server,
                path,
                recursive,
            } => {
                let audit = audit_event(conn, "sftp.remove", &server, &path, None);
                let (s, p) = (server.clone(), path.clone());
                sftp_op(
                    conn,
                    &server,
                    &[&path],
                    Some(audit),
                    rid,
                    ctx,
                    move |c| async move {
                        let removed = c.remove(&p, recursive).await?;
                        Ok(Bmx5Reply::SftpRemoveResult {
                            server: s,
                            path: p,
                            removed,
                        })
                    },
                );
            }
            Bmx5Request::SftpRename { server, from, to } => {
                let audit = audit_event(conn, "sftp.rename", &server, &from, Some(&to));
                let (s, f, t) = (server.clone(), from.clone(), to.clone());
                sftp_op(
                    conn,
                    &server,
                    &[&from, &to],
                    Some(audit),
                    rid,
                    ctx,
                    move |c| async move {
                        c.rename(&f, &t).await?;
                        Ok(Bmx5Reply::SftpRenameResult {
                            server: s,
                            from: f,
                            to: t,
                        })
                    },
                );
            }
            Bmx5Request::SftpUpload { server, path, data } => upload(conn, server, path, data, rid, ctx),
            Bmx5Request::SftpDownload { server, path } => {
                let (s, p) = (server.clone(), path.clone());
                sftp_op(conn, &server, &[&path], None, rid, ctx, move |c| async move {
                    let bytes = c.read_small(&p, INLINE_MAX_BYTES).await?;
                    Ok(Bmx5Reply::SftpDownloadResult {
                        server: s,
                        path: p,
                        size: bytes.len() as u64,
                        data: base64::engine::general_purpose::STANDARD.encode(bytes),
                    })
                });
            }
            Bmx5Request::ScriptExecute {
                server,
                script,
                script_name,
                args,
                timeout_s,
                throttle_ms,
            } => script_execute(
                conn,
                ScriptParams {
                    server,
                    script,
                    script_name,
                    args,
                    timeout_s,
                    throttle_ms,
                },
                rid,
                ctx,
            ),
            Bmx5Request::ScriptCancel => script_cancel(conn, rid, ctx),
        }
    }

    fn stopping(conn: &mut WsConnection<Self>, _: &mut WsCtx<Self>) -> Vec<Done> {
        // The script actor cleans up on its own (its file is removed even
        // though nobody hears the completion).
        let _ = conn.domain.script.cancel();
        close_all(conn.domain.cache.drain());
        Vec::new()
    }
}

fn close_all(conns: Vec<Arc<SftpConn>>) {
    for c in conns {
        actix::spawn(async move { c.close().await });
    }
}

fn audit_event(
    conn: &WsConnection<Bmx5>,
    action: &str,
    server: &str,
    path: &str,
    to: Option<&str>,
) -> NewAuditEvent {
    let mut event = NewAuditEvent::new(conn.id.to_string(), action);
    event.server = Some(server.to_owned());
    event.detail = Some(match to {
        Some(to) => serde_json::json!({"from": path, "to": to}),
        None => serde_json::json!({"path": path}),
    });
    event
}

/// A path field is usable: not empty, no NUL (which SFTP would cut at).
fn check_path(path: &str) -> Result<(), AppError> {
    if path.is_empty() {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            "path must not be empty",
        ));
    }
    if path.contains('\0') {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            "path must not contain NUL",
        ));
    }
    Ok(())
}

/// Runs one SFTP operation on this client's cached session for `server`
/// in a detached task, replies with what it returns (or its error, 52000
/// with the SFTP status in the detail) and records `audit` either way.
#[allow(clippy::too_many_arguments)]
fn sftp_op<F, Fut>(
    conn: &mut WsConnection<Bmx5>,
    server: &str,
    paths: &[&str],
    audit: Option<NewAuditEvent>,
    rid: RequestId,
    ctx: &mut WsCtx<Bmx5>,
    op: F,
) where
    F: FnOnce(Arc<SftpConn>) -> Fut + 'static,
    Fut: Future<Output = Result<Bmx5Reply, SftpError>> + 'static,
{
    if let Err(e) = paths.iter().try_for_each(|p| check_path(p)) {
        return conn.send_error(ctx, &e, &rid);
    }
    let Some(spec) = conn.state.settings.server(server).cloned() else {
        let e = AppError::with_detail(ErrorCode::UnknownServer, format!("no server named '{server}'"));
        return conn.send_error(ctx, &e, &rid);
    };
    start_sweeper(conn, ctx);
    let cache = conn.domain.cache.clone();
    let opts = conn.state.ssh.clone();
    let task = actix::spawn(async move {
        let c = cache.get(&spec, &opts).await?;
        op(c).await
    });
    task.into_actor(conn)
        .map(move |res, conn, ctx| {
            let res = match res {
                Ok(r) => r.map_err(AppError::from),
                Err(e) => Err(AppError::with_detail(
                    ErrorCode::Internal,
                    format!("sftp task: {e}"),
                )),
            };
            if let Some(mut event) = audit {
                record_outcome(&mut event, &res);
                conn.state.store.audit(event);
            }
            match res {
                Ok(reply) => conn.send(ctx, &reply, &rid),
                Err(e) => conn.send_error(ctx, &e, &rid),
            }
        })
        .spawn(ctx);
}

/// Adds the outcome (ok, error code and detail, bytes) to an audit event.
fn record_outcome(event: &mut NewAuditEvent, res: &Result<Bmx5Reply, AppError>) {
    if let Ok(Bmx5Reply::SftpUploadResult { size, .. }) = res {
        event.bytes = Some(*size as i64);
    }
    if let Some(serde_json::Value::Object(map)) = event.detail.as_mut() {
        map.insert("ok".into(), res.is_ok().into());
        if let Err(e) = res {
            map.insert("error".into(), e.code.code().into());
            map.insert("error_detail".into(), e.detail.clone().into());
        }
    }
}

/// Closes idle sessions every half idle period, from the first request on.
fn start_sweeper(conn: &mut WsConnection<Bmx5>, ctx: &mut WsCtx<Bmx5>) {
    if conn.domain.sweeping {
        return;
    }
    conn.domain.sweeping = true;
    ctx.run_interval(conn.domain.cache.idle() / 2, |conn, _| {
        close_all(conn.domain.cache.sweep());
    });
}

fn upload(
    conn: &mut WsConnection<Bmx5>,
    server: String,
    path: String,
    data: String,
    rid: RequestId,
    ctx: &mut WsCtx<Bmx5>,
) {
    let bytes = match base64::engine::general_purpose::STANDARD.decode(data.as_bytes()) {
        Ok(b) => b,
        Err(e) => {
            let e = AppError::with_detail(ErrorCode::Validation, format!("data is not base64: {e}"));
            return conn.send_error(ctx, &e, &rid);
        }
    };
    if bytes.len() as u64 > INLINE_MAX_BYTES {
        let e = AppError::with_detail(
            ErrorCode::WsTooLarge,
            format!(
                "{} bytes; inline uploads are limited to {INLINE_MAX_BYTES} bytes ({MAX_FRAME_BYTES}-byte frames): \
                 use PUT /api/v1/bmx5/files",
                bytes.len()
            ),
        );
        return conn.send_error(ctx, &e, &rid);
    }
    let audit = audit_event(conn, "sftp.upload", &server, &path, None);
    let (s, p) = (server.clone(), path.clone());
    sftp_op(
        conn,
        &server,
        &[&path],
        Some(audit),
        rid,
        ctx,
        move |c| async move {
            let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
                actix_web::web::Bytes::from(bytes),
            )]);
            let size = c.write_atomic(&p, body).await?;
            Ok(Bmx5Reply::SftpUploadResult {
                server: s,
                path: p,
                size,
            })
        },
    );
}

/// `script_execute`'s fields.
struct ScriptParams {
    server: String,
    script: Option<String>,
    script_name: Option<String>,
    args: Vec<String>,
    timeout_s: Option<f64>,
    throttle_ms: Option<u64>,
}

/// A script name is a plain, visible file name: no path, no `..`.
pub fn check_script_name(name: &str) -> Result<(), AppError> {
    let bad = |why: &str| {
        Err(AppError::with_detail(
            ErrorCode::Validation,
            format!("script_name {name:?} {why}; give the plain name of a file in PINKPAGE_SCRIPTS_DIR"),
        ))
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("contains a path separator");
    }
    if name.contains("..") {
        return bad("contains '..'");
    }
    if name.starts_with('.') {
        return bad("is hidden");
    }
    if name.contains('\0') || name.chars().any(char::is_control) {
        return bad("contains control characters");
    }
    Ok(())
}

fn script_execute(conn: &mut WsConnection<Bmx5>, p: ScriptParams, rid: RequestId, ctx: &mut WsCtx<Bmx5>) {
    if conn.domain.script.is_busy() {
        let e = AppError::with_detail(
            ErrorCode::TaskAlreadyRunning,
            "a script is running: cancel it or wait for script_complete",
        );
        return conn.send_error(ctx, &e, &rid);
    }
    let invalid = |m: String| AppError::with_detail(ErrorCode::Validation, m);
    let checked = (|| {
        let source = match (&p.script, &p.script_name) {
            (Some(text), None) => ScriptSource::Inline(text.clone()),
            (None, Some(name)) => {
                check_script_name(name)?;
                ScriptSource::Named(name.clone())
            }
            _ => return Err(invalid("give exactly one of script and script_name".into())),
        };
        if p.args.iter().any(|a| a.contains('\0')) {
            return Err(invalid("args must not contain NUL".into()));
        }
        let timeout = match p.timeout_s {
            None => None,
            Some(s) if s.is_finite() && s > 0.0 && s <= MAX_TIMEOUT_S => Some(Duration::from_secs_f64(s)),
            Some(_) => return Err(invalid(format!("timeout_s must be in (0, {MAX_TIMEOUT_S}]"))),
        };
        let throttle = match p.throttle_ms {
            None => conn.state.settings.throttle,
            Some(ms) if ms <= 60_000 => Duration::from_millis(ms),
            Some(_) => return Err(invalid("throttle_ms must be at most 60000".into())),
        };
        let spec = conn.state.settings.server(&p.server).cloned().ok_or_else(|| {
            AppError::with_detail(
                ErrorCode::UnknownServer,
                format!("no server named '{}'", p.server),
            )
        })?;
        Ok((source, timeout, throttle, spec))
    })();
    let (source, timeout, throttle, spec) = match checked {
        Ok(v) => v,
        Err(e) => return conn.send_error(ctx, &e, &rid),
    };
    let label = match &source {
        ScriptSource::Inline(_) => "(inline)".to_owned(),
        ScriptSource::Named(n) => n.clone(),
    };
    // Reserve the slot before awaiting anything.
    let reserved = conn.domain.script.reserve(ScriptTask {
        server: p.server.clone(),
        label,
        rid: rid.clone(),
    });
    let task_id = match reserved {
        Ok(id) => id,
        Err(e) => return conn.send_error(ctx, &e, &rid),
    };
    let scripts_dir = conn.state.settings.scripts_dir.clone();
    let args = p.args;
    async move {
        match source {
            ScriptSource::Inline(text) => Ok(text.into_bytes()),
            ScriptSource::Named(name) => read_named_script(&scripts_dir, &name).await,
        }
    }
    .into_actor(conn)
    .map(move |script, conn, ctx| {
        let script = match script {
            Ok(s) => s,
            Err(e) => {
                conn.domain.script.abort_start(task_id);
                return conn.send_error(ctx, &e, &rid);
            }
        };
        let request = ScriptRequest {
            server: spec,
            ssh: conn.state.ssh.clone(),
            script,
            args: args.clone(),
            timeout,
            throttle,
        };
        if conn.domain.script.info(task_id).is_none() {
            return; // cancelled while the script was read: already answered
        }
        let (reporter, handle) = Pending::new(task_id, ctx.address().recipient()).split();
        let addr = actix::Actor::start(ScriptRunActor::new(request, reporter));
        if conn
            .domain
            .script
            .attach(task_id, handle(addr.recipient()))
            .is_err()
        {
            return;
        }
        let Some(task) = conn.domain.script.info(task_id) else {
            return;
        };
        let mut event = NewAuditEvent::new(conn.id.to_string(), "script.start");
        event.server = Some(task.server.clone());
        event.command = Some(task.label.clone());
        event.detail = Some(serde_json::json!({"args": args, "timeout_s": timeout.map(|t| t.as_secs_f64())}));
        conn.state.store.audit(event);
    })
    .spawn(ctx);
}

enum ScriptSource {
    Inline(String),
    Named(String),
}

async fn read_named_script(dir: &std::path::Path, name: &str) -> Result<Vec<u8>, AppError> {
    let path = dir.join(name);
    let meta = tokio::fs::metadata(&path).await.map_err(|e| {
        AppError::with_detail(
            ErrorCode::NotFound,
            format!("script '{name}' not found in {}: {e}", dir.display()),
        )
    })?;
    if !meta.is_file() {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            format!("script '{name}' is not a regular file"),
        ));
    }
    if meta.len() > MAX_SCRIPT_BYTES {
        return Err(AppError::with_detail(
            ErrorCode::Validation,
            format!(
                "script '{name}' is {} bytes; the limit is {MAX_SCRIPT_BYTES}",
                meta.len()
            ),
        ));
    }
    tokio::fs::read(&path)
        .await
        .map_err(|e| AppError::with_detail(ErrorCode::Internal, format!("read script '{name}': {e}")))
}

fn script_cancel(conn: &mut WsConnection<Bmx5>, rid: RequestId, ctx: &mut WsCtx<Bmx5>) {
    // script_complete (reason "cancelled") answers the script_execute
    match conn.domain.script.cancel() {
        Err(e) if e.code == ErrorCode::NoRunningTask => {
            let e = AppError::with_detail(ErrorCode::NoRunningTask, "no script is running");
            conn.send_error(ctx, &e, &rid);
        }
        Err(e) => conn.send_error(ctx, &e, &rid),
        Ok(Cancel::StopSent(id)) => {
            crate::ws::task::watch_stop(id, |d: &mut Bmx5| &mut d.script, |t: &ScriptTask| &t.rid, ctx)
        }
        Ok(Cancel::AlreadyStopping(_)) => {}
        Ok(Cancel::NotStarted(_, task)) => {
            // nothing ran: the run ends here
            let done = ScriptCompletion {
                reason: FinishReason::Cancelled,
                exit_status: None,
                error: None,
                bytes: 0,
            };
            conn.script_complete(task, done, None, ctx);
        }
    }
}

impl Handler<ScriptMessage> for WsConnection<Bmx5> {
    type Result = ();

    fn handle(&mut self, msg: ScriptMessage, ctx: &mut WsCtx<Bmx5>) {
        // Only the current run speaks (a run given up on, 50012, is not).
        let Some(task) = self.domain.script.info(msg.task_id) else {
            return;
        };
        let server = task.server.clone();
        match msg.event {
            TaskEvent::Notice(ScriptNotice::Started { remote_path }) => {
                let rid = task.rid.clone();
                self.send(ctx, &Bmx5Reply::ScriptStarted { server, remote_path }, &rid);
            }
            TaskEvent::Notice(ScriptNotice::Output(data)) => {
                self.send(ctx, &Bmx5Reply::ScriptOutput { server, data }, &None)
            }
            TaskEvent::Finished {
                outcome,
                cleanup_error,
            } => {
                if let Some((task, cleanup)) = self.domain.script.finished(msg.task_id, cleanup_error) {
                    self.script_complete(task, outcome, cleanup, ctx);
                }
            }
        }
    }
}

impl WsConnection<Bmx5> {
    fn script_complete(
        &mut self,
        task: ScriptTask,
        done: ScriptCompletion,
        cleanup: Option<AppError>,
        ctx: &mut WsCtx<Bmx5>,
    ) {
        for err in [&done.error, &cleanup].into_iter().flatten() {
            self.send_error(ctx, err, &task.rid);
        }
        self.send(
            ctx,
            &Bmx5Reply::ScriptComplete {
                server: task.server.clone(),
                exit_status: done.exit_status,
                reason: done.reason.as_str().to_owned(),
            },
            &task.rid,
        );
        let mut event = NewAuditEvent::new(self.id.to_string(), "script.end");
        event.server = Some(task.server);
        event.command = Some(task.label);
        event.exit_status = done.exit_status.map(i64::from);
        event.bytes = Some(done.bytes as i64);
        event.detail = Some(serde_json::json!({
            "reason": done.reason.as_str(),
            "error": done.error.map(|e| e.code.code()),
            "cleanup_error": cleanup.map(|e| e.code.code()),
        }));
        self.state.store.audit(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names_must_be_plain_visible_file_names() {
        for bad in [
            "",
            "../x",
            "..",
            "a/b",
            "/etc/passwd",
            ".hidden",
            "a\\b",
            "x..y",
            "a\0b",
        ] {
            let err = check_script_name(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::Validation, "{bad:?}");
        }
        for good in ["deploy.sh", "check-disk", "보고서.sh"] {
            assert!(check_script_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn an_inline_file_at_the_limit_fits_in_a_frame() {
        let data = base64::engine::general_purpose::STANDARD.encode(vec![0u8; INLINE_MAX_BYTES as usize]);
        let frame = serde_json::to_string(&Bmx5Reply::SftpDownloadResult {
            server: "s".repeat(64),
            path: "p".repeat(1024),
            size: INLINE_MAX_BYTES,
            data,
        })
        .unwrap();
        assert!(frame.len() < MAX_FRAME_BYTES, "{}", frame.len());
    }
}
