//! Deciding whether a server's host key is trusted.
//!
//! Two sources of trust, never mixed: a fingerprint pinned in the server's
//! configuration, or an OpenSSH `known_hosts` file read and written with
//! russh's helpers. The decision is made in
//! [`Handler::check_server_key`](russh::client::Handler::check_server_key),
//! before any credential is sent; a refusal carries a [`HostKeyRejection`]
//! whose text ends up in the `AppError` detail. How the file's lines are
//! read (markers, patterns, hashed names) is in `known_hosts_file`; the
//! decision over them and trust on first use are here.
//!
//! Longer than our usual file because of its tests: each refusal and each
//! learning race has one, and they read best next to the decision.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use russh::keys::{HashAlg, PublicKey};

use super::known_hosts_file::{records_for, Marker, Record};

/// What to do with a host whose key is not in the known_hosts file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyMode {
    /// Refuse hosts that are not already recorded.
    Strict,
    /// Trust on first use: record an unknown host's key and accept it. A
    /// recorded key that changed is still refused.
    AcceptNew,
}

/// Where known host keys live and how unknown hosts are treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyPolicy {
    /// The OpenSSH-format known_hosts file; created on the first
    /// [`HostKeyMode::AcceptNew`] write if missing.
    pub known_hosts: PathBuf,
    /// How hosts missing from the file are treated.
    pub mode: HostKeyMode,
}

/// Why a host key was refused; its `Display` is the `AppError` detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyRejection {
    /// The key differs from the pinned fingerprint.
    PinMismatch {
        /// The fingerprint in the configuration.
        pinned: String,
        /// The fingerprint the server presented.
        presented: String,
    },
    /// The pinned fingerprint is not in the `SHA256:<base64>` form.
    PinMalformed {
        /// The configured value.
        pinned: String,
    },
    /// The known_hosts file records a different key of the same type.
    Changed {
        /// The file that holds the old key.
        file: PathBuf,
        /// The 1-based line of the old key.
        line: usize,
        /// The fingerprints of every host key recorded for this host, in
        /// file order: what an admin compares with `presented` before
        /// accepting it (docs/operations.md, "Host-key rotation").
        recorded: Vec<String>,
        /// The fingerprint the server presented.
        presented: String,
    },
    /// A `@revoked` line for this host lists the presented key.
    Revoked {
        /// The file that revokes it.
        file: PathBuf,
        /// The 1-based line of the `@revoked` entry.
        line: usize,
        /// The fingerprint the server presented.
        presented: String,
    },
    /// The only lines naming this host are `@cert-authority` lines: the
    /// operator meant certificates, which we do not trust, so neither
    /// strict nor accept-new may fall back to a plain key.
    CertAuthority {
        /// The file with the line.
        file: PathBuf,
        /// The 1-based line of the first such entry.
        line: usize,
    },
    /// The host is recorded, but only with keys of other types.
    OtherKeyTypes {
        /// The file that holds the records.
        file: PathBuf,
        /// The fingerprints of the host keys recorded for this host.
        recorded: Vec<String>,
        /// The type the server presented (`ssh-ed25519`).
        presented_type: String,
        /// The fingerprint the server presented.
        presented: String,
    },
    /// The host is not in the file and the policy is strict.
    Unknown {
        /// The file that was searched.
        file: PathBuf,
        /// The fingerprint the server presented.
        presented: String,
    },
    /// The known_hosts file could not be read or written.
    File {
        /// The file.
        file: PathBuf,
        /// What went wrong.
        cause: String,
    },
    /// The server offered a certificate; host certificates are not trusted.
    Certificate,
}

impl fmt::Display for HostKeyRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostKeyRejection::PinMismatch { pinned, presented } => write!(
                f,
                "host key {presented} does not match the pinned fingerprint {pinned}"
            ),
            HostKeyRejection::PinMalformed { pinned } => write!(
                f,
                "pinned fingerprint {pinned:?} is not of the form SHA256:<base64>"
            ),
            HostKeyRejection::Changed {
                file,
                line,
                recorded,
                presented,
            } => write!(
                f,
                "host key CHANGED: the server presented {presented}, which differs from \
                 the key recorded at {}:{line} (recorded: {}); {ACCEPT_HINT}",
                file.display(),
                recorded.join(", ")
            ),
            HostKeyRejection::Revoked {
                file,
                line,
                presented,
            } => write!(
                f,
                "host key REVOKED: the server presented {presented}, which is marked \
                 @revoked at {}:{line}",
                file.display()
            ),
            HostKeyRejection::CertAuthority { file, line } => write!(
                f,
                "{}:{line} names a @cert-authority for this host; host certificates are \
                 not supported, record the host's own key instead",
                file.display()
            ),
            HostKeyRejection::OtherKeyTypes {
                file,
                recorded,
                presented_type,
                presented,
            } => write!(
                f,
                "host key CHANGED: the server presented a {presented_type} key {presented} \
                 but {} records only keys of other types for this host (recorded: {}); \
                 {ACCEPT_HINT}",
                file.display(),
                recorded.join(", ")
            ),
            HostKeyRejection::Unknown { file, presented } => write!(
                f,
                "unknown host key {presented}: not in {} and the policy is strict",
                file.display()
            ),
            HostKeyRejection::File { file, cause } => {
                write!(f, "cannot use known_hosts file {}: {cause}", file.display())
            }
            HostKeyRejection::Certificate => {
                f.write_str("the server presented a host certificate, which is not trusted")
            }
        }
    }
}

/// The end of a "changed" detail: the way out for an expected change.
const ACCEPT_HINT: &str = "if the change is expected, an admin checks the new fingerprint and \
    accepts it (GET and POST /api/v1/servers/{name}/host-key, or pinkpage hostkey accept)";

/// How a key was accepted, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyAcceptance {
    /// It matches the pinned fingerprint.
    Pinned,
    /// It is recorded in the known_hosts file.
    Known,
    /// It was unknown and has just been recorded (accept-new).
    Learned,
}

/// The fingerprint of a key as `ssh-keygen -lf` prints it:
/// `SHA256:<base64 without padding>`.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Whether a configured fingerprint names the same key as `presented`
/// (`SHA256:...`). Surrounding blanks and base64 padding are forgiven; the
/// algorithm prefix and the base64 text are compared exactly.
pub fn fingerprint_matches(pinned: &str, presented: &str) -> Result<bool, HostKeyRejection> {
    let malformed = || HostKeyRejection::PinMalformed {
        pinned: pinned.to_owned(),
    };
    let (alg, digest) = pinned.trim().split_once(':').ok_or_else(malformed)?;
    let digest = digest.trim_end_matches('=');
    // 32 bytes of SHA-256 are 43 base64 characters without padding
    let is_base64 = digest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if alg != "SHA256" || digest.len() != 43 || !is_base64 {
        return Err(malformed());
    }
    Ok(presented == format!("SHA256:{digest}"))
}

/// How a host is written in known_hosts: `host` on port 22, `[host]:port`
/// otherwise (as OpenSSH and russh write it).
pub fn known_hosts_host(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The algorithms recorded for `host:port` (host keys only, not revoked or
/// certificate-authority lines), in file order and without repeats; used to
/// prefer those in the key exchange, as OpenSSH does, so a server with
/// several host keys presents the one we know.
pub fn recorded_algorithms(path: &Path, host: &str, port: u16) -> Vec<russh::keys::Algorithm> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut algs = Vec::new();
    for record in records_for(&text, &known_hosts_host(host, port), path) {
        if record.marker == Marker::HostKey && !algs.contains(&record.key.algorithm()) {
            algs.push(record.key.algorithm());
        }
    }
    algs
}

/// Checks `key` against a pinned fingerprint.
pub fn check_pinned(pinned: &str, key: &PublicKey) -> Result<HostKeyAcceptance, HostKeyRejection> {
    let presented = fingerprint(key);
    if fingerprint_matches(pinned, &presented)? {
        Ok(HostKeyAcceptance::Pinned)
    } else {
        Err(HostKeyRejection::PinMismatch {
            pinned: pinned.trim().to_owned(),
            presented,
        })
    }
}

/// Checks `key` against the known_hosts file of `policy`, recording it when
/// the host is unknown and the policy is accept-new.
///
/// A key listed `@revoked` for the host is refused first, whatever else
/// lists it. Then any recorded host key equal to the presented one accepts
/// it (a host may have several keys of one type during a rotation);
/// otherwise a recorded key of the same type means the key changed.
///
/// Learning is serialised per host, in this process by an async mutex and
/// across processes by a `flock` on `<known_hosts>.lock`; the file is read
/// again under both, so of two first connections presenting different keys
/// exactly one is recorded and the other is refused as changed.
pub async fn check_known_hosts(
    policy: &HostKeyPolicy,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<HostKeyAcceptance, HostKeyRejection> {
    let host_port = known_hosts_host(host, port);
    match judge_file(&policy.known_hosts, &host_port, key)? {
        Verdict::Unknown if policy.mode == HostKeyMode::AcceptNew => {}
        verdict => return verdict.into_result(&policy.known_hosts, key),
    }
    let gate = learning_gate(&policy.known_hosts, &host_port);
    let _turn = gate.lock().await;
    let file = policy.known_hosts.clone();
    let key = key.clone();
    // the flock may wait for another process: not on the event loop
    tokio::task::spawn_blocking(move || learn_locked(&file, &host_port, &key))
        .await
        .map_err(|e| HostKeyRejection::File {
            file: policy.known_hosts.clone(),
            cause: format!("the learning task failed: {e}"),
        })?
}

/// What the file says about a presented key, before any policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A host key line lists it.
    Known,
    /// A `@revoked` line for the host lists it (at this line).
    Revoked(usize),
    /// A host key of the same type but different (the first such line),
    /// and the fingerprints of every host key recorded for the host.
    Changed(usize, Vec<String>),
    /// Host keys are recorded (these fingerprints), all of other types.
    OtherKeyTypes(Vec<String>),
    /// Only a `@cert-authority` line names the host (at this line).
    CertAuthority(usize),
    /// Nothing about this host.
    Unknown,
}

impl Verdict {
    /// The verdict under a strict policy (accept-new learns `Unknown`
    /// before it gets here).
    pub(crate) fn into_result(
        self,
        file: &Path,
        key: &PublicKey,
    ) -> Result<HostKeyAcceptance, HostKeyRejection> {
        let file = file.to_path_buf();
        let presented = fingerprint(key);
        Err(match self {
            Verdict::Known => return Ok(HostKeyAcceptance::Known),
            Verdict::Revoked(line) => HostKeyRejection::Revoked {
                file,
                line,
                presented,
            },
            Verdict::Changed(line, recorded) => HostKeyRejection::Changed {
                file,
                line,
                recorded,
                presented,
            },
            Verdict::OtherKeyTypes(recorded) => HostKeyRejection::OtherKeyTypes {
                file,
                recorded,
                presented_type: key.algorithm().to_string(),
                presented,
            },
            Verdict::CertAuthority(line) => HostKeyRejection::CertAuthority { file, line },
            Verdict::Unknown => HostKeyRejection::Unknown { file, presented },
        })
    }
}

/// Reads the file (missing means empty) and judges `key` for `host_port`.
pub(crate) fn judge_file(file: &Path, host_port: &str, key: &PublicKey) -> Result<Verdict, HostKeyRejection> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(HostKeyRejection::File {
                file: file.to_path_buf(),
                cause: e.to_string(),
            })
        }
    };
    Ok(judge(&records_for(&text, host_port, file), key))
}

/// The decision over the records of one host, in the order `ssh` applies
/// it: revocation beats everything, then host keys, then certificate
/// authorities (which we cannot honour, see [`HostKeyRejection::CertAuthority`]).
pub(crate) fn judge(records: &[Record], key: &PublicKey) -> Verdict {
    let same = |r: &&Record| r.key.key_data() == key.key_data();
    let of = |marker: Marker| move |r: &&Record| r.marker == marker;
    if let Some(r) = records.iter().filter(of(Marker::Revoked)).find(same) {
        return Verdict::Revoked(r.line);
    }
    let mut host_keys = records.iter().filter(of(Marker::HostKey)).peekable();
    if host_keys.peek().is_some() {
        if host_keys.clone().any(|r| same(&r)) {
            return Verdict::Known;
        }
        let recorded = host_keys.clone().map(|r| fingerprint(&r.key)).collect();
        return match host_keys.find(|r| r.key.algorithm() == key.algorithm()) {
            Some(r) => Verdict::Changed(r.line, recorded),
            None => Verdict::OtherKeyTypes(recorded),
        };
    }
    match records.iter().find(of(Marker::CertAuthority)) {
        Some(r) => Verdict::CertAuthority(r.line),
        None => Verdict::Unknown,
    }
}

/// The turn to write one host's key (learn it, or accept a new one).
pub(crate) type Gate = Arc<tokio::sync::Mutex<()>>;

/// One async mutex per known_hosts file and host, so learners in this
/// process queue without holding a thread; never removed (one per
/// configured host at most).
pub(crate) fn learning_gate(file: &Path, host_port: &str) -> Gate {
    static GATES: OnceLock<Mutex<HashMap<(PathBuf, String), Gate>>> = OnceLock::new();
    let mut gates = GATES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    Arc::clone(
        gates
            .entry((file.to_path_buf(), host_port.to_owned()))
            .or_default(),
    )
}

/// Under the file lock: reads the file again, and records `key` only if
/// the host is still unknown.
fn learn_locked(
    file: &Path,
    host_port: &str,
    key: &PublicKey,
) -> Result<HostKeyAcceptance, HostKeyRejection> {
    under_file_lock(file, || match judge_file(file, host_port, key)? {
        Verdict::Unknown => {
            append_known_host(file, host_port, key).map_err(|e| HostKeyRejection::File {
                file: file.to_path_buf(),
                cause: format!("cannot record the new key: {e}"),
            })?;
            Ok(HostKeyAcceptance::Learned)
        }
        // another learner got there first: judge its key like any other
        verdict => verdict.into_result(file, key),
    })
}

/// Runs `change` holding an exclusive `flock` on `<file>.lock`: every
/// writer of a known_hosts file goes through here (learning under
/// accept-new, and an admin's acceptance of a changed key in
/// [`rotation`](super::rotation)), in this process and in any other
/// daemon or command line sharing the file, so no write is lost to another
/// and each writer reads the file after the last write. Blocking: call it
/// off the event loop. The lock file is left in place: removing it would
/// let a waiter lock a file nobody else sees.
pub(crate) fn under_file_lock<T>(
    file: &Path,
    change: impl FnOnce() -> Result<T, HostKeyRejection>,
) -> Result<T, HostKeyRejection> {
    let file_error = |cause: String| HostKeyRejection::File {
        file: file.to_path_buf(),
        cause,
    };
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| file_error(e.to_string()))?;
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(file))
        .map_err(|e| file_error(format!("cannot open the lock file: {e}")))?;
    lock.lock()
        .map_err(|e| file_error(format!("cannot lock the lock file: {e}")))?;
    change()
    // `lock` closes here, which releases the flock
}

/// `known_hosts.lock` next to `known_hosts`.
fn lock_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Appends `host key` to the file, creating it if missing. russh's
/// `learn_known_hosts_path` would start a new file with an empty line; this
/// writes exactly one line per key.
fn append_known_host(file: &Path, host_port: &str, key: &PublicKey) -> std::io::Result<()> {
    use std::io::Write;

    let openssh = key.to_openssh().map_err(std::io::Error::other)?;
    let existing = std::fs::read(file).unwrap_or_default();
    let separator = if existing.is_empty() || existing.ends_with(b"\n") {
        ""
    } else {
        "\n"
    };
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    // one write, so a reader that takes no lock sees whole lines
    f.write_all(format!("{separator}{host_port} {}\n", openssh.trim_end()).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with `ssh-keygen -t ed25519`; the fingerprint is what
    // `ssh-keygen -lf` printed for it.
    const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJyrJDfqtSRaCznyAd4nrY3eD6E311cvLvPzGByOtKL/";
    const KEY_A_FP: &str = "SHA256:15wSE3wv0Hg0c2+ly2ZwYOoFvhbLspPXLTEdcZ5RTVc";
    const KEY_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBLmic869NihaHvl6gmBPxd+/hUrvn8eu+E+6/PWja0L";

    fn key(line: &str) -> PublicKey {
        PublicKey::from_openssh(line).unwrap()
    }

    fn policy(dir: &Path, mode: HostKeyMode) -> HostKeyPolicy {
        HostKeyPolicy {
            known_hosts: dir.join("known_hosts"),
            mode,
        }
    }

    #[test]
    fn fingerprint_is_printed_like_ssh_keygen() {
        assert_eq!(fingerprint(&key(KEY_A)), KEY_A_FP);
    }

    #[test]
    fn a_pinned_fingerprint_matches_with_or_without_padding_and_blanks() {
        assert_eq!(fingerprint_matches(KEY_A_FP, KEY_A_FP), Ok(true));
        assert_eq!(fingerprint_matches(&format!(" {KEY_A_FP}= "), KEY_A_FP), Ok(true));
    }

    #[test]
    fn a_different_pinned_fingerprint_does_not_match() {
        let other = fingerprint(&key(KEY_B));
        assert_eq!(fingerprint_matches(&other, KEY_A_FP), Ok(false));
        let rejection = check_pinned(&other, &key(KEY_A)).unwrap_err();
        assert!(rejection.to_string().contains(KEY_A_FP), "{rejection}");
    }

    #[test]
    fn a_malformed_pin_is_refused_not_compared() {
        for pin in [
            "",
            "MD5:aa:bb",
            "15wSE3wv0Hg0c2+ly2ZwYOoFvhbLspPXLTEdcZ5RTVc",
            "SHA256:short",
        ] {
            assert!(
                matches!(
                    fingerprint_matches(pin, KEY_A_FP),
                    Err(HostKeyRejection::PinMalformed { .. })
                ),
                "{pin}"
            );
        }
    }

    #[test]
    fn known_hosts_names_non_standard_ports_in_brackets() {
        assert_eq!(known_hosts_host("10.0.0.1", 22), "10.0.0.1");
        assert_eq!(known_hosts_host("127.0.0.1", 2222), "[127.0.0.1]:2222");
    }

    #[tokio::test]
    async fn strict_refuses_an_unknown_host_and_names_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path(), HostKeyMode::Strict);
        let rejection = check_known_hosts(&p, "127.0.0.1", 2222, &key(KEY_A))
            .await
            .unwrap_err();
        assert!(matches!(rejection, HostKeyRejection::Unknown { .. }));
        assert!(rejection.to_string().contains("unknown host key"));
        assert!(rejection.to_string().contains(KEY_A_FP));
        assert!(!p.known_hosts.exists());
    }

    #[tokio::test]
    async fn accept_new_records_the_key_and_strict_then_knows_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = policy(dir.path(), HostKeyMode::AcceptNew);
        let learned = check_known_hosts(&p, "127.0.0.1", 2222, &key(KEY_A)).await;
        assert_eq!(learned, Ok(HostKeyAcceptance::Learned));
        let text = std::fs::read_to_string(&p.known_hosts).unwrap();
        assert_eq!(text, format!("[127.0.0.1]:2222 {KEY_A}\n"));
        p.mode = HostKeyMode::Strict;
        assert_eq!(
            check_known_hosts(&p, "127.0.0.1", 2222, &key(KEY_A)).await,
            Ok(HostKeyAcceptance::Known)
        );
    }

    #[tokio::test]
    async fn a_changed_key_is_refused_under_both_modes_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, format!("# comment\nother {KEY_A}\n[h]:2222 {KEY_B}\n")).unwrap();
        for mode in [HostKeyMode::Strict, HostKeyMode::AcceptNew] {
            let p = policy(dir.path(), mode);
            let rejection = check_known_hosts(&p, "h", 2222, &key(KEY_A)).await.unwrap_err();
            assert!(
                matches!(rejection, HostKeyRejection::Changed { line: 3, .. }),
                "{rejection:?}"
            );
            let text = rejection.to_string();
            assert!(text.contains("CHANGED"), "{text}");
            // both sides of the change: what the server presents, what we recorded
            assert!(text.contains(KEY_A_FP), "{text}");
            assert!(text.contains(&fingerprint(&key(KEY_B))), "{text}");
        }
    }

    #[tokio::test]
    async fn the_port_is_part_of_the_host_identity() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, format!("h {KEY_B}\n")).unwrap();
        let p = policy(dir.path(), HostKeyMode::Strict);
        assert!(matches!(
            check_known_hosts(&p, "h", 2222, &key(KEY_A)).await,
            Err(HostKeyRejection::Unknown { .. })
        ));
        assert!(matches!(
            check_known_hosts(&p, "h", 22, &key(KEY_A)).await,
            Err(HostKeyRejection::Changed { line: 1, .. })
        ));
    }

    #[tokio::test]
    async fn a_revoked_key_is_refused_even_when_also_listed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, format!("h {KEY_A}\n@revoked * {KEY_A}\n")).unwrap();
        for mode in [HostKeyMode::Strict, HostKeyMode::AcceptNew] {
            let rejection = check_known_hosts(&policy(dir.path(), mode), "h", 22, &key(KEY_A))
                .await
                .unwrap_err();
            assert!(
                matches!(rejection, HostKeyRejection::Revoked { line: 2, .. }),
                "{rejection:?}"
            );
            assert!(rejection.to_string().contains("REVOKED"), "{rejection}");
        }
        // the other key of the host is not revoked
        let p = policy(dir.path(), HostKeyMode::Strict);
        std::fs::write(&file, format!("h {KEY_A}\nh {KEY_B}\n@revoked h {KEY_A}\n")).unwrap();
        assert_eq!(
            check_known_hosts(&p, "h", 22, &key(KEY_B)).await,
            Ok(HostKeyAcceptance::Known)
        );
    }

    #[tokio::test]
    async fn a_revoked_key_is_not_learned_under_accept_new() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let text = format!("@revoked [h]:2222 {KEY_A}\n");
        std::fs::write(&file, &text).unwrap();
        let p = policy(dir.path(), HostKeyMode::AcceptNew);
        let verdict = check_known_hosts(&p, "h", 2222, &key(KEY_A)).await;
        assert!(
            matches!(verdict, Err(HostKeyRejection::Revoked { line: 1, .. })),
            "{verdict:?}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }

    #[tokio::test]
    async fn wildcard_and_negated_patterns_decide_which_hosts_a_line_covers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, format!("*.example.com,!db9.example.com {KEY_A}\n")).unwrap();
        let p = policy(dir.path(), HostKeyMode::Strict);
        assert_eq!(
            check_known_hosts(&p, "db1.example.com", 22, &key(KEY_A)).await,
            Ok(HostKeyAcceptance::Known)
        );
        assert!(matches!(
            check_known_hosts(&p, "db1.example.com", 22, &key(KEY_B)).await,
            Err(HostKeyRejection::Changed { line: 1, .. })
        ));
        assert!(matches!(
            check_known_hosts(&p, "db9.example.com", 22, &key(KEY_A)).await,
            Err(HostKeyRejection::Unknown { .. })
        ));
    }

    #[tokio::test]
    async fn a_cert_authority_line_is_refused_clearly_and_not_replaced_by_learning() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let text = format!("# CA\n@cert-authority *.example.com {KEY_B}\n");
        std::fs::write(&file, &text).unwrap();
        for mode in [HostKeyMode::Strict, HostKeyMode::AcceptNew] {
            let rejection = check_known_hosts(&policy(dir.path(), mode), "a.example.com", 22, &key(KEY_A))
                .await
                .unwrap_err();
            assert!(
                matches!(rejection, HostKeyRejection::CertAuthority { line: 2, .. }),
                "{rejection:?}"
            );
            let text = rejection.to_string();
            assert!(
                text.contains("known_hosts:2") && text.contains("not supported"),
                "{text}"
            );
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_connections_record_exactly_one_key() {
        // 20 rounds of 16 learners at once, half presenting each key:
        // without the serialisation two keys get recorded in most rounds
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let p = policy(dir.path(), HostKeyMode::AcceptNew);
            let learners: Vec<_> = (0..16)
                .map(|i| {
                    let p = p.clone();
                    let k = key(if i % 2 == 0 { KEY_A } else { KEY_B });
                    tokio::spawn(async move { check_known_hosts(&p, "h", 2222, &k).await })
                })
                .collect();
            let mut verdicts = Vec::new();
            for learner in learners {
                verdicts.push(learner.await.unwrap());
            }
            let text = std::fs::read_to_string(&p.known_hosts).unwrap();
            assert_eq!(text.lines().count(), 1, "round {round}: {text}");
            let learned = verdicts
                .iter()
                .filter(|v| **v == Ok(HostKeyAcceptance::Learned))
                .count();
            assert_eq!(learned, 1, "round {round}: {verdicts:?}");
            // whoever lost to the other key is refused as changed, never accepted
            let winner_is_a = text.contains(KEY_A);
            for (i, verdict) in verdicts.iter().enumerate() {
                if (i % 2 == 0) == winner_is_a {
                    assert!(verdict.is_ok(), "round {round}, {i}: {verdict:?}");
                } else {
                    assert!(
                        matches!(verdict, Err(HostKeyRejection::Changed { line: 1, .. })),
                        "round {round}, {i}: {verdict:?}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn a_learner_reads_the_file_again_after_taking_the_file_lock() {
        // stands for another process: it holds the lock while it records
        // a key, and the waiting learner must see that key
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let other = std::fs::File::create(lock_path(&file)).unwrap();
        other.lock().unwrap();
        let waiter = {
            let file = file.clone();
            std::thread::spawn(move || learn_locked(&file, "h", &key(KEY_A)))
        };
        // the kernel lists a blocked flock waiter in /proc/locks as `->`
        let inode = std::os::unix::fs::MetadataExt::ino(&other.metadata().unwrap());
        let waiting = || {
            std::fs::read_to_string("/proc/locks")
                .unwrap_or_default()
                .lines()
                .any(|l| l.contains("-> FLOCK") && l.contains(&format!(":{inode} ")))
        };
        crate::testing::eventually("the learner waiting for the lock", async || waiting()).await;
        std::fs::write(&file, format!("h {KEY_B}\n")).unwrap();
        other.unlock().unwrap();
        let verdict = waiter.join().unwrap();
        assert!(
            matches!(verdict, Err(HostKeyRejection::Changed { line: 1, .. })),
            "{verdict:?}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("h {KEY_B}\n"));
    }
}
