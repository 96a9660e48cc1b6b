//! License keys, checked offline: the key format (a versioned prefix, then
//! base64url of a canonical JSON payload and of its Ed25519 signature), the
//! vendor public keys embedded from `license-keys/`, issuing (the vendor's
//! tool) and the checks: signature, vendor key, machine binding, expiry
//! (of the license, or of updates only) and a clock set back.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::NaiveDate;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rust_embed::RustEmbed;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The key format's prefix; the digit is the format version.
pub(crate) const PREFIX: &str = "TDLIC1.";

/// How far the clock may go back before an expiring license is distrusted.
pub(crate) const CLOCK_SLACK_S: i64 = 24 * 3600;

/// Why a license key was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LicenseError {
    /// Not a license key at all, or damaged beyond reading.
    #[error("not a valid license key: {0}")]
    Malformed(String),
    /// A key of a newer format than this build reads.
    #[error("this license key has a newer format than this version of Top Dog understands; update Top Dog")]
    UnsupportedVersion,
    /// Signed by a key this build does not trust.
    #[error("the license key was signed by an unknown vendor key ({0})")]
    UnknownKey(String),
    /// The signature does not match the payload (edited or corrupted).
    #[error("the license key's signature is invalid (the key was altered or mistyped)")]
    BadSignature,
    /// Bound to another machine.
    #[error("the license key is bound to another machine")]
    WrongMachine,
    /// Past its expiry.
    #[error("the license expired on {0}")]
    Expired(NaiveDate),
    /// Updates ended before this build was released.
    #[error("the license covers builds released until {0}; this build is newer")]
    UpdatesEnded(NaiveDate),
    /// The clock was set back; an expiring license is not trusted.
    #[error("the system clock is more than a day behind the latest time this appliance has seen; set the clock right")]
    ClockRolledBack,
}

impl LicenseError {
    /// The API error code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            LicenseError::Malformed(_) => "license_malformed",
            LicenseError::UnsupportedVersion => "license_unsupported_version",
            LicenseError::UnknownKey(_) => "license_unknown_key",
            LicenseError::BadSignature => "license_bad_signature",
            LicenseError::WrongMachine => "license_wrong_machine",
            LicenseError::Expired(_) => "license_expired",
            LicenseError::UpdatesEnded(_) => "license_updates_ended",
            LicenseError::ClockRolledBack => "license_clock_rolled_back",
        }
    }
}

/// What an expiry date limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ExpiryKind {
    /// The license stops on that date.
    #[default]
    License,
    /// Builds released up to that date stay licensed forever.
    Updates,
}

/// The signed content of a license key. Unknown fields are refused, so a
/// future field is never silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// Payload format version (1).
    pub(crate) v: u32,
    /// The license's id.
    pub(crate) license_id: String,
    /// The customer's name.
    pub(crate) customer: String,
    /// Seats bought.
    pub(crate) seats: u32,
    /// Issue date.
    pub(crate) issued: NaiveDate,
    /// Optional expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires: Option<NaiveDate>,
    /// What the expiry limits.
    #[serde(default)]
    pub(crate) expiry_kind: ExpiryKind,
    /// Optional machine binding (a machine fingerprint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) machine: Option<String>,
    /// The vendor key that signed it.
    pub(crate) kid: String,
}

/// The vendor keys this build trusts.
pub struct VendorKeys {
    keys: Vec<(String, VerifyingKey)>,
}

#[derive(RustEmbed)]
#[folder = "license-keys/"]
#[include = "vendor-*.pub"]
struct Embedded;

#[cfg(feature = "dev-license-key")]
#[derive(RustEmbed)]
#[folder = "license-keys/"]
#[include = "dev-license-key.pub"]
struct EmbeddedDev;

/// The key id of a vendor public key: 16 hex digits of its SHA-256.
pub(crate) fn kid_of(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Parses a public key file: base64 of the 32 key bytes (comments with #).
pub(crate) fn parse_public(text: &str) -> Option<VerifyingKey> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD.decode(line).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Parses a private key file: base64 of the 32 seed bytes (comments with #).
pub(crate) fn parse_private(text: &str) -> Option<SigningKey> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD.decode(line).ok()?.try_into().ok()?;
    Some(SigningKey::from_bytes(&bytes))
}

impl VendorKeys {
    /// The keys embedded in this build (the development key only with the
    /// `dev-license-key` feature).
    pub fn embedded() -> VendorKeys {
        let mut keys = Vec::new();
        let files = Embedded::iter().filter_map(|n| Embedded::get(&n));
        #[cfg(feature = "dev-license-key")]
        let files = files.chain(EmbeddedDev::iter().filter_map(|n| EmbeddedDev::get(&n)));
        for file in files {
            if let Some(key) = parse_public(&String::from_utf8_lossy(&file.data)) {
                keys.push((kid_of(&key), key));
            }
        }
        VendorKeys { keys }
    }

    /// A set of explicitly given keys.
    pub fn from_keys(keys: &[VerifyingKey]) -> VendorKeys {
        VendorKeys { keys: keys.iter().map(|k| (kid_of(k), *k)).collect() }
    }

    fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }
}

/// Makes a new random vendor key.
pub fn generate_key() -> SigningKey {
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    SigningKey::from_bytes(&seed)
}

/// Signs `payload` (its `kid` is set from the key) into a license key.
pub fn issue(key: &SigningKey, mut payload: Payload) -> String {
    payload.kid = kid_of(&key.verifying_key());
    let bytes = serde_json::to_vec(&payload).unwrap_or_default();
    let signature = key.sign(&bytes);
    format!("{PREFIX}{}.{}", URL_SAFE_NO_PAD.encode(&bytes), URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// Reads a license key and checks its signature against `trusted`.
pub fn verify(key: &str, trusted: &VendorKeys) -> Result<Payload, LicenseError> {
    let compact: String = key.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(body) = compact.strip_prefix(PREFIX) else {
        return Err(if compact.starts_with("TDLIC") {
            LicenseError::UnsupportedVersion
        } else {
            LicenseError::Malformed("it does not start with TDLIC1.".into())
        });
    };
    let (payload_b64, sig_b64) =
        body.split_once('.').ok_or_else(|| LicenseError::Malformed("missing signature".into()))?;
    let payload_bytes = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| LicenseError::BadSignature)?;
    let sig: [u8; 64] =
        URL_SAFE_NO_PAD.decode(sig_b64).ok().and_then(|s| s.try_into().ok()).ok_or(LicenseError::BadSignature)?;
    let header: serde_json::Value = serde_json::from_slice(&payload_bytes).map_err(|_| LicenseError::BadSignature)?;
    let kid = header.get("kid").and_then(|k| k.as_str()).ok_or(LicenseError::BadSignature)?;
    let vendor = trusted.get(kid).ok_or_else(|| LicenseError::UnknownKey(kid.to_owned()))?;
    vendor.verify(&payload_bytes, &Signature::from_bytes(&sig)).map_err(|_| LicenseError::BadSignature)?;
    if header.get("v").and_then(|v| v.as_u64()) != Some(1) {
        return Err(LicenseError::UnsupportedVersion);
    }
    serde_json::from_slice(&payload_bytes).map_err(|e| LicenseError::Malformed(e.to_string()))
}

/// The facts a license is judged against.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// Now, by the system clock.
    pub(crate) now: chrono::DateTime<chrono::Utc>,
    /// The latest time this appliance has seen.
    pub(crate) high_water: Option<chrono::DateTime<chrono::Utc>>,
    /// This build's release date.
    pub(crate) build_date: NaiveDate,
    /// This machine's fingerprint.
    pub(crate) machine: Option<String>,
}

/// Checks machine binding and expiry at `ctx`.
pub(crate) fn check(p: &Payload, ctx: &Context) -> Result<(), LicenseError> {
    if let Some(bound) = &p.machine {
        if ctx.machine.as_deref() != Some(bound.as_str()) {
            return Err(LicenseError::WrongMachine);
        }
    }
    let Some(expires) = p.expires else { return Ok(()) };
    if p.expiry_kind == ExpiryKind::Updates {
        return if ctx.build_date <= expires { Ok(()) } else { Err(LicenseError::UpdatesEnded(expires)) };
    }
    if ctx.high_water.is_some_and(|seen| (seen - ctx.now).num_seconds() > CLOCK_SLACK_S) {
        return Err(LicenseError::ClockRolledBack);
    }
    if ctx.now.date_naive() > expires {
        return Err(LicenseError::Expired(expires));
    }
    Ok(())
}

/// This machine's fingerprint: SHA-256 of `/etc/machine-id`.
pub(crate) fn machine_fingerprint() -> Option<String> {
    let id = std::fs::read_to_string("/etc/machine-id").ok()?;
    let id = id.trim();
    (!id.is_empty()).then(|| hex::encode(Sha256::digest(id.as_bytes())))
}

/// The date this build was made (set by build.rs).
pub(crate) fn build_date() -> NaiveDate {
    NaiveDate::parse_from_str(env!("TOPDOG_BUILD_DATE"), "%Y-%m-%d").unwrap_or(NaiveDate::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn payload(expires: Option<&str>, kind: ExpiryKind, machine: Option<&str>) -> Payload {
        Payload {
            v: 1,
            license_id: "L-1".into(),
            customer: "Acme".into(),
            seats: 5,
            issued: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            expires: expires.map(|d| d.parse().unwrap()),
            expiry_kind: kind,
            machine: machine.map(str::to_owned),
            kid: String::new(),
        }
    }

    fn ctx(now: (i32, u32, u32)) -> Context {
        Context {
            now: Utc.with_ymd_and_hms(now.0, now.1, now.2, 12, 0, 0).unwrap(),
            high_water: None,
            build_date: NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
            machine: Some("m1".into()),
        }
    }

    #[test]
    fn issued_keys_verify_and_every_tamper_is_refused() {
        let vendor = generate_key();
        let trusted = VendorKeys::from_keys(&[vendor.verifying_key()]);
        let key = issue(&vendor, payload(None, ExpiryKind::License, None));
        let read = verify(&key, &trusted).unwrap();
        assert_eq!((read.customer.as_str(), read.seats), ("Acme", 5));
        assert_eq!(read.kid, kid_of(&vendor.verifying_key()));

        let mut flipped = key.clone().into_bytes();
        let i = PREFIX.len() + 20;
        flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(verify(&String::from_utf8(flipped).unwrap(), &trusted), Err(LicenseError::BadSignature));

        let other = issue(&generate_key(), payload(None, ExpiryKind::License, None));
        assert!(matches!(verify(&other, &trusted), Err(LicenseError::UnknownKey(_))));
        assert_eq!(verify("TDLIC2.abc.def", &trusted), Err(LicenseError::UnsupportedVersion));
        assert!(matches!(verify("hello", &trusted), Err(LicenseError::Malformed(_))));
        assert!(verify(&format!(" {}\n", key), &trusted).is_ok(), "white space from copy-paste is ignored");
    }

    #[test]
    fn unknown_future_fields_are_refused_not_ignored() {
        let vendor = generate_key();
        let trusted = VendorKeys::from_keys(&[vendor.verifying_key()]);
        let mut value = serde_json::to_value(payload(None, ExpiryKind::License, None)).unwrap();
        value["kid"] = kid_of(&vendor.verifying_key()).into();
        value["max_builds_per_day"] = 10.into();
        let bytes = serde_json::to_vec(&value).unwrap();
        let sig = vendor.sign(&bytes).to_bytes();
        let key = format!("{PREFIX}{}.{}", URL_SAFE_NO_PAD.encode(&bytes), URL_SAFE_NO_PAD.encode(sig));
        assert!(matches!(verify(&key, &trusted), Err(LicenseError::Malformed(m)) if m.contains("max_builds_per_day")));
    }

    #[test]
    fn expiry_machine_and_clock_rules() {
        let lic = payload(Some("2026-12-31"), ExpiryKind::License, Some("m1"));
        assert_eq!(check(&lic, &ctx((2026, 12, 31))), Ok(()));
        assert!(matches!(check(&lic, &ctx((2027, 1, 1))), Err(LicenseError::Expired(_))));
        let mut elsewhere = ctx((2026, 7, 1));
        elsewhere.machine = Some("m2".into());
        assert_eq!(check(&lic, &elsewhere), Err(LicenseError::WrongMachine));

        let mut rolled = ctx((2026, 7, 1));
        rolled.high_water = Some(rolled.now + chrono::Duration::days(2));
        assert_eq!(check(&lic, &rolled), Err(LicenseError::ClockRolledBack));
        rolled.high_water = Some(rolled.now + chrono::Duration::hours(20));
        assert_eq!(check(&lic, &rolled), Ok(()), "less than a day back is tolerated");

        let updates = payload(Some("2026-05-01"), ExpiryKind::Updates, None);
        assert!(matches!(check(&updates, &ctx((2030, 1, 1))), Err(LicenseError::UpdatesEnded(_))));
        let updates = payload(Some("2026-06-01"), ExpiryKind::Updates, None);
        assert_eq!(check(&updates, &ctx((2030, 1, 1))), Ok(()), "builds before the date stay licensed forever");
    }

    #[test]
    fn the_repository_holds_no_private_half_of_a_vendor_key() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("license-keys");
        let vendor: Vec<VerifyingKey> = Embedded::iter()
            .filter_map(|n| Embedded::get(&n))
            .filter_map(|f| parse_public(&String::from_utf8_lossy(&f.data)))
            .collect();
        assert!(!vendor.is_empty(), "at least one vendor key is embedded");
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
            if let Some(private) = parse_private(&text) {
                assert!(!vendor.contains(&private.verifying_key()), "a vendor key's private half is in the repository");
            }
        }
    }
}
