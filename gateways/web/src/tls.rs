//! TLS for the web listener: a certificate chain and key from PEM files, or a
//! self-signed certificate made at start for trying the server out. rustls with the
//! ring provider (already in the tree for NATS), TLS 1.2 and 1.3, HTTP/1.1 by ALPN.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate, or a damaged one.
    #[error("{path}: no usable PEM certificate ({reason})")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The key file holds no PEM private key (PKCS#8, PKCS#1 or SEC1), or a damaged one.
    #[error("{path}: no usable PEM private key ({reason})")]
    Key {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, an
    /// unsupported key type).
    #[error("the certificate and key cannot be used together: {0}")]
    Config(String),
    /// Making the self-signed certificate failed.
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
}

/// A server TLS configuration and the SHA-256 fingerprint of its certificate.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<ServerConfig>,
    fingerprint: String,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// The certificate chain (leaf first) in `cert` and its private key in `key`, both
    /// PEM.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Certificate {
                path: cert.to_owned(),
                reason: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::Certificate {
                path: cert.to_owned(),
                reason: "no CERTIFICATE block".into(),
            });
        }
        let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key {
            path: key.to_owned(),
            reason: e.to_string(),
        })?;
        TlsConfig::new(chain, key_der)
    }

    /// A fresh self-signed certificate (ECDSA P-256) for `names` (DNS names or IP
    /// addresses), kept in memory only: browsers will warn, and its fingerprint is how a
    /// person checks it.
    pub fn self_signed(names: Vec<String>) -> Result<TlsConfig, TlsError> {
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
        TlsConfig::new(vec![made.cert.der().clone()], key)
    }

    fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<TlsConfig, TlsError> {
        let fingerprint = chain.first().map(|c| fingerprint(c)).unwrap_or_default();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            config: Arc::new(config),
            fingerprint,
        })
    }

    /// SHA-256 of the leaf certificate, as `AB:CD:…` (what browsers and
    /// `openssl x509 -fingerprint -sha256` show).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }
}

fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = String::with_capacity(95);
    for (i, b) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn self_signed_has_a_fingerprint() {
        let t = TlsConfig::self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert_eq!(t.fingerprint().len(), 95);
        let other = TlsConfig::self_signed(vec!["localhost".into()]).unwrap();
        assert_ne!(t.fingerprint(), other.fingerprint());
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let e = TlsConfig::from_pem_files(&cert, &key).unwrap_err();
        assert!(e.to_string().contains("cert.pem"), "{e}");
        std::fs::write(&cert, "not pem").unwrap();
        std::fs::write(&key, "not pem").unwrap();
        let e = TlsConfig::from_pem_files(&cert, &key).unwrap_err();
        assert!(matches!(e, TlsError::Certificate { .. }), "{e}");
    }
}
