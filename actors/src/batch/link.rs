//! How a run's workers reach their servers: the [`ServerLink`] trait
//! (one connection per server per run), the real [`SshLinkFactory`], and
//! the [`Cancel`] signal every link and worker watches.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use tokio::sync::watch;

use super::group::own_group;
use crate::error::{AppError, ErrorCode};
use crate::server::{CommandMode, ServerSpec};
use crate::shell_mode::capture::run_captured;
use crate::ssh::{self, ExecLimits, ExecOutput, SshOptions, SshSession};

/// The cancel signal the workers watch: set by the actor, and also seen as
/// set when the actor (the sender) is gone.
#[derive(Debug, Clone)]
pub struct Cancel(watch::Receiver<bool>);

impl Cancel {
    /// A signal and its trigger.
    pub fn new() -> (watch::Sender<bool>, Cancel) {
        let (tx, rx) = watch::channel(false);
        (tx, Cancel(rx))
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Completes when the run is cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.0.clone();
        // An error means the sender is gone: the actor has stopped.
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// One server's connection as [`run_server`] sees it; the real one is made
/// by [`SshLinkFactory`], tests script their own.
pub trait ServerLink {
    /// One attempt at `command`. `Ok` when it ran (any exit status); `Err`
    /// when it could not run, timed out (22001) or was cancelled.
    fn exec<'a>(&'a mut self, command: &'a str) -> LocalBoxFuture<'a, Result<ExecOutput, AppError>>;

    /// Ends the connection; called once when the server's run is over.
    fn close(&mut self) -> LocalBoxFuture<'_, ()>;
}

/// Makes the [`ServerLink`] of each server of a run.
pub trait LinkFactory {
    /// A link to `server` whose commands end when `cancel` fires.
    fn link(&self, server: &Arc<ServerSpec>, limits: ExecLimits, cancel: Cancel) -> Box<dyn ServerLink>;
}

/// Real links: one SSH connection per server, opened at the first attempt
/// and reopened only if it is lost.
#[derive(Debug, Clone)]
pub struct SshLinkFactory {
    /// How to connect.
    pub ssh: Arc<SshOptions>,
}

impl LinkFactory for SshLinkFactory {
    fn link(&self, server: &Arc<ServerSpec>, limits: ExecLimits, cancel: Cancel) -> Box<dyn ServerLink> {
        Box::new(SshLink {
            server: Arc::clone(server),
            ssh: Arc::clone(&self.ssh),
            limits,
            cancel,
            session: None,
        })
    }
}

struct SshLink {
    server: Arc<ServerSpec>,
    ssh: Arc<SshOptions>,
    limits: ExecLimits,
    cancel: Cancel,
    /// Open once the first attempt connected; dropped when it is found
    /// closed, so the next attempt reconnects.
    session: Option<SshSession>,
}

impl ServerLink for SshLink {
    fn exec<'a>(&'a mut self, command: &'a str) -> LocalBoxFuture<'a, Result<ExecOutput, AppError>> {
        async move {
            if self.session.as_ref().is_some_and(SshSession::is_closed) {
                self.session = None;
            }
            let session = match &mut self.session {
                Some(session) => session,
                slot @ None => {
                    let cancel = self.cancel.clone();
                    let connected = tokio::select! {
                        s = ssh::connect(&self.server, &self.ssh) => s?,
                        _ = cancel.cancelled() => return Err(cancelled(&self.server.name)),
                    };
                    slot.insert(connected)
                }
            };
            let cancel = self.cancel.clone();
            let cancelled = async move { cancel.cancelled().await };
            let result = match self.server.command_mode {
                // its own process group: a timeout or cancel ends all of it
                CommandMode::Exec => {
                    session
                        .exec_until(&own_group(command), self.limits, cancelled)
                        .await
                }
                // typed into the login shell; its output (stdout and stderr
                // merged) comes from the PTY, whose closing ends it all
                CommandMode::Shell => run_captured(session, command, self.limits, cancelled).await,
            };
            if result.is_err() && session.is_closed() {
                // the connection went down under the command: report the
                // connection, not the channel, and reconnect next time
                self.session = None;
                return result.map_err(|e| {
                    AppError::with_detail(
                        ErrorCode::SshConnectionFailed,
                        e.detail.unwrap_or_else(|| "connection lost".into()),
                    )
                });
            }
            result
        }
        .boxed_local()
    }

    fn close(&mut self) -> LocalBoxFuture<'_, ()> {
        async move {
            if let Some(session) = self.session.take() {
                if let Err(e) = session.disconnect().await {
                    log::warn!(server = self.server.name.as_str(), error = e.to_string(); "batch: disconnect failed");
                }
            }
        }
        .boxed_local()
    }
}

fn cancelled(server: &str) -> AppError {
    AppError::with_detail(
        ErrorCode::SshCommandFailed,
        format!("server '{server}': run cancelled"),
    )
}
