//! The answers to ACME challenges while an order is open: HTTP-01 key
//! authorizations by token (served at `/.well-known/acme-challenge/TOKEN`),
//! and TLS-ALPN-01 validation certificates by name (presented to a
//! handshake that offers `acme-tls/1`, RFC 8737). Emptied when the order
//! ends, so nothing answers for a challenge that is no longer open.

use super::error::AcmeError;
use crate::cluster::relay::AcmeNews;
use crate::pki::live::AlpnChallenges;
use crate::pki::tls::{self, TlsError};
use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The open challenges' answers.
#[derive(Debug, Default)]
pub(crate) struct Challenges {
    http: RwLock<HashMap<String, String>>,
    tls: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    /// The key authorization for an HTTP-01 `token`, while it is open.
    pub(crate) fn http01(&self, token: &str) -> Option<String> {
        self.http.read().unwrap_or_else(|p| p.into_inner()).get(token).cloned()
    }

    /// Answers the HTTP-01 challenge `token` with `key_authorization`.
    pub(super) fn answer_http01(&self, token: &str, key_authorization: &str) {
        self.http.write().unwrap_or_else(|p| p.into_inner()).insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Answers the TLS-ALPN-01 challenge for `name`: a self-signed
    /// certificate for `name` carrying `digest` (the SHA-256 of the key
    /// authorization) in its critical acmeIdentifier extension.
    pub(super) fn answer_tls_alpn01(&self, name: &str, digest: &[u8]) -> Result<(), AcmeError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![name.to_owned()])?;
        params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
        let cert = params.self_signed(&key)?;
        // Not through `live::certified`: webpki, rightly, refuses to parse a
        // certificate with an unknown critical extension, and this one is
        // only ever read by the ACME server.
        let signer = tls::provider().key_provider.load_private_key(tls::key(&key.serialize_pem())?);
        let certified = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signer.map_err(TlsError::from)?));
        self.tls.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_ascii_lowercase(), certified);
        Ok(())
    }

    /// Answers what the leading node's order asks (here or on another
    /// node); other news needs no answer.
    pub(super) fn answer(&self, news: &AcmeNews) -> Result<(), AcmeError> {
        match news {
            AcmeNews::Http01 { token, key_authorization } => self.answer_http01(token, key_authorization),
            AcmeNews::TlsAlpn01 { name, digest } => {
                let digest = hex::decode(digest).map_err(|e| AcmeError::Order(format!("challenge digest: {e}")))?;
                self.answer_tls_alpn01(name, &digest)?;
            }
            AcmeNews::Closed | AcmeNews::Issued => self.clear(),
        }
        Ok(())
    }

    /// Forgets every answer (the order ended).
    pub(super) fn clear(&self) {
        self.http.write().unwrap_or_else(|p| p.into_inner()).clear();
        self.tls.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl AlpnChallenges for Challenges {
    fn certificate(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.tls.read().unwrap_or_else(|p| p.into_inner()).get(&name.to_ascii_lowercase()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_last_only_while_the_order_is_open() {
        let challenges = Challenges::default();
        challenges.answer_http01("tok", "tok.thumb");
        challenges.answer_tls_alpn01("Pair.Example.com", &[7; 32]).unwrap();
        assert_eq!(challenges.http01("tok").as_deref(), Some("tok.thumb"));
        assert!(challenges.certificate("pair.example.com").is_some());
        assert!(challenges.certificate("other.example.com").is_none());
        challenges.clear();
        assert!(challenges.http01("tok").is_none());
        assert!(challenges.certificate("pair.example.com").is_none());
    }

    #[test]
    fn the_validation_certificate_carries_the_digest_in_a_critical_extension() {
        let challenges = Challenges::default();
        challenges.answer_tls_alpn01("pair.example.com", &[9; 32]).unwrap();
        let certified = challenges.certificate("pair.example.com").unwrap();
        let (_, leaf) = x509_parser::parse_x509_certificate(certified.cert[0].as_ref()).unwrap();
        let oid = x509_parser::oid_registry::Oid::from(&[1, 3, 6, 1, 5, 5, 7, 1, 31]).unwrap();
        let ext = leaf.extensions().iter().find(|e| e.oid == oid).unwrap();
        assert!(ext.critical);
        // An OCTET STRING of the 32-byte digest.
        assert_eq!(ext.value, [&[0x04, 32][..], &[9; 32][..]].concat());
    }
}
