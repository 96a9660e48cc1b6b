//! Validated identifiers that cross the API boundary: user and device ids,
//! display names and one-time invite codes. Each newtype checks its input on
//! construction, so code holding one never re-validates it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Why an identifier was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct InvalidId {
    /// The field that was refused.
    pub field: &'static str,
    /// What was wrong with it, in words.
    pub reason: &'static str,
}

fn check_id(field: &'static str, value: &str) -> Result<(), InvalidId> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if value.is_empty() || value.len() > 64 {
        return Err(InvalidId { field, reason: "must be 1 to 64 characters" });
    }
    if !value.chars().all(ok_char) {
        return Err(InvalidId { field, reason: "may contain only letters, digits, '.', '_' and '-'" });
    }
    Ok(())
}

/// The rule for ids that are also MQTT client ids (device ids): no '.', which
/// the broker uses to join a tenant and a client id.
fn check_client_id(field: &'static str, value: &str) -> Result<(), InvalidId> {
    check_id(field, value)?;
    if value.contains('.') {
        return Err(InvalidId { field, reason: "may contain only letters, digits, '_' and '-'" });
    }
    Ok(())
}

/// Checks a message or command id sent by a phone: `[A-Za-z0-9._-]{1,64}`.
pub(crate) fn check_message_id(field: &'static str, value: &str) -> Result<(), InvalidId> {
    check_id(field, value)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $rule:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks a new id against its rule (`[A-Za-z0-9._-]{1,64}`; no
            /// '.' for device ids).
            pub fn parse(value: &str) -> Result<Self, InvalidId> {
                $rule($field, value).map(|()| Self(value.to_owned()))
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidId;
            /// Stored records: the older, wider rule, so earlier data loads.
            fn try_from(value: String) -> Result<Self, InvalidId> {
                check_id($field, &value).map(|()| Self(value))
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// The IDE user a phone is paired for.
    UserId,
    "user_id",
    check_id
);
id_type!(
    /// The phone's own id, chosen by the phone at pairing.
    DeviceId,
    "device_id",
    check_client_id
);

/// A human-readable name (user or device): 1 to 100 characters, no control
/// characters, surrounding white space trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    /// Validates a name given for `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidId> {
        let trimmed = value.trim();
        if trimmed.is_empty() || trimmed.chars().count() > 100 {
            return Err(InvalidId { field, reason: "must be 1 to 100 characters" });
        }
        if trimmed.chars().any(char::is_control) {
            return Err(InvalidId { field, reason: "must not contain control characters" });
        }
        Ok(Self(trimmed.to_owned()))
    }
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DisplayName {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, InvalidId> {
        Self::parse("name", &value)
    }
}
impl From<DisplayName> for String {
    fn from(n: DisplayName) -> String {
        n.0
    }
}
impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a short free-text field (versions, device type): 1 to 64
/// printable characters.
pub(crate) fn short_text(field: &'static str, value: &str) -> Result<String, InvalidId> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 64 {
        return Err(InvalidId { field, reason: "must be 1 to 64 characters" });
    }
    if trimmed.chars().any(char::is_control) {
        return Err(InvalidId { field, reason: "must not contain control characters" });
    }
    Ok(trimmed.to_owned())
}

/// A one-time pairing code: 256 random bits from the OS, base64url (43
/// characters). Only its SHA-256 (`InviteKey`) is stored.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct InviteCode(String);

/// The length of an encoded invite code.
pub(crate) const INVITE_CODE_LEN: usize = 43;

impl InviteCode {
    /// A fresh random code.
    pub(crate) fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }
    /// Accepts only the exact shape `generate` produces.
    pub(crate) fn parse(value: &str) -> Result<Self, InvalidId> {
        let bad = InvalidId { field: "invite_code", reason: "is not a valid invite code" };
        if value.len() != INVITE_CODE_LEN {
            return Err(bad);
        }
        match URL_SAFE_NO_PAD.decode(value) {
            Ok(bytes) if bytes.len() == 32 => Ok(Self(value.to_owned())),
            _ => Err(bad),
        }
    }
    /// The code as the phone sees it.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
    /// The key the invite is stored under.
    pub(crate) fn key(&self) -> InviteKey {
        InviteKey(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
    /// A short, safe-to-log form: the first six characters.
    pub(crate) fn masked(&self) -> String {
        format!("{}…", &self.0[..6])
    }
}

impl fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InviteCode({})", self.masked())
    }
}

/// The stored identity of an invite: hex SHA-256 of its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InviteKey(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_alphabet_only() {
        assert!(UserId::parse("alice.smith_1-2").is_ok());
        for bad in ["", "a/b", "a b", "a+b", "#", "$SYS", "pixel.8", &"x".repeat(65)] {
            assert!(DeviceId::parse(bad).is_err(), "{bad:?} accepted");
        }
        let stored: DeviceId = serde_json::from_str("\"old.phone\"").unwrap();
        assert_eq!(stored.as_str(), "old.phone", "records from before the rule still load");
    }

    #[test]
    fn invite_codes_round_trip_and_reject_other_shapes() {
        let code = InviteCode::generate();
        assert_eq!(InviteCode::parse(code.as_str()).unwrap().key(), code.key());
        assert!(InviteCode::parse("short").is_err());
        assert!(InviteCode::parse(&"!".repeat(43)).is_err());
        assert_ne!(InviteCode::generate().as_str(), code.as_str());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("n", "  Ann ").unwrap().as_str(), "Ann");
        assert!(DisplayName::parse("n", "   ").is_err());
        assert!(DisplayName::parse("n", "a\u{7}").is_err());
        assert!(DisplayName::parse("n", &"é".repeat(101)).is_err());
    }
}
