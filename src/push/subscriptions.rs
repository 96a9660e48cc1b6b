//! A phone's Web Push subscriptions: what its browser's `PushManager` gave
//! it (endpoint and keys), checked and kept per device and pairing, at most
//! [`MAX_PER_DEVICE`] each. A phone lists and removes its own; they go with
//! the device (revoke, unpair, a new pairing of its id) and when the push
//! service says the subscription is gone.

use super::endpoint::AllowedHosts;
use super::PushError;
use crate::clock::{Clock, Timestamp};
use crate::devices::Device;
use crate::store::{Store, Table};
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Subscriptions one device may hold (a phone with a browser or two).
pub(crate) const MAX_PER_DEVICE: usize = 5;

/// A kept subscription.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Subscription {
    /// Its id: the start of the endpoint's SHA-256.
    pub id: String,
    /// The device.
    pub device_id: String,
    /// Which pairing of the device id it belongs to.
    pub paired_at: Timestamp,
    /// Where pushes go.
    pub endpoint: String,
    /// The browser's P-256 public key (base64url).
    pub p256dh: String,
    /// The browser's authentication secret (base64url).
    pub auth: String,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// What a phone registers: its browser's `PushSubscription.toJSON()`.
#[derive(Debug, Deserialize)]
pub(crate) struct Register {
    /// The push endpoint.
    pub endpoint: String,
    /// The encryption keys.
    pub keys: Keys,
}

/// A subscription's keys.
#[derive(Debug, Deserialize)]
pub(crate) struct Keys {
    /// P-256 public key, uncompressed, base64url.
    pub p256dh: String,
    /// 16-byte secret, base64url.
    pub auth: String,
}

/// What a phone sees of one of its subscriptions (never the keys).
#[derive(Debug, Serialize)]
pub(crate) struct Listed {
    /// Its id.
    pub id: String,
    /// The push endpoint.
    pub endpoint: String,
    /// When it was registered.
    pub created_at: Timestamp,
}

impl From<&Subscription> for Listed {
    fn from(s: &Subscription) -> Listed {
        Listed { id: s.id.clone(), endpoint: s.endpoint.clone(), created_at: s.created_at }
    }
}

/// The subscriptions (cheap to clone).
#[derive(Clone)]
pub(crate) struct Subscriptions {
    store: Store,
    hosts: AllowedHosts,
    clock: Clock,
}

fn key(device: &str, id: &str) -> String {
    format!("{device}/{id}")
}

/// Decodes base64url, padded or not.
fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).or_else(|_| URL_SAFE.decode(text)).ok()
}

fn check_keys(keys: &Keys) -> Result<(), PushError> {
    let public = decode(&keys.p256dh).ok_or(PushError::Keys("p256dh is not base64url"))?;
    p256::PublicKey::from_sec1_bytes(&public).map_err(|_| PushError::Keys("p256dh is not a P-256 public key"))?;
    if public.len() != 65 {
        return Err(PushError::Keys("p256dh must be an uncompressed point (65 bytes)"));
    }
    match decode(&keys.auth) {
        Some(auth) if auth.len() == 16 => Ok(()),
        _ => Err(PushError::Keys("auth must be 16 bytes, base64url")),
    }
}

impl Subscriptions {
    /// The subscriptions in `store`, endpoints checked against `hosts`.
    pub(crate) fn new(store: Store, hosts: AllowedHosts, clock: Clock) -> Subscriptions {
        Subscriptions { store, hosts, clock }
    }

    /// The allowed hosts.
    pub(crate) fn hosts(&self) -> &AllowedHosts {
        &self.hosts
    }

    /// Keeps a subscription of `device` (on disk when this returns); true
    /// when it is new, false when it replaced one with the same endpoint.
    pub(crate) async fn register(&self, device: &Device, request: &Register) -> Result<(Listed, bool), PushError> {
        self.hosts.check(&request.endpoint)?;
        check_keys(&request.keys)?;
        let id = hex::encode(&Sha256::digest(request.endpoint.as_bytes())[..8]);
        let held = self.of(device)?;
        let new = !held.iter().any(|s| s.id == id);
        if new && held.len() >= MAX_PER_DEVICE {
            return Err(PushError::Full(MAX_PER_DEVICE));
        }
        let subscription = Subscription {
            id: id.clone(),
            device_id: device.device_id.to_string(),
            paired_at: device.paired_at,
            endpoint: request.endpoint.clone(),
            p256dh: request.keys.p256dh.clone(),
            auth: request.keys.auth.clone(),
            created_at: self.clock.now(),
        };
        self.store.insert(Table::PushSubscriptions, &key(device.device_id.as_str(), &id), &subscription).await?;
        Ok((Listed::from(&subscription), new))
    }

    /// The subscriptions of this pairing of `device`.
    pub(crate) fn of(&self, device: &Device) -> Result<Vec<Subscription>, PushError> {
        let all = self.all_of(device.device_id.as_str())?;
        Ok(all.into_iter().filter(|s| s.paired_at == device.paired_at).collect())
    }

    fn all_of(&self, device_id: &str) -> Result<Vec<Subscription>, PushError> {
        let prefix = format!("{device_id}/");
        let found: Vec<(String, Subscription)> =
            self.store.scan_prefix(Table::PushSubscriptions, &prefix, None, 4 * MAX_PER_DEVICE)?;
        Ok(found.into_iter().map(|(_, s)| s).collect())
    }

    /// Removes one subscription of `device`.
    pub(crate) async fn remove(&self, device: &Device, id: &str) -> Result<(), PushError> {
        if !self.of(device)?.iter().any(|s| s.id == id) {
            return Err(PushError::NotFound);
        }
        self.delete(device.device_id.as_str(), &[id.to_owned()]).await
    }

    /// Removes every subscription of `device_id` (it was revoked or
    /// unpaired).
    pub(crate) async fn forget(&self, device_id: &str) -> Result<(), PushError> {
        let ids: Vec<String> = self.all_of(device_id)?.into_iter().map(|s| s.id).collect();
        self.delete(device_id, &ids).await
    }

    async fn delete(&self, device_id: &str, ids: &[String]) -> Result<(), PushError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.store
            .commit(|tx| ids.iter().try_for_each(|id| tx.remove(Table::PushSubscriptions, &key(device_id, id))))
            .await
            .map_err(PushError::from)
    }

    /// Removes a subscription the push service says is gone.
    pub(crate) async fn gone(&self, subscription: &Subscription) -> Result<(), PushError> {
        self.delete(&subscription.device_id, std::slice::from_ref(&subscription.id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_a_p256_point_and_a_16_byte_secret() {
        let point = p256::SecretKey::random(&mut rand::rngs::OsRng).public_key();
        let uncompressed = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&point, false);
        let compressed = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&point, true);
        let good = URL_SAFE_NO_PAD.encode(uncompressed.as_bytes());
        let auth = URL_SAFE_NO_PAD.encode([7u8; 16]);
        assert!(check_keys(&Keys { p256dh: good.clone(), auth: auth.clone() }).is_ok());
        assert!(check_keys(&Keys { p256dh: URL_SAFE.encode(uncompressed.as_bytes()), auth: auth.clone() }).is_ok());
        let short = URL_SAFE_NO_PAD.encode(compressed.as_bytes());
        assert!(check_keys(&Keys { p256dh: short, auth: auth.clone() }).is_err());
        assert!(check_keys(&Keys { p256dh: URL_SAFE_NO_PAD.encode([4u8; 65]), auth: auth.clone() }).is_err());
        assert!(check_keys(&Keys { p256dh: good.clone(), auth: URL_SAFE_NO_PAD.encode([7u8; 15]) }).is_err());
        assert!(check_keys(&Keys { p256dh: "!!".into(), auth }).is_err());
    }
}
