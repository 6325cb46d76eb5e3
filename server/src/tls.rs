//! TLS to the measured server: `https://` targets.
//!
//! A server's certificate is trusted when it chains to one of the Mozilla roots built into
//! tokenscope or to a CA given with `--ca-cert`, which this process then trusts for every
//! target it measures. The simulator serves TLS too (`tokenscope sim --tls-cert --tls-key`).
//! Arrivals are still stamped at the socket: the stamp is the read of the encrypted bytes.

use std::path::Path;
use std::sync::{PoisonError, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio_rustls::rustls;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// CAs trusted beyond the built-in roots, in PEM.
static EXTRA_ROOTS: RwLock<Vec<Certificate>> = RwLock::new(Vec::new());

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {cause}")]
    Read { what: &'static str, path: String, cause: String },
    #[error(
        "{what} {path} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\"); give the CA's certificate in PEM"
    )]
    NoCertificate { what: &'static str, path: String },
    #[error("{what} {path} is not valid PEM: {cause}")]
    BadPem { what: &'static str, path: String, cause: String },
    #[error("the key {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: String },
}

/// Trusts the CA certificates in the PEM file at `path` for every `https://` target from now
/// on; answers how many it holds.
pub fn trust_ca_file(path: &Path) -> Result<usize, TlsError> {
    let pem = read(path, "the CA certificate")?;
    trust_ca_pem(&pem, &path.display().to_string())
}

/// Trusts the CA certificates in `pem` (named `name` in errors); answers how many it holds.
pub fn trust_ca_pem(pem: &[u8], name: &str) -> Result<usize, TlsError> {
    let count = certificates(pem, "the CA certificate", name)?;
    EXTRA_ROOTS.write().unwrap_or_else(PoisonError::into_inner).push(Certificate::from_pem(pem));
    Ok(count)
}

/// The TLS a connection to an `https://` target uses; `timeout` bounds the handshake.
pub fn client_config(timeout: std::time::Duration) -> ClientTlsConfig {
    let extra = EXTRA_ROOTS.read().unwrap_or_else(PoisonError::into_inner).clone();
    ClientTlsConfig::new().with_webpki_roots().ca_certificates(extra).timeout(timeout)
}

/// The TLS a connection to an HTTP protocol's `https` target uses, offering `alpn` (the
/// application protocols, most wanted first): the same roots as [`client_config`].
pub fn rustls_client(alpn: &[&[u8]]) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for ca in EXTRA_ROOTS.read().unwrap_or_else(PoisonError::into_inner).iter() {
        // Each was read as PEM certificates when it was trusted.
        for der in CertificateDer::pem_slice_iter(ca.get_ref()).flatten() {
            let _ = roots.add(der);
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    std::sync::Arc::new(config)
}

/// A server identity from a PEM certificate chain and its PEM private key, both checked.
pub fn identity_files(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
    let (cert_pem, key_pem) = (read(cert, "the certificate")?, read(key, "the key")?);
    certificates(&cert_pem, "the certificate", &cert.display().to_string())?;
    if PrivateKeyDer::from_pem_slice(&key_pem).is_err() {
        return Err(TlsError::NoKey { path: key.display().to_string() });
    }
    Ok(Identity::from_pem(cert_pem, key_pem))
}

/// The TLS a server with `identity` serves.
pub fn server_config(identity: Identity) -> ServerTlsConfig {
    ServerTlsConfig::new().identity(identity)
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read { what, path: path.display().to_string(), cause: e.to_string() })
}

/// How many certificates `pem` holds; an error when none, or when one is malformed.
fn certificates(pem: &[u8], what: &'static str, name: &str) -> Result<usize, TlsError> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| TlsError::BadPem { what, path: name.into(), cause: e.to_string() })?;
        count += 1;
    }
    if count == 0 {
        return Err(TlsError::NoCertificate { what, path: name.into() });
    }
    Ok(count)
}

/// A hint for a connection that failed, when its causes (`chain`) tell of TLS.
pub fn hint(target: &str, chain: &str) -> Option<&'static str> {
    let chain = chain.to_ascii_lowercase();
    let https = target.starts_with("https://");
    if https && (chain.contains("unknownissuer") || chain.contains("unknown issuer")) {
        Some("the server's certificate is not signed by a CA tokenscope trusts; pass its CA with --ca-cert PATH")
    } else if https && chain.contains("notvalidforname") {
        Some("the server's certificate does not name this host; use the name it was issued for")
    } else if https && (chain.contains("corrupt message") || chain.contains("invalidcontenttype")) {
        Some("the server does not speak TLS on this port; give the address as http://")
    } else if https && chain.contains("certificate") {
        Some("the server's certificate was refused; check it, or pass its CA with --ca-cert PATH")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_PEM: &[u8] = b"this is not a certificate";

    #[test]
    fn a_file_without_a_certificate_is_refused_with_what_to_give() {
        let err = trust_ca_pem(NOT_PEM, "ca.pem").unwrap_err();
        assert_eq!(err, TlsError::NoCertificate { what: "the CA certificate", path: "ca.pem".into() });
        assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
        let broken = b"-----BEGIN CERTIFICATE-----\n%%%%\n-----END CERTIFICATE-----\n";
        assert!(matches!(trust_ca_pem(broken, "ca.pem"), Err(TlsError::BadPem { .. })));
    }

    #[test]
    fn a_missing_file_names_itself() {
        let err = trust_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(err.to_string().starts_with("cannot read the CA certificate /nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn tls_failures_get_a_hint_and_others_do_not() {
        let unknown = "transport error: invalid peer certificate: UnknownIssuer";
        assert!(hint("https://h:1", unknown).unwrap().contains("--ca-cert"));
        assert!(
            hint("https://h:1", "received corrupt message of type InvalidContentType").unwrap().contains("http://")
        );
        assert_eq!(hint("https://h:1", "Connection refused (os error 111)"), None);
        assert_eq!(hint("http://h:1", unknown), None);
    }
}
