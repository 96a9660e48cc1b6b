//! Device tokens: the appliance's RSA-2048 signing key (made with `rsa` on
//! first start, kept parsed), RS256 JWTs with `kid`, `jti`, `sub`,
//! `device_id` and `fp`, their verification, and the JWKS document.
//! Revocation and device state are checked by `devices`, not here.

use crate::clock::{self, Clock, Timestamp};
use crate::error::{Coded, Kind};
use crate::store::datadir::{self, DataDir};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Why a token was refused or could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No bearer token in the request.
    #[error("a device token is required (Authorization: Bearer …)")]
    Missing,
    /// Not a JWT this appliance could have issued.
    #[error("the device token is malformed or uses an unsupported algorithm")]
    Malformed,
    /// Signed with a key this appliance does not have.
    #[error("the device token was signed with an unknown key")]
    UnknownKey,
    /// The signature does not match.
    #[error("the device token's signature is invalid")]
    BadSignature,
    /// Past its `exp`.
    #[error("the device token has expired; pair the phone again or refresh the token in time")]
    Expired,
    /// Its `jti` was revoked.
    #[error("the device token has been revoked")]
    Revoked,
    /// Loading or making the signing key failed.
    #[error("signing key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("signing: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
}

impl Coded for TokenError {
    fn coded(&self) -> (&'static str, Kind) {
        match self {
            TokenError::Missing => ("token_missing", Kind::Unauthenticated),
            TokenError::Malformed | TokenError::BadSignature => ("token_invalid", Kind::Unauthenticated),
            TokenError::UnknownKey => ("token_unknown_key", Kind::Unauthenticated),
            TokenError::Expired => ("token_expired", Kind::Unauthenticated),
            TokenError::Revoked => ("token_revoked", Kind::Unauthenticated),
            TokenError::Key(_) | TokenError::Signing(_) => ("internal", Kind::Internal),
        }
    }
}

/// The claims of a device token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Issuer: always `topdog`.
    pub(crate) iss: String,
    /// The user id.
    pub(crate) sub: String,
    /// The device id.
    pub(crate) device_id: String,
    /// SHA-256 fingerprint of the device's identity.
    pub(crate) fp: String,
    /// Issued at (Unix seconds).
    pub(crate) iat: i64,
    /// Expires at (Unix seconds).
    pub(crate) exp: i64,
    /// Token id, for revocation.
    pub(crate) jti: String,
}

/// A freshly signed token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Its claims.
    pub(crate) claims: Claims,
    /// When it expires.
    pub(crate) expires_at: Timestamp,
}

/// What a token is issued for.
pub struct Subject<'a> {
    /// User id.
    pub user_id: &'a str,
    /// Device id.
    pub device_id: &'a str,
    /// Device fingerprint.
    pub fingerprint: &'a str,
}

/// The signing key and everything derived from it.
pub struct Tokens {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: serde_json::Value,
    ttl: Duration,
    clock: Clock,
}

const ISSUER: &str = "topdog";
const KEY_FILE: &str = "jwt-signing-key.pem";

impl Tokens {
    /// Loads the signing key, generating it on first start.
    pub fn load_or_create(dir: &DataDir, ttl: Duration, clock: Clock) -> Result<Tokens, TokenError> {
        crate::auth::jwt::install();
        let path = dir.file(KEY_FILE);
        let key_err = |e: &dyn std::fmt::Display| TokenError::Key(e.to_string());
        let private = match datadir::read_optional(&path).map_err(|e| key_err(&e))? {
            Some(pem) => RsaPrivateKey::from_pkcs8_pem(&String::from_utf8_lossy(&pem)).map_err(|e| key_err(&e))?,
            None => {
                let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).map_err(|e| key_err(&e))?;
                let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| key_err(&e))?;
                datadir::write_secret(&path, pem.as_bytes()).map_err(|e| key_err(&e))?;
                key
            }
        };
        Tokens::from_key(&private, ttl, clock)
    }

    fn from_key(private: &RsaPrivateKey, ttl: Duration, clock: Clock) -> Result<Tokens, TokenError> {
        let key_err = |e: &dyn std::fmt::Display| TokenError::Key(e.to_string());
        let public = RsaPublicKey::from(private);
        let der = public.to_public_key_der().map_err(|e| key_err(&e))?;
        let kid = hex::encode(&Sha256::digest(der.as_bytes())[..8]);
        let n = URL_SAFE_NO_PAD.encode(public.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(public.e().to_bytes_be());
        let pem = private.to_pkcs8_pem(LineEnding::LF).map_err(|e| key_err(&e))?;
        Ok(Tokens {
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes())?,
            decoding: DecodingKey::from_rsa_components(&n, &e)?,
            jwk: serde_json::json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}),
            kid,
            ttl,
            clock,
        })
    }

    /// The key id in every token's header.
    #[cfg(test)]
    fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.jwk] })
    }

    /// Signs a token for `subject`, valid for the configured lifetime.
    pub fn issue(&self, subject: &Subject<'_>) -> Result<IssuedToken, TokenError> {
        let now = self.clock.now();
        let expires_at = now + clock::span(self.ttl);
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: subject.user_id.to_owned(),
            device_id: subject.device_id.to_owned(),
            fp: subject.fingerprint.to_owned(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok(IssuedToken { token, claims, expires_at })
    }

    /// Checks the header, signature, issuer and expiry of `token`.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Malformed);
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(TokenError::UnknownKey);
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        validation.validate_exp = false; // against the appliance's clock, below
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation) {
            Ok(data) if data.claims.exp <= self.clock.now().timestamp() => Err(TokenError::Expired),
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(ttl: Duration) -> (tempfile::TempDir, Tokens) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let t = Tokens::load_or_create(&dir, ttl, Clock::system()).unwrap();
        (tmp, t)
    }

    #[test]
    fn a_token_expires_by_the_appliances_clock() {
        let (_tmp, t) = tokens(Duration::from_secs(60));
        let issued = t.issue(&subject()).unwrap();
        assert!(t.verify(&issued.token).is_ok());
        t.clock.shift(chrono::Duration::seconds(61));
        assert!(matches!(t.verify(&issued.token), Err(TokenError::Expired)));
    }

    fn subject() -> Subject<'static> {
        Subject { user_id: "alice", device_id: "pixel-8", fingerprint: "fp" }
    }

    #[test]
    fn issued_tokens_verify_and_reload_keeps_the_key() {
        let (tmp, t) = tokens(Duration::from_secs(60));
        let issued = t.issue(&subject()).unwrap();
        assert_eq!(t.verify(&issued.token).unwrap(), issued.claims);
        let again =
            Tokens::load_or_create(&DataDir::open(tmp.path()).unwrap(), Duration::from_secs(60), Clock::system())
                .unwrap();
        assert_eq!(again.kid(), t.kid());
        assert!(again.verify(&issued.token).is_ok());
        assert_eq!(t.jwks()["keys"][0]["kid"], t.kid());
    }

    #[test]
    fn tampered_and_foreign_tokens_are_refused() {
        let (_a, t) = tokens(Duration::from_secs(60));
        let (_b, other) = tokens(Duration::from_secs(60));
        let token = t.issue(&subject()).unwrap().token;
        assert!(matches!(other.verify(&token), Err(TokenError::UnknownKey)));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD
            .encode(br#"{"iss":"topdog","sub":"mallory","device_id":"x","fp":"f","iat":0,"exp":9999999999,"jti":"j"}"#);
        assert!(matches!(t.verify(&parts.join(".")), Err(TokenError::BadSignature)));
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
        assert!(matches!(t.verify(&none), Err(TokenError::Malformed)));
        assert!(matches!(t.verify("garbage"), Err(TokenError::Malformed)));
    }
}
