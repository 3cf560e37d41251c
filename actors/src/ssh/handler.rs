//! `ClientHandler`: the russh client handler of every session. It decides
//! on the server's host key inside russh's `check_server_key` (before the
//! first authentication request, so a refused server never sees a
//! credential) and keeps the reason of a refusal for `connect`, since
//! russh itself only learns "refused".

use std::sync::{Arc, Mutex};

use log::{info, warn};
use russh::keys::PublicKeyOrCertificate;

use super::host_keys::{self, HostKeyAcceptance, HostKeyPolicy, HostKeyRejection};

/// The russh client handler: decides on the host key and remembers why it
/// refused one.
pub(crate) struct ClientHandler {
    /// Server name, for the log.
    pub(crate) server: String,
    /// Host as configured; the known_hosts lookup key with `port`.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// A pinned fingerprint replaces the known_hosts file entirely.
    pub(crate) pinned: Option<String>,
    pub(crate) policy: HostKeyPolicy,
    /// Where the refusal reason waits for [`connect`]: russh turns our
    /// `Ok(false)` into a bare `UnknownKey` error.
    pub(crate) rejection: Arc<Mutex<Option<HostKeyRejection>>>,
}

impl russh::client::Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => match &self.pinned {
                Some(pinned) => host_keys::check_pinned(pinned, key),
                // a small local file is read inline; only learning a new
                // key, which may wait for a file lock, leaves this thread
                None => host_keys::check_known_hosts(&self.policy, &self.host, self.port, key).await,
            },
            PublicKeyOrCertificate::Certificate(_) => Err(HostKeyRejection::Certificate),
        };
        match verdict {
            Ok(acceptance) => {
                if acceptance == HostKeyAcceptance::Learned {
                    info!(server = self.server.as_str(), known_hosts:% = self.policy.known_hosts.display();
                        "recorded a new host key (accept-new)");
                }
                Ok(true)
            }
            Err(reason) => {
                warn!(server = self.server.as_str(), reason:% = reason; "host key refused");
                *self.rejection.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                Ok(false)
            }
        }
    }
}
