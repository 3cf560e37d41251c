//! `ScriptRunActor`: one script run on a server (BMX5 `script_execute`),
//! from upload to removal of its temporary file.
//!
//! What it owns: an [`SftpConn`] (its own SSH session) used to upload the
//! script to a private temporary file and to remove it afterwards, and the
//! [`SshShellActor`] that runs it on a PTY (its child task), so output goes
//! through the same pipeline (throttle, decoding, backpressure) as the STUB
//! terminal and closing the PTY kills the script on cancel and timeout.
//!
//! It keeps the task contract (`crate::task`): the client may send
//! [`Stop`]; it reports [`ScriptMessage`]s (`Started` once the file is
//! there, `Output`, then exactly one `Finished`). Output is forwarded with
//! backpressure: the shell's next read waits until the client's mailbox
//! took the last piece, so a client that does not read slows the script's
//! channel instead of growing the daemon.
//!
//! When it stops: the shell finished (exit, timeout, error), the upload
//! failed, or it was told to stop. `stopped()` then, detached and bounded
//! by [`CLEANUP_TIMEOUT`]: stops the shell and waits for it (the script is
//! dead), removes the temporary file (its name is chosen before the upload
//! starts, so a stop in the middle of the upload still removes it), closes
//! the SFTP session, and only then sends `Finished`: a client that saw the
//! end never sees the file.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, ContextFutureSpawner, Handler,
    ResponseFuture, WrapFuture,
};

use super::temp_names::script_path;
use crate::error::{AppError, ErrorCode};
use crate::files::sftp::SftpConn;
use crate::files::shell_quote;
use crate::files::temp_files::{TempFiles, TempKind, TempRecord};
use crate::server::ServerSpec;
use crate::ssh::{PtyRequest, SshOptions};
use crate::task::{
    Notifier, Pending, Reporter, Stop, TaskEvent, TaskHandle, TaskId, TaskMessage, CLEANUP_TIMEOUT,
};
use crate::terminal::shell::{Completion, FinishReason, ShellMessage, ShellRequest, SshShellActor};

/// Permission bits of the uploaded script.
pub const SCRIPT_MODE: u32 = 0o700;

/// What to run, where and how.
#[derive(Debug, Clone)]
pub struct ScriptRequest {
    /// The server.
    pub server: Arc<ServerSpec>,
    /// How to connect.
    pub ssh: Arc<SshOptions>,
    /// Where the uploaded script's file is recorded (crash recovery).
    pub temp_files: TempFiles,
    /// The script's bytes (with or without a `#!` line; without one the
    /// login shell runs it as a shell script).
    pub script: Vec<u8>,
    /// Arguments, each passed to the script exactly (no NUL allowed).
    pub args: Vec<String>,
    /// Stop (and kill) the script after this long.
    pub timeout: Option<Duration>,
    /// Output flush interval.
    pub throttle: Duration,
    /// How its PTY is listed among the running PTYs (and watched).
    pub listed: Option<crate::pty::book::PtyTag>,
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
    /// Output bytes received.
    pub bytes: u64,
}

impl ScriptCompletion {
    fn cancelled() -> Self {
        ScriptCompletion {
            reason: FinishReason::Cancelled,
            exit_status: None,
            error: None,
            bytes: 0,
        }
    }
}

/// What a script run tells its client on the way.
#[derive(Debug)]
pub enum ScriptNotice {
    /// The script was uploaded to `remote_path` and is starting.
    Started {
        /// Where the temporary file is.
        remote_path: String,
    },
    /// Decoded, throttled output (stdout and stderr, as a terminal shows
    /// them).
    Output(String),
}

/// What a script run sends its client: notices, then one `Finished`.
pub type ScriptMessage = TaskMessage<ScriptNotice, ScriptCompletion>;

/// What a script's temporary file is called: `/tmp/.pinkpage-script-`
/// and 32 hex digits.
/// The actor. See the module docs.
pub struct ScriptRunActor {
    request: ScriptRequest,
    /// Where notices and the end go; taken by `stopped()` to finish.
    reporter: Option<Reporter<ScriptNotice, ScriptCompletion>>,
    /// The upload/cleanup connection, once open. Shared with the upload
    /// future so that a stop in the middle of it still finds the session
    /// to remove the file with.
    conn: Rc<RefCell<Option<Arc<SftpConn>>>>,
    /// The temporary file's path, chosen before the upload starts.
    remote_path: String,
    /// Its crash-recovery record, made before the file is created; done
    /// once the file is removed (see `files::temp_files`).
    record: Rc<RefCell<Option<TempRecord>>>,
    /// The shell running the script, once started.
    shell: Option<TaskHandle>,
    /// How it ended, once known (none: stopped on request).
    completion: Option<ScriptCompletion>,
}

impl ScriptRunActor {
    /// An actor that will run `request` and report through `reporter`.
    pub fn new(request: ScriptRequest, reporter: Reporter<ScriptNotice, ScriptCompletion>) -> Self {
        ScriptRunActor {
            request,
            reporter: Some(reporter),
            conn: Rc::default(),
            remote_path: script_path(),
            record: Rc::default(),
            shell: None,
            completion: None,
        }
    }

    fn fail(&mut self, error: AppError, ctx: &mut Context<Self>) {
        self.completion.get_or_insert(ScriptCompletion {
            reason: FinishReason::Error,
            exit_status: None,
            error: Some(error),
            bytes: 0,
        });
        ctx.stop();
    }

    fn start_shell(&mut self, ctx: &mut Context<Self>) {
        let request = ShellRequest {
            server: self.request.server.clone(),
            ssh: self.request.ssh.clone(),
            command: shell_quote::command_line(&self.remote_path, &self.request.args),
            stop_phrase: None,
            timeout: self.request.timeout,
            throttle: self.request.throttle,
            pty: script_pty(),
            listed: self.request.listed.clone(),
            typed_lines: None,
        };
        let (reporter, handle) = Pending::new(TaskId::next(), ctx.address().recipient()).split();
        let shell = SshShellActor::new(request, reporter).start();
        self.shell = Some(handle(shell.recipient()));
    }
}

/// The PTY a script runs on (what its recording's header says).
pub fn script_pty() -> PtyRequest {
    PtyRequest {
        term: "xterm".to_owned(),
        cols: 200,
        rows: 50,
    }
}

impl Actor for ScriptRunActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let request = self.request.clone();
        let path = self.remote_path.clone();
        let shared = self.conn.clone();
        let record = self.record.clone();
        log::info!(server = request.server.name.as_str(), path = path.as_str(); "script uploading");
        async move {
            let conn = Arc::new(SftpConn::open(&request.server, &request.ssh, &request.temp_files).await?);
            // from here on the connection is kept, so the file can be
            // removed whatever happens next
            *shared.borrow_mut() = Some(conn.clone());
            let recorded = request
                .temp_files
                .for_server(&request.server)
                .record(&path, TempKind::Script)
                .await;
            *record.borrow_mut() = Some(recorded);
            // create_private removes what it had written if it fails
            conn.create_private(&path, &request.script, SCRIPT_MODE).await?;
            Ok::<_, AppError>(())
        }
        .into_actor(self)
        .map(|result, act, ctx| match result {
            Err(e) => act.fail(e, ctx),
            Ok(()) => {
                if let Some(r) = &act.reporter {
                    r.notice(ScriptNotice::Started {
                        remote_path: act.remote_path.clone(),
                    });
                }
                act.start_shell(ctx);
            }
        })
        .spawn(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let Some(reporter) = self.reporter.take() else {
            return;
        };
        let completion = self.completion.take().unwrap_or_else(ScriptCompletion::cancelled);
        log::info!(
            server = self.request.server.name.as_str(),
            reason = completion.reason.as_str(),
            exit_status = completion.exit_status;
            "script finished"
        );
        let shell = self.shell.take();
        let conn = self.conn.borrow_mut().take();
        let record = self.record.borrow_mut().take();
        let path = std::mem::take(&mut self.remote_path);
        let server = self.request.server.name.clone();
        actix::spawn(async move {
            let cleanup = async {
                if let Some(shell) = shell {
                    // the script must be dead before its file goes
                    let _ = shell.stop();
                    shell.done().wait().await;
                }
                let Some(conn) = conn else {
                    return Ok(()); // never connected: no file
                };
                let removed = conn.remove_file_if_exists(&path).await;
                conn.close().await;
                if let (Ok(()), Some(record)) = (&removed, record) {
                    record.done();
                }
                // else the record, dropped, makes the next connection to
                // the server remove the file
                removed.map_err(|e| format!("temporary script '{path}' not removed: {e}"))
            };
            let failure = match tokio::time::timeout(CLEANUP_TIMEOUT, cleanup).await {
                Ok(Ok(())) => None,
                Ok(Err(detail)) => Some(detail),
                Err(_) => Some(format!("no cleanup within {CLEANUP_TIMEOUT:?}")),
            };
            let failure = failure.map(|detail| {
                let e = AppError::with_detail(
                    ErrorCode::TaskCleanupFailed,
                    format!("server '{server}': {detail}"),
                );
                log::error!(error = e.to_string(); "script cleanup failed");
                e
            });
            reporter.finish(completion, failure);
        });
    }
}

impl Handler<ShellMessage> for ScriptRunActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: ShellMessage, ctx: &mut Context<Self>) -> Self::Result {
        match msg.event {
            TaskEvent::Notice(text) => {
                // Forwarded with backpressure: the shell's send completes
                // once the client's mailbox took the text.
                let notifier: Option<Notifier<_, _>> = self.reporter.as_ref().map(Reporter::notifier);
                Box::pin(async move {
                    if let Some(n) = notifier {
                        n.send(ScriptNotice::Output(text)).await;
                    }
                })
            }
            TaskEvent::Finished {
                outcome,
                cleanup_error,
            } => {
                if let Some(e) = cleanup_error {
                    log::warn!(error = e.to_string(); "script shell cleanup failed");
                }
                self.shell = None;
                let Completion {
                    reason,
                    exit_status,
                    error,
                    bytes,
                } = outcome;
                self.completion.get_or_insert(ScriptCompletion {
                    reason,
                    exit_status,
                    error,
                    bytes,
                });
                ctx.stop();
                Box::pin(async {})
            }
        }
    }
}

impl Handler<Stop> for ScriptRunActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
