//! HTTPS and WSS: the certificate the daemon serves, read from
//! `PINKPAGE_TLS_CERT` / `PINKPAGE_TLS_KEY` (PEM) at start and again on
//! each reload (SIGHUP), so a renewed certificate is served without a
//! restart.
//!
//! Who owns what: [`Certificates`] holds the certified key now; rustls
//! asks it for each new handshake ([`ResolvesServerCert`]), so a renewal
//! applies to connections made after it, and connections already open
//! (a WebSocket among them) keep the session they have. The one writer is
//! the reload; the lock is held to swap an `Arc`, never while files are
//! read or a key is parsed. A renewal that cannot be read or whose key
//! does not match its certificate changes nothing (the old certificate is
//! served on) and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use sha2::{Digest, Sha256};

/// The certificate and key files, and what was read from them last.
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Loaded>,
}

/// Certificates read again and checked, not yet served
/// ([`Certificates::install`]).
pub struct Renewal(Loaded);

#[derive(Clone)]
struct Loaded {
    key: Arc<CertifiedKey>,
    /// SHA-256 of the leaf certificate, for logs and the reload's answer.
    fingerprint: String,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the key never shows; its files' names and the certificate's
        // fingerprint do
        f.debug_struct("Certificates")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl Certificates {
    /// Reads `cert` (the chain, leaf first) and `key`; the error names
    /// the file and the problem, never key material.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Certificates>, String> {
        let loaded = read(cert, key)?;
        Ok(Arc::new(Certificates {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(loaded),
        }))
    }

    /// Reads both files again, checked but not yet served: a reload
    /// validates everything before it changes anything. `Err` says why.
    pub fn reread(&self) -> Result<Renewal, String> {
        read(&self.cert, &self.key).map(Renewal)
    }

    /// Serves `renewal` to new connections from now on; its fingerprint
    /// when the certificate changed, `None` when it is the same.
    pub fn install(&self, renewal: Renewal) -> Option<String> {
        let fingerprint = renewal.0.fingerprint.clone();
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.fingerprint == fingerprint {
            return None;
        }
        *current = renewal.0;
        Some(fingerprint)
    }

    /// The SHA-256 fingerprint of the certificate served now.
    pub fn fingerprint(&self) -> String {
        self.now().fingerprint
    }

    fn now(&self) -> Loaded {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The server configuration that serves these certificates: TLS 1.2
    /// and 1.3 with rustls' safe defaults, ring as the provider.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, String> {
        let config = ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        Ok(config)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.now().key)
    }
}

fn read(cert: &Path, key: &Path) -> Result<Loaded, String> {
    let named = |path: &Path, e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| named(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| named(cert, &e))?;
    let Some(leaf) = chain.first() else {
        return Err(named(cert, &"no certificate in the file"));
    };
    let fingerprint = format!("SHA256:{}", hex(&Sha256::digest(leaf.as_ref())));
    // the key's own error would not quote it, but keep to words of ours
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|_| named(key, &"no PEM private key could be read (PKCS#8, PKCS#1 or SEC1)"))?;
    let provider = provider();
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|_| named(key, &"the private key is of a type TLS cannot use"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| {
        format!(
            "{} does not match the certificate in {}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        fingerprint,
    })
}

/// ring, as russh uses: rustls 0.23.48 deprecates it for want of
/// post-quantum key exchange, which only its aws-lc provider has; that one
/// would bring a second C toolchain build (cmake) to every build and CI
/// run. Revisit when ring gains ML-KEM or the project takes aws-lc.
#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
