//! Host-key rotation: what key a server offers now against what we trust,
//! and an admin's acceptance of a changed key.
//!
//! A changed key is refused with 20002 forever (see [`host_keys`]) until an
//! admin compares the fingerprints ([`host_key_report`]) and accepts the
//! new one by naming it ([`accept_host_key`]). The daemon then fetches the
//! offered key again and writes that key, never one taken from the
//! request: nothing accepts a changed key without its fingerprint, and a
//! key swapped in between the look and the acceptance is refused (20004).
//!
//! Looking at the offered key needs no credential: the handshake is
//! stopped inside `check_server_key`, before authentication, so a server
//! we do not trust never sees a password. Nothing is cached: every
//! connection judges the file as it is on disk, so a new connection after
//! an acceptance is judged against the new entry.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use log::info;
use russh::keys::{PublicKey, PublicKeyOrCertificate};
use serde::Serialize;

use super::connect::{client_config, describe, open_socket, SshOptions};
use super::host_keys::{
    self, fingerprint, known_hosts_host, learning_gate, under_file_lock, HostKeyRejection, Verdict,
};
use super::known_hosts_file::{hashed_name, records_for, without_host, Marker};
use crate::error::{AppError, ErrorCode};
use crate::server::ServerSpec;

/// One host key, as `ssh-keygen -l` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostKeyId {
    /// The key type (`ssh-ed25519`, `rsa-sha2-512`...).
    pub algorithm: String,
    /// `SHA256:<base64>`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

impl HostKeyId {
    fn of(key: &PublicKey) -> Self {
        HostKeyId {
            algorithm: key.algorithm().to_string(),
            fingerprint: fingerprint(key),
        }
    }
}

/// A host key the known_hosts file records for the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordedKey {
    /// The key type.
    pub algorithm: String,
    /// `SHA256:<base64>`.
    pub fingerprint: String,
    /// The 1-based line of the file that records it.
    pub line: usize,
}

/// How the offered key stands against what we trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Trusted: a connection passes the host key check.
    Match,
    /// Other keys are trusted for this server: connections fail with 20002
    /// until an admin accepts the offered key (or the pin is changed).
    Changed,
    /// Nothing is recorded for this server: connections fail with 20002
    /// under `strict`; `accept-new` records the key on first use.
    Unknown,
    /// A `@revoked` line lists the offered key: it is never accepted
    /// (remove the line by hand if that was a mistake).
    Revoked,
}

/// The key a server offers now and what we trust for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostKeyReport {
    /// The server's name.
    pub server: String,
    /// Its host, as configured.
    pub host: String,
    /// Its SSH port.
    pub port: u16,
    /// The key the server offered just now (the key type we would
    /// negotiate: those already recorded come first).
    pub offered: HostKeyId,
    /// The host keys known_hosts records for `host:port`, in file order
    /// (empty for a pinned server, whose pin alone decides).
    pub known: Vec<RecordedKey>,
    /// The fingerprint pinned in the servers file, if any.
    pub pinned: Option<String>,
    /// How `offered` stands.
    pub status: KeyStatus,
}

/// What an acceptance changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accepted {
    /// The server's name.
    pub server: String,
    /// The key now recorded, the one the server offered.
    pub accepted: HostKeyId,
    /// The host keys recorded for the server before, now removed (those
    /// matched by a wildcard line stay, see docs/operations.md).
    pub previous: Vec<RecordedKey>,
    /// The file rewritten.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub known_hosts: PathBuf,
}

/// The key `server` offers now: a handshake stopped at the host key, under
/// the connect timeout, with no credential sent and no session slot taken
/// (it is over before authentication).
///
/// Errors: 20001 past the timeout, 20000 when no key was offered (refused
/// port, broken handshake), 20002 for a host certificate.
pub async fn offered_host_key(server: &ServerSpec, opts: &SshOptions) -> Result<PublicKey, AppError> {
    let who = describe(server);
    let fetch = async {
        let caught = Arc::new(Mutex::new(None));
        let catcher = KeyCatcher {
            caught: Arc::clone(&caught),
        };
        let socket = open_socket(server, opts)
            .await
            .map_err(|e| AppError::with_detail(ErrorCode::SshConnectionFailed, format!("{who}: {e}")))?;
        let config = Arc::new(client_config(server, opts));
        let ended = russh::client::connect_stream(config, socket, catcher).await;
        let key = caught.lock().unwrap_or_else(|p| p.into_inner()).take();
        match (key, ended) {
            (Some(Offered::Key(key)), _) => Ok(key),
            (Some(Offered::Certificate), _) => Err(AppError::with_detail(
                ErrorCode::SshHostKeyRejected,
                format!("{who}: {}", HostKeyRejection::Certificate),
            )),
            (None, Err(e)) => Err(AppError::with_detail(
                ErrorCode::SshConnectionFailed,
                format!("{who}: {e}"),
            )),
            (None, Ok(_)) => Err(AppError::with_detail(
                ErrorCode::SshConnectionFailed,
                format!("{who}: the handshake ended without a host key"),
            )),
        }
    };
    match tokio::time::timeout(opts.connect_timeout, fetch).await {
        Ok(result) => result,
        Err(_) => Err(AppError::with_detail(
            ErrorCode::SshConnectionTimeout,
            format!("{who}: no host key within {:?}", opts.connect_timeout),
        )),
    }
}

/// The russh handler of [`offered_host_key`]: keeps the key and refuses
/// it, which ends the handshake before any credential is asked for.
struct KeyCatcher {
    /// Where [`offered_host_key`] finds what was offered once russh has
    /// given up on the refused handshake.
    caught: Arc<Mutex<Option<Offered>>>,
}

/// What a server offered as its host key.
enum Offered {
    /// A plain key.
    Key(PublicKey),
    /// A host certificate, which we never trust.
    Certificate,
}

impl russh::client::Handler for KeyCatcher {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let caught = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => Offered::Key(key.clone()),
            PublicKeyOrCertificate::Certificate(_) => Offered::Certificate,
        };
        *self.caught.lock().unwrap_or_else(|p| p.into_inner()) = Some(caught);
        Ok(false)
    }
}

/// The key `server` offers now and how it stands against its pin or the
/// known_hosts file of `opts`. Errors as [`offered_host_key`], and 20002
/// when the known_hosts file cannot be read.
pub async fn host_key_report(server: &ServerSpec, opts: &SshOptions) -> Result<HostKeyReport, AppError> {
    let offered = offered_host_key(server, opts).await?;
    let file = &opts.host_keys.known_hosts;
    let host_port = known_hosts_host(&server.host, server.port);
    let (known, status) = match &server.host_key_fingerprint {
        Some(pinned) => {
            let status = match host_keys::check_pinned(pinned, &offered) {
                Ok(_) => KeyStatus::Match,
                Err(HostKeyRejection::PinMismatch { .. }) => KeyStatus::Changed,
                Err(e) => return Err(rejected(server, e)),
            };
            (Vec::new(), status)
        }
        None => {
            // one read: the status and the list describe the same file
            let text = read(file).map_err(|e| rejected(server, e))?;
            let status = match host_keys::judge(&records_for(&text, &host_port, file), &offered) {
                Verdict::Known => KeyStatus::Match,
                Verdict::Changed(..) | Verdict::OtherKeyTypes(_) => KeyStatus::Changed,
                Verdict::Revoked(_) => KeyStatus::Revoked,
                Verdict::CertAuthority(_) | Verdict::Unknown => KeyStatus::Unknown,
            };
            (recorded_keys(&text, &host_port, file), status)
        }
    };
    Ok(HostKeyReport {
        server: server.name.clone(),
        host: server.host.clone(),
        port: server.port,
        offered: HostKeyId::of(&offered),
        known,
        pinned: server.host_key_fingerprint.as_ref().map(|p| p.trim().to_owned()),
        status,
    })
}

/// Trusts the key `server` offers now in place of the host keys recorded
/// for it, if and only if its fingerprint is `expected`.
///
/// The key is fetched afresh and compared with `expected`; then, under
/// the known_hosts writers' lock ([`host_keys::under_file_lock`], shared
/// with trust on first use), the file is read again and rewritten
/// atomically (a temporary file in the same directory, flushed to disk,
/// renamed over the old one, with the old file's mode): every entry that
/// names this host itself (any key type: a reinstalled server has new keys
/// of every type, and an old one left behind would stay trusted) gives way
/// to one entry for the new key, hashed when the old ones were. Every other
/// line stays byte for byte.
///
/// Errors: 10001 when `expected` is not `SHA256:<base64>`; 20005 for a
/// server pinned in the servers file (known_hosts does not decide for it);
/// 20004 when the server offers another key; 20002 when a `@revoked` line
/// lists the offered key; as [`offered_host_key`] when it cannot be
/// fetched; 10000 when the file cannot be written.
pub async fn accept_host_key(
    server: &ServerSpec,
    opts: &SshOptions,
    expected: &str,
) -> Result<Accepted, AppError> {
    let who = describe(server);
    // the form first: a typo is a bad request, not a different key
    host_keys::fingerprint_matches(expected, "")
        .map_err(|e| AppError::with_detail(ErrorCode::Validation, format!("fingerprint: {e}")))?;
    if let Some(pinned) = &server.host_key_fingerprint {
        return Err(AppError::with_detail(
            ErrorCode::HostKeyPinned,
            format!(
                "{who}: its host key is pinned (host_key_fingerprint = \"{}\") in the servers file, \
                 which known_hosts cannot override; set host_key_fingerprint = \"{}\" there and \
                 reload the configuration",
                pinned.trim(),
                expected.trim()
            ),
        ));
    }
    let offered = offered_host_key(server, opts).await?;
    let offered_fp = fingerprint(&offered);
    if !host_keys::fingerprint_matches(expected, &offered_fp).unwrap_or(false) {
        return Err(AppError::with_detail(
            ErrorCode::HostKeyMismatch,
            format!(
                "{who}: the server offers {offered_fp}, not the expected {}; known_hosts was not changed",
                expected.trim()
            ),
        ));
    }
    let file = opts.host_keys.known_hosts.clone();
    let host_port = known_hosts_host(&server.host, server.port);
    // in this process, queue behind a first-use learner of the same host
    // without holding a thread; the file lock then orders us against
    // every writer in any process
    let gate = learning_gate(&file, &host_port);
    let _turn = gate.lock().await;
    let previous = {
        let (file, host_port, key) = (file.clone(), host_port.clone(), offered.clone());
        tokio::task::spawn_blocking(move || replace_in_file(&file, &host_port, &key))
            .await
            .map_err(|e| {
                AppError::with_detail(ErrorCode::Internal, format!("{who}: the rewrite failed: {e}"))
            })?
    }
    .map_err(|e| match e {
        HostKeyRejection::File { .. } => AppError::with_detail(ErrorCode::Internal, format!("{who}: {e}")),
        other => rejected(server, other),
    })?;
    info!(server = server.name.as_str(), fingerprint = offered_fp.as_str(),
        known_hosts:% = file.display(); "accepted a changed host key");
    Ok(Accepted {
        server: server.name.clone(),
        accepted: HostKeyId::of(&offered),
        previous,
        known_hosts: file,
    })
}

/// [`replace_locked`] under the known_hosts writers' lock. Blocking.
fn replace_in_file(
    file: &Path,
    host_port: &str,
    key: &PublicKey,
) -> Result<Vec<RecordedKey>, HostKeyRejection> {
    under_file_lock(file, || replace_locked(file, host_port, key))
}

/// Under the file lock: reads the file again, refuses a revoked key, and
/// writes the host's new entry in place of its old ones. Returns the host
/// keys that were recorded before.
fn replace_locked(
    file: &Path,
    host_port: &str,
    key: &PublicKey,
) -> Result<Vec<RecordedKey>, HostKeyRejection> {
    let text = read(file)?;
    if let Verdict::Revoked(line) = host_keys::judge(&records_for(&text, host_port, file), key) {
        return Err(HostKeyRejection::Revoked {
            file: file.to_path_buf(),
            line,
            presented: fingerprint(key),
        });
    }
    let previous = recorded_keys(&text, host_port, file);
    let mut removal = without_host(&text, host_port);
    let name = if removal.hashed {
        hashed_name(host_port)
    } else {
        host_port.to_owned()
    };
    let openssh = key.to_openssh().map_err(|e| HostKeyRejection::File {
        file: file.to_path_buf(),
        cause: format!("cannot write the key: {e}"),
    })?;
    if !removal.text.is_empty() && !removal.text.ends_with('\n') {
        removal.text.push('\n');
    }
    removal.text.push_str(&format!("{name} {}\n", openssh.trim_end()));
    write_atomically(file, &removal.text).map_err(|e| HostKeyRejection::File {
        file: file.to_path_buf(),
        cause: format!("cannot rewrite it: {e}"),
    })?;
    Ok(previous)
}

/// The file's text; a missing file is empty.
fn read(file: &Path) -> Result<String, HostKeyRejection> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(HostKeyRejection::File {
            file: file.to_path_buf(),
            cause: e.to_string(),
        }),
    }
}

/// The host keys (no marker) `text` records for `host_port`.
fn recorded_keys(text: &str, host_port: &str, file: &Path) -> Vec<RecordedKey> {
    records_for(text, host_port, file)
        .into_iter()
        .filter(|r| r.marker == Marker::HostKey)
        .map(|r| RecordedKey {
            algorithm: r.key.algorithm().to_string(),
            fingerprint: fingerprint(&r.key),
            line: r.line,
        })
        .collect()
}

/// Replaces `file` with `text` so that a reader sees the old file or the
/// new one, never a part: a temporary file beside it (same file system)
/// with the old file's mode (0600 for a new file), flushed to disk, renamed
/// over it, and the directory flushed so the rename survives a crash. A
/// symbolic link is followed: its target is replaced, the link stays.
fn write_atomically(file: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let target = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mode = std::fs::metadata(&target)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "known_hosts".to_owned());
    let temp = dir.join(format!(".{name}.pinkpage-{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        // the umask may have narrowed the mode given at creation
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&temp, &target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    std::fs::File::open(&dir)?.sync_all()
}

/// A refusal about `server`'s key as its 20002 error.
fn rejected(server: &ServerSpec, reason: HostKeyRejection) -> AppError {
    AppError::with_detail(
        ErrorCode::SshHostKeyRejected,
        format!("{}: {reason}", describe(server)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJyrJDfqtSRaCznyAd4nrY3eD6E311cvLvPzGByOtKL/";
    const KEY_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBLmic869NihaHvl6gmBPxd+/hUrvn8eu+E+6/PWja0L";

    fn key(line: &str) -> PublicKey {
        PublicKey::from_openssh(line).unwrap()
    }

    #[test]
    fn replacing_keeps_other_hosts_comments_and_the_files_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let before = format!("# ours\nother {KEY_A}\n[h]:2222 {KEY_A}\n*.example.com {KEY_B}\n");
        std::fs::write(&file, &before).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();

        let previous = replace_locked(&file, "[h]:2222", &key(KEY_B)).unwrap();

        assert_eq!(
            previous,
            vec![RecordedKey {
                algorithm: "ssh-ed25519".into(),
                fingerprint: fingerprint(&key(KEY_A)),
                line: 3
            }]
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("# ours\nother {KEY_A}\n*.example.com {KEY_B}\n[h]:2222 {KEY_B}\n")
        );
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        // no temporary file is left behind
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("known_hosts")]);
    }

    #[test]
    fn a_new_file_is_owner_only_and_a_hashed_host_stays_hashed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        replace_locked(&file, "[h]:2222", &key(KEY_A)).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );

        std::fs::write(&file, format!("{} {KEY_A}\n", hashed_name("[h]:2222"))).unwrap();
        replace_locked(&file, "[h]:2222", &key(KEY_B)).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with("|1|") && text.contains(KEY_B), "{text}");
        assert!(matches!(
            host_keys::judge_file(&file, "[h]:2222", &key(KEY_B)),
            Ok(Verdict::Known)
        ));
    }

    #[test]
    fn a_revoked_key_is_not_accepted_and_the_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let before = format!("[h]:2222 {KEY_A}\n@revoked * {KEY_B}\n");
        std::fs::write(&file, &before).unwrap();
        let refused = replace_locked(&file, "[h]:2222", &key(KEY_B)).unwrap_err();
        assert!(
            matches!(refused, HostKeyRejection::Revoked { line: 2, .. }),
            "{refused:?}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_acceptance_and_a_first_use_learner_lose_neither_write() {
        // a learner of another host appends while the acceptance rewrites:
        // without the shared lock the rename drops the appended line in
        // some rounds
        for round in 0..30 {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("known_hosts");
            std::fs::write(&file, format!("[h]:2222 {KEY_A}\n")).unwrap();
            let policy = host_keys::HostKeyPolicy {
                known_hosts: file.clone(),
                mode: host_keys::HostKeyMode::AcceptNew,
            };
            let learner = tokio::spawn({
                let policy = policy.clone();
                async move { host_keys::check_known_hosts(&policy, "other", 22, &key(KEY_A)).await }
            });
            let accept = tokio::task::spawn_blocking({
                let file = file.clone();
                move || replace_in_file(&file, "[h]:2222", &key(KEY_B))
            });
            learner.await.unwrap().unwrap();
            accept.await.unwrap().unwrap();
            let text = std::fs::read_to_string(&file).unwrap();
            let mut lines: Vec<&str> = text.lines().collect();
            lines.sort();
            assert_eq!(
                lines,
                vec![format!("[h]:2222 {KEY_B}"), format!("other {KEY_A}")],
                "round {round}"
            );
        }
    }
}
