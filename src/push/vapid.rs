//! The appliance's VAPID identity (RFC 8292): a P-256 key pair made on
//! first start (`vapid-key.pem`, mode 0600, carried by backups), its public
//! key as browsers take it (`applicationServerKey`: the uncompressed point,
//! base64url), and the `Authorization: vapid t=…, k=…` header for a push
//! service: an ES256 JWT signed once per origin and reused until shortly
//! before it expires.

use crate::clock::{Clock, Timestamp};
use crate::store::datadir::{self, DataDir};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::collections::HashMap;
use std::sync::Mutex;

/// The key file in the data directory.
pub(crate) const KEY_FILE: &str = "vapid-key.pem";

/// How long a signed header is valid (push services accept up to 24 h).
const LIFETIME: chrono::TimeDelta = chrono::TimeDelta::hours(12);

/// A header is signed again this long before it expires.
const RENEW_BEFORE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// The VAPID key and the headers signed with it.
pub(crate) struct Vapid {
    encoding: EncodingKey,
    public: String,
    contact: String,
    clock: Clock,
    /// Per push-service origin: the header and when its JWT expires.
    signed: Mutex<HashMap<String, (String, Timestamp)>>,
}

impl Vapid {
    /// Loads the key, making it on first start; `contact` is the JWT's
    /// `sub` (a `mailto:` or `https:` URL where the push service can reach
    /// the operator).
    pub(crate) fn load_or_create(dir: &DataDir, contact: &str, clock: Clock) -> anyhow::Result<Vapid> {
        let path = dir.file(KEY_FILE);
        let pem = match datadir::read_optional(&path)? {
            Some(pem) => String::from_utf8(pem)?,
            None => {
                let pem = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?.serialize_pem();
                datadir::write_secret(&path, pem.as_bytes())?;
                pem
            }
        };
        let pair = rcgen::KeyPair::from_pem(&pem)?;
        anyhow::ensure!(pair.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256, "{KEY_FILE} is not a P-256 key");
        Ok(Vapid {
            encoding: EncodingKey::from_ec_pem(pem.as_bytes())?,
            public: URL_SAFE_NO_PAD.encode(pair.public_key_raw()),
            contact: contact.to_owned(),
            clock,
            signed: Mutex::default(),
        })
    }

    /// The public key, base64url (the app's `applicationServerKey`).
    pub(crate) fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push to `origin`
    /// (`https://host[:port]`).
    pub(crate) fn authorization(&self, origin: &str) -> Result<String, jsonwebtoken::errors::Error> {
        let now = self.clock.now();
        let mut signed = self.signed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((header, expires)) = signed.get(origin) {
            if now < *expires - RENEW_BEFORE {
                return Ok(header.clone());
            }
        }
        let expires = now + LIFETIME;
        let claims = serde_json::json!({"aud": origin, "exp": expires.timestamp(), "sub": self.contact});
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &self.encoding)?;
        let header = format!("vapid t={jwt}, k={}", self.public);
        signed.insert(origin.to_owned(), (header.clone(), expires));
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_across_starts_and_one_signature_per_origin_until_it_nears_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let clock = Clock::system();
        let vapid = Vapid::load_or_create(&data, "mailto:ops@example.com", clock.clone()).unwrap();
        let again = Vapid::load_or_create(&data, "mailto:ops@example.com", clock.clone()).unwrap();
        assert_eq!(vapid.public_key(), again.public_key());
        assert_eq!(URL_SAFE_NO_PAD.decode(vapid.public_key()).unwrap().len(), 65);
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(data.file(KEY_FILE)).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);

        let first = vapid.authorization("https://push.example").unwrap();
        assert_eq!(vapid.authorization("https://push.example").unwrap(), first, "reused");
        assert_ne!(vapid.authorization("https://other.example").unwrap(), first, "per origin");
        clock.shift(chrono::TimeDelta::hours(11) + chrono::TimeDelta::minutes(1));
        assert_ne!(vapid.authorization("https://push.example").unwrap(), first, "signed again near expiry");

        let jwt = first.strip_prefix("vapid t=").unwrap().split(',').next().unwrap();
        let raw = URL_SAFE_NO_PAD.decode(vapid.public_key()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_ec_components(
            &URL_SAFE_NO_PAD.encode(&raw[1..33]),
            &URL_SAFE_NO_PAD.encode(&raw[33..]),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.set_audience(&["https://push.example"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation).unwrap().claims;
        assert_eq!(claims["sub"], "mailto:ops@example.com");
    }
}
