//! The `jsonwebtoken` crypto provider, on ring (the crypto the TLS stack
//! already uses, so the build carries one C crypto library, not two). The
//! two algorithms the appliance uses run on ring: RS256 (device tokens;
//! each parsed RSA key is kept, since parsing one costs more than a
//! signature) and ES256 (Web Push's VAPID). Any other algorithm, which the
//! appliance never asks for, falls back to the crate's RustCrypto provider.

use jsonwebtoken::crypto::{rust_crypto, CryptoProvider, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{Error as SignatureError, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, RsaKeyPair, RsaPublicKeyComponents, UnparsedPublicKey};
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

struct Rs256Signer(Arc<RsaKeyPair>);

impl Signer<Vec<u8>> for Rs256Signer {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        let mut signature = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(&sig::RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut signature)
            .map_err(SignatureError::from_source)?;
        Ok(signature)
    }
}

struct Rs256Verifier(DecodingKey);

impl Verifier<Vec<u8>> for Rs256Verifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        let algorithm = &sig::RSA_PKCS1_2048_8192_SHA256;
        match self.0.kind() {
            DecodingKeyKind::SecretOrDer(der) => UnparsedPublicKey::new(algorithm, der).verify(msg, signature),
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                RsaPublicKeyComponents { n, e }.verify(algorithm, msg, signature)
            }
        }
        .map_err(SignatureError::from_source)
    }
}

struct Es256Signer(EcdsaKeyPair);

impl Signer<Vec<u8>> for Es256Signer {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        let signature = self.0.sign(&SystemRandom::new(), msg).map_err(SignatureError::from_source)?;
        Ok(signature.as_ref().to_vec())
    }
}

struct Es256Verifier(DecodingKey);

impl Verifier<Vec<u8>> for Es256Verifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        let point = self.0.try_get_as_bytes().map_err(SignatureError::from_source)?;
        UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
            .verify(msg, signature)
            .map_err(SignatureError::from_source)
    }
}

/// Each signer and verifier says its algorithm.
macro_rules! algorithm {
    ($($kind:ident for $type:ty => $alg:ident),* $(,)?) => {
        $(impl $kind for $type {
            fn algorithm(&self) -> Algorithm {
                Algorithm::$alg
            }
        })*
    };
}

algorithm! {
    JwtSigner for Rs256Signer => RS256,
    JwtVerifier for Rs256Verifier => RS256,
    JwtSigner for Es256Signer => ES256,
    JwtVerifier for Es256Verifier => ES256,
}

fn signer_factory(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    match alg {
        Algorithm::RS256 if key.family() == AlgorithmFamily::Rsa => Ok(Box::new(Rs256Signer(parsed(key.as_bytes())?))),
        Algorithm::ES256 if key.family() == AlgorithmFamily::Ec => {
            let pair =
                EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, key.as_bytes(), &SystemRandom::new())
                    .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
            Ok(Box::new(Es256Signer(pair)))
        }
        Algorithm::RS256 | Algorithm::ES256 => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => (rust_crypto::DEFAULT_PROVIDER.signer_factory)(alg, key),
    }
}

fn verifier_factory(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    match alg {
        Algorithm::RS256 if key.family() == AlgorithmFamily::Rsa => Ok(Box::new(Rs256Verifier(key.clone()))),
        Algorithm::ES256 if key.family() == AlgorithmFamily::Ec => Ok(Box::new(Es256Verifier(key.clone()))),
        Algorithm::RS256 | Algorithm::ES256 => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(alg, key),
    }
}

/// Installs the provider for this process (idempotent; an earlier choice
/// stands).
pub(crate) fn install() {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    let provider = PROVIDER.get_or_init(|| CryptoProvider {
        signer_factory,
        verifier_factory,
        key_utils: rust_crypto::DEFAULT_PROVIDER.key_utils.clone(),
    });
    let _ = provider.install_default();
}
