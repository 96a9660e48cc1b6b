//! The admin token: generated on first start and shown once, or set by the
//! operator (`ADMIN_TOKEN`); only its SHA-256 is stored (mode 0600), and a
//! presented token is checked in constant time.

use crate::error::{Coded, Kind};
use crate::store::datadir::{self, DataDir};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a request was not let in as admin.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    /// No admin credential in the request.
    #[error("this operation needs the admin token (header x-admin-token)")]
    Missing,
    /// A credential that does not match.
    #[error("the admin token is not valid")]
    Invalid,
    /// A console session that has ended, or a change without its CSRF token.
    #[error(transparent)]
    Session(#[from] crate::auth::sessions::SessionError),
}

impl Coded for AdminError {
    fn coded(&self) -> (&'static str, Kind) {
        match self {
            AdminError::Missing => ("admin_token_required", Kind::Unauthenticated),
            AdminError::Invalid => ("admin_token_invalid", Kind::Unauthenticated),
            AdminError::Session(crate::auth::sessions::SessionError::Ended) => ("session_ended", Kind::Unauthenticated),
            AdminError::Session(crate::auth::sessions::SessionError::Csrf) => ("csrf_token_invalid", Kind::Forbidden),
            AdminError::Session(crate::auth::sessions::SessionError::NotAdmin) => ("admin_only", Kind::Forbidden),
            AdminError::Session(crate::auth::sessions::SessionError::NoPerson) => ("person_only", Kind::Forbidden),
        }
    }
}

/// The stored hash of the admin token.
#[derive(Clone)]
pub(crate) struct AdminToken {
    hash: [u8; 32],
}

/// What loading found: the checker, and the token if it was just generated
/// (to be shown once).
pub(crate) struct Loaded {
    /// The checker.
    pub admin: AdminToken,
    /// A newly generated token, shown once and never stored.
    pub generated: Option<String>,
}

const HASH_FILE: &str = "admin-token.sha256";
const PREFIX: &str = "tdadm_";

impl AdminToken {
    /// Uses `configured` when given (storing its hash), else the stored hash,
    /// else generates a new token.
    pub(crate) fn load_or_create(dir: &DataDir, configured: Option<&str>) -> std::io::Result<Loaded> {
        let path = dir.file(HASH_FILE);
        if let Some(token) = configured {
            let admin = AdminToken::from_token(token);
            datadir::write_secret(&path, hex::encode(admin.hash).as_bytes())?;
            return Ok(Loaded { admin, generated: None });
        }
        if let Some(stored) = datadir::read_optional(&path)? {
            let text = String::from_utf8_lossy(&stored);
            if let Some(hash) = parse_hash(text.trim()) {
                return Ok(Loaded { admin: AdminToken { hash }, generated: None });
            }
        }
        let token = generate();
        let admin = AdminToken::from_token(&token);
        datadir::write_secret(&path, hex::encode(admin.hash).as_bytes())?;
        Ok(Loaded { admin, generated: Some(token) })
    }

    /// A checker for `token`.
    pub(crate) fn from_token(token: &str) -> AdminToken {
        AdminToken { hash: Sha256::digest(token.as_bytes()).into() }
    }

    /// Checks a presented token in constant time.
    pub(crate) fn check(&self, presented: Option<&str>) -> Result<(), AdminError> {
        let presented = presented.ok_or(AdminError::Missing)?;
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        if bool::from(hash.ct_eq(&self.hash)) {
            Ok(())
        } else {
            Err(AdminError::Invalid)
        }
    }
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_checked_from_the_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let first = AdminToken::load_or_create(&dir, None).unwrap();
        let token = first.generated.expect("first start generates");
        let second = AdminToken::load_or_create(&dir, None).unwrap();
        assert!(second.generated.is_none());
        assert!(second.admin.check(Some(&token)).is_ok());
        assert!(matches!(second.admin.check(Some("tdadm_wrong")), Err(AdminError::Invalid)));
        assert!(matches!(second.admin.check(None), Err(AdminError::Missing)));
        let stored = std::fs::read_to_string(dir.file(HASH_FILE)).unwrap();
        assert!(!stored.contains(&token));
    }

    #[test]
    fn configured_token_replaces_the_stored_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        AdminToken::load_or_create(&dir, None).unwrap();
        let set = AdminToken::load_or_create(&dir, Some("operator-chosen")).unwrap();
        assert!(set.admin.check(Some("operator-chosen")).is_ok());
        let later = AdminToken::load_or_create(&dir, None).unwrap();
        assert!(later.admin.check(Some("operator-chosen")).is_ok());
    }
}
