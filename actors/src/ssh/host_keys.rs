//! Deciding whether a server's host key is trusted.
//!
//! Two sources of trust, never mixed: a fingerprint pinned in the server's
//! configuration, or an OpenSSH `known_hosts` file read and written with
//! russh's helpers. The decision is made in
//! [`Handler::check_server_key`](russh::client::Handler::check_server_key),
//! before any credential is sent; a refusal carries a [`HostKeyRejection`]
//! whose text ends up in the `AppError` detail.

use std::fmt;
use std::path::{Path, PathBuf};

use russh::keys::{HashAlg, PublicKey};

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
        /// The fingerprint the server presented.
        presented: String,
    },
    /// The host is recorded, but only with keys of other types.
    OtherKeyTypes {
        /// The file that holds the records.
        file: PathBuf,
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
                presented,
            } => write!(
                f,
                "host key CHANGED: the server presented {presented}, which differs from \
                 the key recorded at {}:{line}",
                file.display()
            ),
            HostKeyRejection::OtherKeyTypes {
                file,
                presented_type,
                presented,
            } => write!(
                f,
                "host key CHANGED: the server presented a {presented_type} key {presented} \
                 but {} records only keys of other types for this host",
                file.display()
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

/// The algorithms recorded for `host:port`, in file order and without
/// repeats; used to prefer those in the key exchange, as OpenSSH does, so a
/// server with several host keys presents the one we know.
pub fn recorded_algorithms(path: &Path, host: &str, port: u16) -> Vec<russh::keys::Algorithm> {
    let mut algs = Vec::new();
    if let Ok(keys) = russh::keys::known_hosts::known_host_keys_path(host, port, path) {
        for (_, key) in keys {
            if !algs.contains(&key.algorithm()) {
                algs.push(key.algorithm());
            }
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
/// Any recorded key equal to the presented one accepts it (a host may have
/// several keys of one type during a rotation); otherwise a recorded key of
/// the same type means the key changed.
pub fn check_known_hosts(
    policy: &HostKeyPolicy,
    host: &str,
    port: u16,
    key: &PublicKey,
) -> Result<HostKeyAcceptance, HostKeyRejection> {
    let file = &policy.known_hosts;
    let file_error = |cause: String| HostKeyRejection::File {
        file: file.clone(),
        cause,
    };
    let recorded = russh::keys::known_hosts::known_host_keys_path(host, port, file)
        .map_err(|e| file_error(e.to_string()))?;
    if recorded.iter().any(|(_, k)| k.key_data() == key.key_data()) {
        return Ok(HostKeyAcceptance::Known);
    }
    let presented = fingerprint(key);
    if let Some((line, _)) = recorded.iter().find(|(_, k)| k.algorithm() == key.algorithm()) {
        return Err(HostKeyRejection::Changed {
            file: file.clone(),
            line: file_line(file, *line),
            presented,
        });
    }
    if !recorded.is_empty() {
        return Err(HostKeyRejection::OtherKeyTypes {
            file: file.clone(),
            presented_type: key.algorithm().to_string(),
            presented,
        });
    }
    match policy.mode {
        HostKeyMode::Strict => Err(HostKeyRejection::Unknown {
            file: file.clone(),
            presented,
        }),
        HostKeyMode::AcceptNew => {
            append_known_host(file, host, port, key)
                .map_err(|e| file_error(format!("cannot record the new key: {e}")))?;
            Ok(HostKeyAcceptance::Learned)
        }
    }
}

/// Appends `host key` to the file, creating it (and its directory) if
/// missing. russh's `learn_known_hosts_path` would start a new file with an
/// empty line; this writes exactly one line per key.
fn append_known_host(file: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    use std::io::Write;

    let openssh = key.to_openssh().map_err(std::io::Error::other)?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let existing = std::fs::read(file).unwrap_or_default();
    let separator = if existing.is_empty() || existing.ends_with(b"\n") {
        ""
    } else {
        "\n"
    };
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    // one write, so concurrent learners append whole lines
    f.write_all(
        format!(
            "{separator}{} {}\n",
            known_hosts_host(host, port),
            openssh.trim_end()
        )
        .as_bytes(),
    )
}

/// Turns russh's record number into the file's line number: russh counts
/// every line except those starting with `#`, so after a comment its number
/// is short by one per comment above the record.
fn file_line(file: &Path, russh_line: usize) -> usize {
    let Ok(text) = std::fs::read_to_string(file) else {
        return russh_line;
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#'))
        .nth(russh_line.saturating_sub(1))
        .map(|(i, _)| i + 1)
        .unwrap_or(russh_line)
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

    #[test]
    fn strict_refuses_an_unknown_host_and_names_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path(), HostKeyMode::Strict);
        let rejection = check_known_hosts(&p, "127.0.0.1", 2222, &key(KEY_A)).unwrap_err();
        assert!(matches!(rejection, HostKeyRejection::Unknown { .. }));
        assert!(rejection.to_string().contains("unknown host key"));
        assert!(rejection.to_string().contains(KEY_A_FP));
        assert!(!p.known_hosts.exists());
    }

    #[test]
    fn accept_new_records_the_key_and_strict_then_knows_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = policy(dir.path(), HostKeyMode::AcceptNew);
        let learned = check_known_hosts(&p, "127.0.0.1", 2222, &key(KEY_A));
        assert_eq!(learned, Ok(HostKeyAcceptance::Learned));
        let text = std::fs::read_to_string(&p.known_hosts).unwrap();
        assert_eq!(text, format!("[127.0.0.1]:2222 {KEY_A}\n"));
        p.mode = HostKeyMode::Strict;
        assert_eq!(
            check_known_hosts(&p, "127.0.0.1", 2222, &key(KEY_A)),
            Ok(HostKeyAcceptance::Known)
        );
    }

    #[test]
    fn a_changed_key_is_refused_under_both_modes_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, format!("# comment\nother {KEY_A}\n[h]:2222 {KEY_B}\n")).unwrap();
        for mode in [HostKeyMode::Strict, HostKeyMode::AcceptNew] {
            let p = policy(dir.path(), mode);
            let rejection = check_known_hosts(&p, "h", 2222, &key(KEY_A)).unwrap_err();
            assert!(
                matches!(rejection, HostKeyRejection::Changed { line: 3, .. }),
                "{rejection:?}"
            );
            assert!(rejection.to_string().contains("CHANGED"));
        }
    }

    #[test]
    fn the_port_is_part_of_the_host_identity() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, format!("h {KEY_B}\n")).unwrap();
        let p = policy(dir.path(), HostKeyMode::Strict);
        assert!(matches!(
            check_known_hosts(&p, "h", 2222, &key(KEY_A)),
            Err(HostKeyRejection::Unknown { .. })
        ));
        assert!(matches!(
            check_known_hosts(&p, "h", 22, &key(KEY_A)),
            Err(HostKeyRejection::Changed { line: 1, .. })
        ));
    }
}
