//! rustls configurations for the appliance's listeners, built from PEM with
//! the ring provider: TLS 1.2 and 1.3 only, rustls' safe cipher suites, no
//! session resumption state shared across restarts.

use crate::pki::live::LiveCert;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM could not be read.
    #[error("reading PEM: {0}")]
    Pem(#[from] std::io::Error),
    /// No private key in the key file.
    #[error("no private key found in the key file")]
    NoKey,
    /// No certificate in the certificate file.
    #[error("no certificate found in the certificate file")]
    NoCert,
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Parses a PEM certificate chain.
pub(crate) fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(TlsError::NoCert);
    }
    Ok(certs)
}

/// Parses a PEM private key.
pub(crate) fn key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())?.ok_or(TlsError::NoKey)
}

/// The crypto provider every listener uses.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Roots holding the CA certificates in `ca_pem`.
fn roots(ca_pem: &str) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca_pem)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// A client configuration trusting the public roots and, if given, the CA
/// certificates in `extra_ca_pem` (for a server with a private CA).
pub fn client(extra_ca_pem: Option<&str>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_ca_pem.map(certs).transpose()?.unwrap_or_default() {
        roots.add(cert)?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The MQTT gateway's server configuration: a client certificate from the
/// appliance CA is required; the server certificate is `live`'s.
pub(crate) fn mqtt_server(live: Arc<LiveCert>, appliance_ca_pem: &str) -> Result<rustls::ServerConfig, TlsError> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots(appliance_ca_pem)?), provider())
            .build()
            .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
    Ok(rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(live))
}

/// A server configuration for the HTTPS API (HTTP/2 and HTTP/1.1) that
/// presents `live`'s certificate; with `acme`, also the validation
/// certificate to a TLS-ALPN-01 handshake.
pub(crate) fn https_server(live: Arc<LiveCert>, acme: bool) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(live);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if acme {
        config.alpn_protocols.push(crate::pki::live::ACME_TLS_ALPN.to_vec());
    }
    Ok(config)
}
