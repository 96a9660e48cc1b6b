//! Web Push payload encryption (RFC 8291 with RFC 8188 `aes128gcm`): one
//! record, a fresh P-256 key pair and salt per message, keys derived with
//! HKDF-SHA-256 from the ECDH secret and the subscription's auth secret.
//! Built on ring's constant-time, assembly-optimised P-256, HKDF and
//! AES-GCM: each message costs one ECDH, so the curve's speed is the
//! sender's speed.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ring::agreement::{agree_ephemeral, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
use ring::hkdf::{KeyType, Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// The record size written in the header: one record holds the message.
const RECORD_SIZE: u32 = 4096;

/// Longest plaintext one record holds (less the delimiter and the tag).
pub(crate) const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - 17;

/// Why a message could not be encrypted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum EncryptError {
    /// The subscription's key is not a P-256 point, or its secret is not 16 bytes.
    #[error("the subscription's keys are not usable")]
    Keys,
    /// Longer than one record.
    #[error("the message is longer than {MAX_PLAINTEXT} bytes")]
    TooLong,
    /// The system's randomness failed.
    #[error("no randomness")]
    Random,
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand of `prk` over `info` into `out`.
fn expand(prk: &ring::hkdf::Prk, info: &[&[u8]], out: &mut [u8]) -> Result<(), EncryptError> {
    prk.expand(info, Len(out.len())).and_then(|okm| okm.fill(out)).map_err(|_| EncryptError::Keys)
}

/// Encrypts `plaintext` for the browser whose key is `ua_public` (65-byte
/// uncompressed point) and secret `auth` (16 bytes): the request body.
pub(crate) fn encrypt(plaintext: &[u8], ua_public: &[u8], auth: &[u8]) -> Result<Vec<u8>, EncryptError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EncryptError::TooLong);
    }
    if auth.len() != 16 || ua_public.len() != 65 {
        return Err(EncryptError::Keys);
    }
    let rng = SystemRandom::new();
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| EncryptError::Random)?;
    let ours = EphemeralPrivateKey::generate(&ECDH_P256, &rng).map_err(|_| EncryptError::Random)?;
    let as_public = ours.compute_public_key().map_err(|_| EncryptError::Random)?;
    let peer = UnparsedPublicKey::new(&ECDH_P256, ua_public);
    let mut ikm = [0u8; 32];
    agree_ephemeral(ours, &peer, |shared| {
        let prk_key = Salt::new(HKDF_SHA256, auth).extract(shared);
        expand(&prk_key, &[b"WebPush: info\0", ua_public, as_public.as_ref()], &mut ikm)
    })
    .map_err(|_| EncryptError::Keys)??;
    let prk = Salt::new(HKDF_SHA256, &salt).extract(&ikm);
    let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
    expand(&prk, &[b"Content-Encoding: aes128gcm\0"], &mut cek)?;
    expand(&prk, &[b"Content-Encoding: nonce\0"], &mut nonce)?;
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).map_err(|_| EncryptError::Keys)?);
    let mut record = Vec::with_capacity(plaintext.len() + 17);
    record.extend_from_slice(plaintext);
    record.push(2); // the last (and only) record's delimiter
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut record)
        .map_err(|_| EncryptError::Keys)?;
    let mut body = Vec::with_capacity(86 + record.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_public.as_ref());
    body.extend_from_slice(&record);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::{Aead, KeyInit};
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    /// RFC 8291 §3.4 decryption, with RustCrypto (independent of ring).
    fn decrypt(secret: &p256::SecretKey, auth: &[u8], body: &[u8]) -> Vec<u8> {
        let (salt, keyid, ciphertext) = (&body[..16], &body[21..86], &body[86..]);
        assert_eq!((u32::from_be_bytes(body[16..20].try_into().unwrap()), body[20]), (4096, 65));
        let sender = p256::PublicKey::from_sec1_bytes(keyid).unwrap();
        let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), sender.as_affine());
        let receiver = secret.public_key().to_encoded_point(false);
        let info = [b"WebPush: info\0".as_slice(), receiver.as_bytes(), keyid].concat();
        let hk = |salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]| {
            hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm).expand(info, out).unwrap()
        };
        let mut ikm = [0u8; 32];
        hk(auth, shared.raw_secret_bytes(), &info, &mut ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        hk(salt, &ikm, b"Content-Encoding: aes128gcm\0", &mut cek);
        hk(salt, &ikm, b"Content-Encoding: nonce\0", &mut nonce);
        let mut plain = aes_gcm::Aes128Gcm::new_from_slice(&cek).unwrap().decrypt(&nonce.into(), ciphertext).unwrap();
        assert_eq!(plain.pop(), Some(2), "the last record's delimiter");
        plain
    }

    #[test]
    fn a_browser_decrypts_what_it_gets_and_each_message_has_its_own_keys() {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let public = secret.public_key().to_encoded_point(false);
        let auth = [9u8; 16];
        let message = br#"{"type":"notification","title":"Build #42 failed"}"#;
        let one = encrypt(message, public.as_bytes(), &auth).unwrap();
        let two = encrypt(message, public.as_bytes(), &auth).unwrap();
        assert_eq!(decrypt(&secret, &auth, &one), message);
        assert_eq!(decrypt(&secret, &auth, &two), message);
        assert_ne!(one[..86], two[..86], "a fresh salt and key pair each time");
        assert_eq!(one.len(), 86 + message.len() + 17);
        assert_eq!(encrypt(&[0; MAX_PLAINTEXT], public.as_bytes(), &auth).unwrap().len(), 86 + 4096);
    }

    #[test]
    fn unusable_keys_and_long_messages_are_refused() {
        let public = p256::SecretKey::random(&mut rand::rngs::OsRng).public_key().to_encoded_point(false);
        assert_eq!(encrypt(b"x", public.as_bytes(), &[1; 15]), Err(EncryptError::Keys));
        assert_eq!(encrypt(b"x", &[4; 65], &[1; 16]), Err(EncryptError::Keys), "not a point on the curve");
        assert_eq!(encrypt(&[0; MAX_PLAINTEXT + 1], public.as_bytes(), &[1; 16]), Err(EncryptError::TooLong));
    }
}
