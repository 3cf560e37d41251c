//! The audit chain's key and the file that holds it
//! (`PINKPAGE_AUDIT_KEY_FILE`, default `<data dir>/audit.key`).
//!
//! The key is 32 random bytes, kept in the file as 64 hex digits. It is
//! never in the database (which holds only an HMAC of a fixed label, to
//! tell a wrong key at once), a log line, a response or a process
//! argument: [`AuditKey`] has no `Serialize`, its `Debug` prints a
//! placeholder, and its bytes are wiped when it is dropped.
//!
//! The file is created owner-only (0600) by whoever first needs it (the
//! daemon at its first start, or the command line writing its first
//! row), with that mode from the start, never tightened after. A file that
//! others may read or write is refused, as ssh refuses such a private key:
//! anyone who has the key can forge the chain.

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac as _};

use super::link::{canonical, Field, Mac};

type HmacSha256 = hmac::Hmac<sha2_11::Sha256>;

/// Domain separation: what each MAC of the chain is of.
const ROW_LABEL: &[u8] = b"pinkpage-audit-row-v1";
const GENESIS_LABEL: &[u8] = b"pinkpage-audit-genesis-v1";
const CHECK_LABEL: &[u8] = b"pinkpage-audit-key-check-v1";

/// The chain's key. See the module docs.
pub struct AuditKey {
    bytes: [u8; 32],
    /// HMAC's state after the key, made once: each MAC starts from a copy.
    keyed: HmacSha256,
}

impl AuditKey {
    /// The key of these bytes (tests and benchmarks; the daemon reads its
    /// key from a [`KeyFile`]).
    pub fn from_bytes(bytes: [u8; 32]) -> AuditKey {
        let keyed = HmacSha256::new_from_slice(&bytes).expect("HMAC takes a key of any length");
        AuditKey { bytes, keyed }
    }

    /// A new key from the operating system's random source.
    pub fn generate() -> AuditKey {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        AuditKey::from_bytes(bytes)
    }

    /// The key check value: an HMAC of a fixed label, kept in the database
    /// so a start with another key is refused in one comparison. It says
    /// nothing about the key.
    pub fn check_value(&self) -> Mac {
        let mut mac = self.keyed.clone();
        mac.update(CHECK_LABEL);
        finish(mac)
    }

    /// The MAC of `row` following `prev`.
    pub fn link(&self, prev: &Mac, row: &[Field]) -> Mac {
        let mut mac = self.keyed.clone();
        mac.update(ROW_LABEL);
        mac.update(&prev.0);
        canonical(row, &mut |bytes| mac.update(bytes));
        finish(mac)
    }

    /// A genesis MAC in the making: feed it the sealed rows in id order.
    pub fn genesis(&self) -> Genesis {
        let mut mac = self.keyed.clone();
        mac.update(GENESIS_LABEL);
        Genesis { mac, rows: 0 }
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey([redacted])")
    }
}

impl Drop for AuditKey {
    /// Overwrites the bytes so a dropped key does not linger in memory.
    fn drop(&mut self) {
        self.bytes.fill(0);
        std::hint::black_box(&self.bytes);
    }
}

fn finish(mac: HmacSha256) -> Mac {
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    Mac(out)
}

/// The genesis MAC over the rows that existed before the chain: one MAC
/// over all of them, in id order ([`AuditKey::genesis`]).
pub struct Genesis {
    mac: HmacSha256,
    rows: u64,
}

impl Genesis {
    /// Adds the next sealed row.
    pub fn row(&mut self, row: &[Field]) {
        self.rows += 1;
        canonical(row, &mut |bytes| self.mac.update(bytes));
    }

    /// The genesis MAC, and how many rows it seals.
    pub fn finish(self) -> (Mac, u64) {
        let mut mac = self.mac;
        mac.update(&self.rows.to_be_bytes());
        (finish(mac), self.rows)
    }
}

/// Why the key file cannot be used. Never says what the file holds.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file is not there.
    #[error("{path} does not exist")]
    Missing {
        /// The key file.
        path: PathBuf,
    },
    /// Others may read or write it.
    #[error(
        "{path} is open to others (mode {mode:04o}); the audit key must be readable by its owner only: chmod 600 {path}"
    )]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It is not a regular file.
    #[error("{path} is not a regular file")]
    NotAFile {
        /// The key file.
        path: PathBuf,
    },
    /// It does not hold 64 hex digits.
    #[error("{path} does not hold an audit key (64 hex digits on one line)")]
    Malformed {
        /// The key file.
        path: PathBuf,
    },
    /// Reading it failed.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The key file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Creating it failed.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The key file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// Where the key is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    /// The key file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> KeyFile {
        KeyFile { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the key; the file must exist, be owner-only and hold one.
    pub fn load(&self) -> Result<AuditKey, KeyError> {
        let path = || self.path.clone();
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeyError::Missing { path: path() })
            }
            Err(source) => return Err(KeyError::Unreadable { path: path(), source }),
        };
        // the file opened, not the name: it cannot change in between
        let meta = file
            .metadata()
            .map_err(|source| KeyError::Unreadable { path: path(), source })?;
        if !meta.is_file() {
            return Err(KeyError::NotAFile { path: path() });
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen { path: path(), mode });
        }
        // 64 digits and a line end; anything much longer is not a key
        let mut text = Vec::with_capacity(80);
        let read = (&mut file)
            .take(256)
            .read_to_end(&mut text)
            .map_err(|source| KeyError::Unreadable { path: path(), source });
        let key = read.ok().and_then(|_| {
            let digits = std::str::from_utf8(&text).ok()?.trim();
            Mac::from_hex(digits).map(|m| AuditKey::from_bytes(m.0))
        });
        text.fill(0);
        key.ok_or(KeyError::Malformed { path: path() })
    }

    /// Reads the key, or makes one when the file does not exist (its
    /// directory too, owner-only). Two processes doing this at once end
    /// with the same key: each writes a whole file under a name of its own
    /// and links it into place, which only the first link does; the other
    /// then reads the winner's.
    pub fn load_or_create(&self) -> Result<AuditKey, KeyError> {
        match self.load() {
            Err(KeyError::Missing { .. }) => {}
            loaded => return loaded,
        }
        let failed = |source| KeyError::Create {
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(failed)?;
        }
        let key = AuditKey::generate();
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).expect("the operating system's random source failed");
        let temp = dir.join(format!(
            ".audit-key-{}-{:016x}.tmp",
            std::process::id(),
            u64::from_ne_bytes(suffix)
        ));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            let mut text = Mac(key.bytes).to_hex().into_bytes();
            text.push(b'\n');
            let result = file.write_all(&text).and_then(|()| file.sync_all());
            text.fill(0);
            result?;
            std::fs::hard_link(&temp, &self.path)
        })();
        let _ = std::fs::remove_file(&temp);
        match written {
            Ok(()) => {
                // the new name survives a crash too
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
                log::info!(path = self.path.display().to_string().as_str();
                    "audit key created (owner-only); keep a copy: without it the audit trail cannot be verified, and the daemon will not start on it");
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.load(),
            Err(e) => Err(failed(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_key_file_is_owner_only_from_the_start_and_reads_back_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path().join("data/audit.key"));
        let made = file.load_or_create().unwrap();
        assert_eq!(mode(file.path()), 0o600);
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        let again = file.load_or_create().unwrap();
        assert!(made.check_value().matches(&again.check_value()));
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert_eq!(text.trim().len(), 64, "64 hex digits");
        // nothing but the key file is left in the directory
        let names: Vec<_> = std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["audit.key"]);
    }

    #[test]
    fn a_key_file_others_may_read_is_refused_and_not_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = KeyFile::new(&path).load_or_create().unwrap_err();
        assert!(matches!(err, KeyError::TooOpen { mode: 0o640, .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert_eq!(mode(&path), 0o640, "left as it was");
    }

    #[test]
    fn a_missing_key_is_missing_when_only_loading_and_a_malformed_one_says_so_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let err = KeyFile::new(&path).load().unwrap_err();
        assert!(matches!(err, KeyError::Missing { .. }), "{err}");
        assert!(!path.exists(), "loading never creates");

        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap()
            .write_all(b"secret-but-not-hex\n")
            .unwrap();
        let err = KeyFile::new(&path).load().unwrap_err();
        assert!(matches!(err, KeyError::Malformed { .. }), "{err}");
        assert!(!err.to_string().contains("secret-but-not-hex"), "{err}");
    }

    #[test]
    fn the_key_never_shows_in_debug() {
        let key = AuditKey::from_bytes([0xab; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
    }

    #[test]
    fn two_processes_creating_the_key_at_once_end_with_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path().join("audit.key"));
        let checks: Vec<Mac> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| file.load_or_create().unwrap().check_value()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(checks.iter().all(|c| c.matches(&checks[0])));
    }
}
