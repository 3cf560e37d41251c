//! Opening an SSH session: TCP, handshake, host key check, authentication.
//!
//! Everything in [`connect`] runs under one deadline,
//! [`SshOptions::connect_timeout`]. The host key is decided inside russh's
//! `check_server_key`, which runs before the first authentication request,
//! so a refused server never sees a credential. russh only learns "refused";
//! the handler keeps the `HostKeyRejection` in a slot shared with
//! [`connect`], which turns it into the `AppError` detail.
//!
//! Authentication asks with `none` first, as the seed does, then with the
//! configured credential: a password (and keyboard-interactive when the
//! server refuses the password but offers it), or a key file.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;

use log::info;
use russh::client::{AuthResult, KeyboardInteractiveAuthResponse};
use russh::keys::{Algorithm, PrivateKeyWithHashAlg};
use russh::{cipher, MethodKind, MethodSet, Preferred};

use super::handler::ClientHandler;
use super::host_keys::{self, HostKeyPolicy};
use super::session::SshSession;
use super::slots::SessionSlots;
use crate::error::{AppError, ErrorCode};
use crate::secret::Secret;
use crate::server::{Auth, ServerSpec};

/// How far a server may take keyboard-interactive before we give up; PAM
/// needs two rounds (the password prompt, then an empty request).
const MAX_KBD_INT_ROUNDS: usize = 8;

/// How [`connect`] reaches a server.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Deadline for TCP connect, handshake and authentication together.
    pub connect_timeout: Duration,
    /// Where known host keys are and what to do with unknown ones; ignored
    /// for servers with a pinned fingerprint.
    pub host_keys: HostKeyPolicy,
    /// How often an established session asks a silent server whether it is
    /// still there; after [`KEEPALIVE_MAX`] unanswered asks in a row the
    /// session ends (its commands, transfers and SFTP work end with an
    /// error). `None` never asks: a server behind a network that drops
    /// packets is then only noticed by the kernel, hours later.
    pub keepalive: Option<Duration>,
    /// The daemon's SSH session slots per server (unlimited by default);
    /// every session opened here takes one and holds it until dropped.
    pub sessions: SessionSlots,
    /// Work that runs on every new session before it is handed out (the
    /// files domain registers its recovery of temporary files an earlier
    /// write left on the server). The default runs nothing.
    pub on_connect: ConnectHooks,
}

/// Work another domain runs on every new session before [`connect`] hands
/// it out. The SSH layer knows nothing of what it does: a domain that must
/// act on a fresh session registers itself here (in [`SshOptions`]), so the
/// layer below never calls up into it.
pub trait ConnectHook: Send + Sync + 'static {
    /// Runs on `session`, just opened to `server`. It must bound its own
    /// time and swallow its own failures: the session is used afterwards
    /// whatever happened here.
    fn connected<'a>(&'a self, server: &'a ServerSpec, session: &'a SshSession) -> BoxFuture<'a, ()>;
}

/// The hooks [`connect`] runs, in order; cheap to clone.
#[derive(Clone, Default)]
pub struct ConnectHooks(Vec<Arc<dyn ConnectHook>>);

impl ConnectHooks {
    /// Runs `hooks`, in this order, on every new session.
    pub fn new(hooks: Vec<Arc<dyn ConnectHook>>) -> Self {
        ConnectHooks(hooks)
    }

    async fn run(&self, server: &ServerSpec, session: &SshSession) {
        for hook in &self.0 {
            hook.connected(server, session).await;
        }
    }
}

impl std::fmt::Debug for ConnectHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnectHooks({})", self.0.len())
    }
}

/// Unanswered keepalives in a row after which a session is given up, as
/// OpenSSH's `ServerAliveCountMax` (3): a silent server is noticed within
/// `keepalive x (KEEPALIVE_MAX + 1)`.
pub const KEEPALIVE_MAX: usize = 3;

/// Connects to `server`, checks its host key and authenticates.
///
/// Errors: [`ErrorCode::SshConnectionTimeout`] when the whole attempt runs
/// past `connect_timeout`; [`ErrorCode::SshHostKeyRejected`] when the host
/// key is unknown (strict), changed, or not the pinned one;
/// [`ErrorCode::SshAuthFailed`] when every credential is refused;
/// [`ErrorCode::SshConnectionFailed`] for the rest (refused port, broken
/// handshake); [`ErrorCode::SshNoSessionSlot`] when no session slot of the
/// server came free within the queue wait (that wait comes before, and
/// apart from, `connect_timeout`). The detail names the server and the
/// cause, never a secret.
///
/// Before the session is handed out, the [`ConnectHooks`] of `opts` run on
/// it (the files domain removes the temporary files an earlier write left
/// on this server; at once when there are none, the usual case).
pub async fn connect(server: &ServerSpec, opts: &SshOptions) -> Result<SshSession, AppError> {
    let who = describe(server);
    let slot = opts.sessions.take(&server.host, server.port, &who).await?;
    let session =
        match tokio::time::timeout(opts.connect_timeout, connect_and_authenticate(server, opts)).await {
            Ok(result) => result.map(|session| session.holding(slot))?,
            Err(_) => {
                return Err(AppError::with_detail(
                    ErrorCode::SshConnectionTimeout,
                    format!("{who}: no session within {:?}", opts.connect_timeout),
                ))
            }
        };
    opts.on_connect.run(server, &session).await;
    Ok(session)
}

/// `server 'name' (user@host:port)`, the prefix of every detail.
pub(crate) fn describe(server: &ServerSpec) -> String {
    format!(
        "server '{}' ({}@{}:{})",
        server.name, server.username, server.host, server.port
    )
}

async fn connect_and_authenticate(server: &ServerSpec, opts: &SshOptions) -> Result<SshSession, AppError> {
    let who = describe(server);
    let rejection = Arc::new(Mutex::new(None));
    let handler = ClientHandler {
        server: server.name.clone(),
        host: server.host.clone(),
        port: server.port,
        pinned: server.host_key_fingerprint.clone(),
        policy: opts.host_keys.clone(),
        rejection: Arc::clone(&rejection),
    };
    let config = Arc::new(client_config(server, opts));
    let socket = open_socket(server, opts)
        .await
        .map_err(|e| AppError::with_detail(ErrorCode::SshConnectionFailed, format!("{who}: {e}")))?;
    let connected = russh::client::connect_stream(config, socket, handler).await;
    let mut handle = match connected {
        Ok(handle) => handle,
        Err(e) => {
            let stashed = rejection.lock().unwrap_or_else(|p| p.into_inner()).take();
            return Err(match stashed {
                Some(reason) => {
                    AppError::with_detail(ErrorCode::SshHostKeyRejected, format!("{who}: {reason}"))
                }
                None => AppError::with_detail(ErrorCode::SshConnectionFailed, format!("{who}: {e}")),
            });
        }
    };
    authenticate(&mut handle, server, &who).await?;
    info!(server = server.name.as_str(); "ssh session established");
    Ok(SshSession::new(handle, server.name.clone()))
}

/// The TCP connection a session runs over: no Nagle delay (keystrokes),
/// and, with keepalives on, `TCP_USER_TIMEOUT` at the same limit as the
/// keepalives. russh's keepalives notice a silent server while the session
/// waits; they cannot fire while its loop is blocked writing into a full
/// socket (a bulk upload into a network that drops packets), and the
/// kernel's user timeout covers exactly that case: data unacknowledged, or
/// stuck behind a zero window, that long ends the connection, and every
/// channel on it ends with an error.
pub(super) async fn open_socket(
    server: &ServerSpec,
    opts: &SshOptions,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpStream::connect((server.host.as_str(), server.port)).await?;
    socket.set_nodelay(true)?;
    if let Some(every) = opts.keepalive {
        let limit = every * (KEEPALIVE_MAX as u32 + 1);
        socket2::SockRef::from(&socket).set_tcp_user_timeout(Some(limit))?;
    }
    Ok(socket)
}

/// russh's defaults with aes128-gcm first (about 1.5x chacha20 here, see
/// NOTES-russh), nodelay for keystrokes, keepalives, and the host key types already
/// recorded for this host put first, as OpenSSH does, so a server with
/// several host keys presents the one we know.
pub(super) fn client_config(server: &ServerSpec, opts: &SshOptions) -> russh::client::Config {
    let policy = &opts.host_keys;
    let mut ciphers = vec![cipher::AES_128_GCM];
    ciphers.extend(
        Preferred::DEFAULT
            .cipher
            .iter()
            .filter(|c| **c != cipher::AES_128_GCM),
    );
    let key = if server.host_key_fingerprint.is_some() {
        Preferred::DEFAULT.key.clone()
    } else {
        let recorded = host_keys::recorded_algorithms(&policy.known_hosts, &server.host, server.port);
        Cow::Owned(key_order(&recorded))
    };
    russh::client::Config {
        preferred: Preferred {
            cipher: Cow::Owned(ciphers),
            key,
            ..Preferred::DEFAULT
        },
        nodelay: true,
        keepalive_interval: opts.keepalive,
        keepalive_max: KEEPALIVE_MAX,
        ..Default::default()
    }
}

/// Our supported host key algorithms with the `recorded` ones first. An
/// RSA record stands for every RSA signature hash (the key is the same).
fn key_order(recorded: &[Algorithm]) -> Vec<Algorithm> {
    let supported = &Preferred::DEFAULT.key;
    let mut order: Vec<Algorithm> = Vec::new();
    for alg in recorded {
        for s in supported.iter() {
            let same = if is_rsa(alg) { is_rsa(s) } else { s == alg };
            if same && !order.contains(s) {
                order.push(s.clone());
            }
        }
    }
    for s in supported.iter() {
        if !order.contains(s) {
            order.push(s.clone());
        }
    }
    order
}

fn is_rsa(alg: &Algorithm) -> bool {
    matches!(alg, Algorithm::Rsa { .. })
}

async fn authenticate(
    handle: &mut russh::client::Handle<ClientHandler>,
    server: &ServerSpec,
    who: &str,
) -> Result<(), AppError> {
    let lost = |e: russh::Error| {
        AppError::with_detail(
            ErrorCode::SshConnectionFailed,
            format!("{who}: connection lost during authentication: {e}"),
        )
    };
    let refused = |what: String| AppError::with_detail(ErrorCode::SshAuthFailed, format!("{who}: {what}"));
    let user = server.username.as_str();
    // The seed asks with `none` first: some gateways let a configured user
    // in without a credential. It costs one round trip, sends no secret,
    // and sshd neither counts it against MaxAuthTries nor delays it like a
    // wrong password; a refusal falls through to the configured method
    // exactly as before.
    if let AuthResult::Success = handle.authenticate_none(user).await.map_err(lost)? {
        info!(server = server.name.as_str(); "server accepted the none method");
        return Ok(());
    }
    match &server.auth {
        Auth::Password(password) => {
            let remaining = match handle
                .authenticate_password(user, password.expose())
                .await
                .map_err(lost)?
            {
                AuthResult::Success => return Ok(()),
                AuthResult::Failure {
                    remaining_methods, ..
                } => remaining_methods,
            };
            if !remaining.contains(&MethodKind::KeyboardInteractive) {
                return Err(refused(format!(
                    "password refused (server offers: {})",
                    method_names(&remaining)
                )));
            }
            keyboard_interactive(handle, user, password)
                .await
                .map_err(lost)?
                .map_err(|()| refused("password refused by password and keyboard-interactive".into()))
        }
        Auth::KeyFile { path, passphrase } => {
            let key = russh::keys::load_secret_key(path, passphrase.as_ref().map(Secret::expose))
                .map_err(|e| refused(format!("cannot load private key {}: {e}", path.display())))?;
            // RSA signs with a hash the server must accept; ask it (needs
            // server-sig-algs) rather than default to SHA-1, which OpenSSH
            // 8.8+ refuses.
            let hash = if key.algorithm().is_rsa() {
                handle.best_supported_rsa_hash().await.map_err(lost)?.flatten()
            } else {
                None
            };
            let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            match handle.authenticate_publickey(user, key).await.map_err(lost)? {
                AuthResult::Success => Ok(()),
                AuthResult::Failure {
                    remaining_methods, ..
                } => Err(refused(format!(
                    "public key {} refused (server offers: {})",
                    path.display(),
                    method_names(&remaining_methods)
                ))),
            }
        }
    }
}

/// Answers every prompt with the password, round after round, until the
/// server decides. `Ok(Err(()))` is a refusal; `Err` a broken connection.
async fn keyboard_interactive(
    handle: &mut russh::client::Handle<ClientHandler>,
    user: &str,
    password: &Secret,
) -> Result<Result<(), ()>, russh::Error> {
    let mut reply = handle
        .authenticate_keyboard_interactive_start(user, None::<String>)
        .await?;
    for _ in 0..MAX_KBD_INT_ROUNDS {
        match reply {
            KeyboardInteractiveAuthResponse::Success => return Ok(Ok(())),
            KeyboardInteractiveAuthResponse::Failure { .. } => return Ok(Err(())),
            KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                // PAM ends with a request of zero prompts: answer it with
                // zero answers
                let answers = prompts.iter().map(|_| password.expose().to_owned()).collect();
                reply = handle.authenticate_keyboard_interactive_respond(answers).await?;
            }
        }
    }
    Ok(Err(()))
}

fn method_names(methods: &MethodSet) -> String {
    if methods.is_empty() {
        return "nothing".into();
    }
    methods
        .iter()
        .map(<&'static str>::from)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::HashAlg;

    #[test]
    fn recorded_key_types_come_first_and_nothing_is_lost() {
        let order = key_order(&[Algorithm::Rsa { hash: None }]);
        assert!(order[..3].iter().all(is_rsa), "{order:?}");
        assert_eq!(
            order[0],
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512)
            }
        );
        assert_eq!(order.len(), Preferred::DEFAULT.key.len());
    }

    #[test]
    fn without_records_the_default_order_stands() {
        assert_eq!(key_order(&[]), Preferred::DEFAULT.key.to_vec());
    }
}
