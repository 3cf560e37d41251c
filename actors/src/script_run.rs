//! `ScriptRunActor`: one script run on a server (BMX5 `script_execute`),
//! from upload to removal of its temporary file.
//!
//! What it owns: an [`SftpConn`] (its own SSH session) used to upload the
//! script to a private temporary file and to remove it afterwards, and the
//! [`SshShellActor`] that runs it on a PTY, so output goes through the same
//! pipeline (throttle, decoding, backpressure) as the STUB terminal and
//! closing the PTY kills the script on cancel and timeout.
//!
//! Who sends it what: the BMX5 connection starts it and may send
//! [`StopScript`]; it sends [`ScriptNotice`]s back (`Started` once the file
//! is there, `Output`, and exactly one `Complete`, always last). The shell
//! sends it [`ShellNotice`]s.
//!
//! When it stops: after the shell completed (exit, timeout, cancel or
//! error) *and* the temporary file was removed, or when the upload failed.
//! The file is removed before `Complete` is sent, so a client that saw the
//! completion never sees the file. The actor does not depend on its
//! client: when the client goes away it is told to stop and still cleans
//! up. Should it be stopped some other way with the file still there,
//! `stopped()` removes it in a detached task.

use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, ContextFutureSpawner, Handler, Message,
    Recipient, WrapFuture,
};

use crate::error::{AppError, ErrorCode};
use crate::server::ServerSpec;
use crate::sftp_ops::SftpConn;
use crate::shell_quote;
use crate::ssh::{PtyRequest, SshOptions};
use crate::ssh_shell::{FinishReason, ShellNotice, ShellRequest, SshShellActor, StopShell};

/// The directory scripts are uploaded to: world-writable with the sticky
/// bit on every Linux; the file's unique name, O_EXCL creation and mode
/// 0700 keep it private.
pub const REMOTE_TEMP_DIR: &str = "/tmp";
/// Permission bits of the uploaded script.
pub const SCRIPT_MODE: u32 = 0o700;

/// What to run, where and how.
#[derive(Debug, Clone)]
pub struct ScriptRequest {
    /// The server.
    pub server: Arc<ServerSpec>,
    /// How to connect.
    pub ssh: Arc<SshOptions>,
    /// The script's bytes (with or without a `#!` line; without one the
    /// login shell runs it as a shell script).
    pub script: Vec<u8>,
    /// Arguments, each passed to the script exactly (no NUL allowed).
    pub args: Vec<String>,
    /// Stop (and kill) the script after this long.
    pub timeout: Option<Duration>,
    /// Output flush interval.
    pub throttle: Duration,
}

/// How a script run ended.
#[derive(Debug, Clone)]
pub struct ScriptCompletion {
    /// Why: `exit`, `timeout`, `cancelled` or `error`.
    pub reason: FinishReason,
    /// The script's exit status, when it exited.
    pub exit_status: Option<u32>,
    /// What failed (upload, connect, 22001 on timeout).
    pub error: Option<AppError>,
    /// The temporary file could not be removed (50014).
    pub cleanup_error: Option<AppError>,
    /// Output bytes received.
    pub bytes: u64,
}

/// What a script run tells its client.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum ScriptNotice {
    /// The script was uploaded to `remote_path` and is starting.
    Started {
        /// Where the temporary file is.
        remote_path: String,
    },
    /// Decoded, throttled output (stdout and stderr, as a terminal shows
    /// them).
    Output(String),
    /// The run is over and the temporary file is gone; nothing follows.
    Complete(ScriptCompletion),
}

/// Stop the script now (cancel). Completion follows as usual.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StopScript;

/// The actor. See the module docs.
pub struct ScriptRunActor {
    request: ScriptRequest,
    notify: Recipient<ScriptNotice>,
    /// The upload/cleanup connection, once open.
    conn: Option<Arc<SftpConn>>,
    /// The temporary file, while it exists.
    remote_path: Option<String>,
    /// The shell running the script.
    shell: Option<Addr<SshShellActor>>,
    /// A stop came before the shell started.
    cancelled: bool,
    /// Set once the completion was sent.
    completed: bool,
}

impl ScriptRunActor {
    /// An actor that will run `request` and report to `notify`.
    pub fn new(request: ScriptRequest, notify: Recipient<ScriptNotice>) -> Self {
        ScriptRunActor {
            request,
            notify,
            conn: None,
            remote_path: None,
            shell: None,
            cancelled: false,
            completed: false,
        }
    }

    /// Removes the temporary file (if any), then sends the completion and
    /// stops.
    fn finish(&mut self, mut completion: ScriptCompletion, ctx: &mut Context<Self>) {
        let conn = self.conn.clone();
        let path = self.remote_path.take();
        let server = self.request.server.name.clone();
        async move {
            let (Some(conn), Some(path)) = (conn, path) else {
                return None;
            };
            match conn.remove_file_if_exists(&path).await {
                Ok(()) => None,
                Err(e) => Some(AppError::with_detail(
                    ErrorCode::TaskCleanupFailed,
                    format!("server '{server}': temporary script '{path}' not removed: {e}"),
                )),
            }
        }
        .into_actor(self)
        .map(move |cleanup_error, act, ctx| {
            if let Some(e) = &cleanup_error {
                log::error!(error = e.to_string(); "script cleanup failed");
            }
            completion.cleanup_error = cleanup_error;
            log::info!(
                server = act.request.server.name.as_str(),
                reason = completion.reason.as_str(),
                exit_status = completion.exit_status;
                "script finished"
            );
            act.completed = true;
            act.notify.do_send(ScriptNotice::Complete(completion));
            ctx.stop();
        })
        .wait(ctx);
    }

    fn failed(&mut self, error: AppError, ctx: &mut Context<Self>) {
        let completion = ScriptCompletion {
            reason: if self.cancelled {
                FinishReason::Cancelled
            } else {
                FinishReason::Error
            },
            exit_status: None,
            error: (!self.cancelled).then_some(error),
            cleanup_error: None,
            bytes: 0,
        };
        self.finish(completion, ctx);
    }

    fn start_shell(&mut self, path: String, ctx: &mut Context<Self>) {
        let request = ShellRequest {
            server: self.request.server.clone(),
            ssh: self.request.ssh.clone(),
            command: shell_quote::command_line(&path, &self.request.args),
            stop_phrase: None,
            timeout: self.request.timeout,
            throttle: self.request.throttle,
            pty: PtyRequest {
                term: "xterm".to_owned(),
                cols: 200,
                rows: 50,
            },
            task_id: 0,
        };
        self.shell = Some(SshShellActor::new(request, ctx.address().recipient()).start());
    }
}

impl Actor for ScriptRunActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let request = self.request.clone();
        let name = uuid::Uuid::new_v4().simple().to_string();
        let path = format!("{REMOTE_TEMP_DIR}/.pinkpage-script-{name}");
        log::info!(server = request.server.name.as_str(), path = path.as_str(); "script uploading");
        async move {
            let conn = Arc::new(SftpConn::open(&request.server, &request.ssh).await?);
            // from here on the connection is kept, so the file can be
            // removed whatever happens next
            let upload = conn.create_private(&path, &request.script, SCRIPT_MODE).await;
            Ok::<_, AppError>((conn, path, upload))
        }
        .into_actor(self)
        .map(|result, act, ctx| match result {
            Err(e) => act.failed(e, ctx),
            Ok((conn, path, upload)) => {
                act.conn = Some(conn);
                if let Err(e) = upload {
                    // create_private removed what it had written
                    return act.failed(e.into(), ctx);
                }
                act.remote_path = Some(path.clone());
                if act.cancelled {
                    // the error is not reported for a cancelled run
                    return act.failed(AppError::new(ErrorCode::NoRunningTask), ctx);
                }
                act.notify.do_send(ScriptNotice::Started {
                    remote_path: path.clone(),
                });
                act.start_shell(path, ctx);
            }
        })
        .wait(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(shell) = self.shell.take() {
            shell.do_send(StopShell);
        }
        if !self.completed {
            self.notify.do_send(ScriptNotice::Complete(ScriptCompletion {
                reason: FinishReason::Cancelled,
                exit_status: None,
                error: None,
                cleanup_error: None,
                bytes: 0,
            }));
        }
        let Some(conn) = self.conn.take() else {
            return;
        };
        let path = self.remote_path.take();
        actix::spawn(async move {
            if let Some(path) = path {
                if let Err(e) = conn.remove_file_if_exists(&path).await {
                    log::error!(path = path.as_str(), error = e.to_string(); "temporary script not removed");
                }
            }
            conn.close().await;
        });
    }
}

impl Handler<ShellNotice> for ScriptRunActor {
    type Result = ();

    fn handle(&mut self, notice: ShellNotice, ctx: &mut Context<Self>) {
        match notice {
            ShellNotice::Output(text) => self.notify.do_send(ScriptNotice::Output(text)),
            ShellNotice::Complete(done) => {
                self.shell = None;
                let reason = if self.cancelled && done.reason != FinishReason::Exit {
                    FinishReason::Cancelled
                } else {
                    done.reason
                };
                let completion = ScriptCompletion {
                    reason,
                    exit_status: done.exit_status,
                    error: done.error,
                    cleanup_error: None,
                    bytes: done.bytes,
                };
                self.finish(completion, ctx);
            }
            ShellNotice::CleanupFailed(e) => {
                log::warn!(error = e.to_string(); "script shell cleanup failed");
            }
        }
    }
}

impl Handler<StopScript> for ScriptRunActor {
    type Result = ();

    fn handle(&mut self, _: StopScript, _: &mut Context<Self>) {
        self.cancelled = true;
        if let Some(shell) = &self.shell {
            shell.do_send(StopShell);
        }
        // The upload runs with `wait`, so a stop sent while uploading is
        // handled once the shell has started, and stops it then; a stop
        // after an upload failure finds no shell and changes nothing.
    }
}
