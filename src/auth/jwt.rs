//! The `jsonwebtoken` crypto provider: aws-lc-rs, except that RS256 signing
//! keeps each parsed RSA key instead of re-parsing it for every token (the
//! stock provider parses the key on each sign, which costs about 40 % of
//! accept-invite throughput). Verification is the stock aws-lc-rs one.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use jsonwebtoken::crypto::{aws_lc, CryptoProvider, JwtSigner};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::{Algorithm, EncodingKey};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

type KeyCache = Mutex<HashMap<[u8; 32], Arc<RsaKeyPair>>>;

fn cache() -> &'static KeyCache {
    static KEYS: OnceLock<KeyCache> = OnceLock::new();
    KEYS.get_or_init(Default::default)
}

fn parsed(der: &[u8]) -> Result<Arc<RsaKeyPair>> {
    let id: [u8; 32] = Sha256::digest(der).into();
    let mut keys = cache().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(key) = keys.get(&id) {
        return Ok(key.clone());
    }
    let key = Arc::new(RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?);
    keys.insert(id, key.clone());
    Ok(key)
}

struct CachedRs256(Arc<RsaKeyPair>);

impl signature::Signer<Vec<u8>> for CachedRs256 {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let mut sig = vec![0; self.0.public_modulus_len()];
        self.0.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig).map_err(signature::Error::from_source)?;
        Ok(sig)
    }
}

impl JwtSigner for CachedRs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

fn signer_factory(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if *alg != Algorithm::RS256 {
        return (aws_lc::DEFAULT_PROVIDER.signer_factory)(alg, key);
    }
    Ok(Box::new(CachedRs256(parsed(key.as_bytes())?)))
}

/// Installs the provider for this process (idempotent; an earlier choice
/// stands).
pub fn install() {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    let provider = PROVIDER.get_or_init(|| CryptoProvider { signer_factory, ..aws_lc::DEFAULT_PROVIDER.clone() });
    let _ = provider.install_default();
}
