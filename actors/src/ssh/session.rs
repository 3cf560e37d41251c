//! [`SshSession`]: a connected, authenticated SSH session, and what it
//! offers besides exec and shells (SFTP, disconnect).
//!
//! One session carries many channels at once. Every open channel must be
//! read continuously (NOTES-russh gotcha 1): russh reopens the window when a
//! packet arrives, not when it is read, so one unread channel stalls all the
//! others once its queue is full.

use std::fmt;

use log::info;
use russh::client::Handle;
use russh::Disconnect;
use russh_sftp::client::{RawSftpSession, SftpSession};
use russh_sftp::protocol::Version;

use super::handler::ClientHandler;
use crate::error::{AppError, ErrorCode};

/// A connected and authenticated session to one server.
///
/// What ends remote processes (measured against OpenSSH 9.2):
/// - PTY shells are killed when their channel closes, on
///   [`SshSession::disconnect`], and when the session is dropped (sshd
///   sends SIGHUP through the pty).
/// - Commands without a PTY ([`SshSession::exec`]) are *not*: sshd sends
///   no SIGHUP, so a dropped or disconnected exec leaves the process
///   running on the server. Only a signal request ends it, which is what
///   `exec` does on timeout.
pub struct SshSession {
    handle: Handle<ClientHandler>,
    /// The configured server name, for details and logs.
    server: String,
    /// The server's session slot this session holds (none without a cap);
    /// given back when the session is dropped.
    slot: Option<super::slots::SessionSlot>,
}

impl fmt::Debug for SshSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshSession")
            .field("server", &self.server)
            .field("closed", &self.handle.is_closed())
            .field("holds_slot", &self.slot.is_some())
            .finish()
    }
}

impl SshSession {
    pub(crate) fn new(handle: Handle<ClientHandler>, server: String) -> Self {
        SshSession {
            handle,
            server,
            slot: None,
        }
    }

    /// This session, holding `slot` until it is dropped.
    pub(crate) fn holding(mut self, slot: Option<super::slots::SessionSlot>) -> Self {
        self.slot = slot;
        self
    }

    pub(crate) fn handle(&self) -> &Handle<ClientHandler> {
        &self.handle
    }

    /// The name of the server this session is connected to.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Whether the connection has ended (server gone, or disconnected).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Opens an SFTP session on a new channel (subsystem `sftp`).
    ///
    /// Notes on russh-sftp 3: `write(path, ..)` does not create files (use
    /// `create`), `File::shutdown()` completes writes and closes, requests
    /// time out after 10 s by default.
    pub async fn sftp(&self) -> Result<SftpSession, AppError> {
        let channel = self.sftp_channel().await?;
        SftpSession::new(channel.into_stream())
            .await
            .map_err(|e| self.sftp_failed(format!("sftp handshake failed: {e}")))
    }

    /// A new channel with the `sftp` subsystem started on it.
    async fn sftp_channel(&self) -> Result<russh::Channel<russh::client::Msg>, AppError> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.sftp_failed(format!("cannot open a channel: {e}")))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| self.sftp_failed(format!("cannot request the sftp subsystem: {e}")))?;
        Ok(channel)
    }

    fn sftp_failed(&self, what: String) -> AppError {
        AppError::with_detail(ErrorCode::SftpFailed, format!("server '{}': {what}", self.server))
    }

    /// Opens a low-level SFTP session on a new channel and runs the version
    /// handshake; returns it with the server's advertised extensions.
    ///
    /// For requests [`SftpSession`] does not offer, such as
    /// `posix-rename@openssh.com` (see `transfer`). Requests on it time out
    /// after 10 s like those of [`SshSession::sftp`].
    pub async fn sftp_raw(&self) -> Result<(RawSftpSession, Version), AppError> {
        let channel = self.sftp_channel().await?;
        let raw = RawSftpSession::new(channel.into_stream());
        let version = raw
            .init()
            .await
            .map_err(|e| self.sftp_failed(format!("sftp handshake failed: {e}")))?;
        Ok((raw, version))
    }

    /// Ends the connection. PTY shells on it are killed by sshd; non-PTY
    /// commands keep running (see the type's documentation). Disconnecting
    /// an already closed session succeeds.
    pub async fn disconnect(&self) -> Result<(), AppError> {
        if self.handle.is_closed() {
            return Ok(());
        }
        info!(server = self.server.as_str(); "ssh session disconnecting");
        self.handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await
            .or_else(|e| match e {
                // the session task ended between the check and the send
                russh::Error::SendError => Ok(()),
                e => Err(AppError::with_detail(
                    ErrorCode::SshConnectionFailed,
                    format!("server '{}': disconnect failed: {e}", self.server),
                )),
            })
    }
}
