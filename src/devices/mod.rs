//! Paired devices: the device record, its lifecycle (active → suspended ⇄
//! active, any → revoked, which is final), authentication of a device token
//! against the store (revoked token ids, device state) and token refresh.

pub(crate) mod counts;
pub(crate) mod index;
mod lifecycle;
pub(crate) mod numbers;
pub(crate) mod recount;

use lifecycle::apply_change;
pub(crate) use lifecycle::Change;

use crate::audit::{Actor, AuditLog, Event};
use crate::auth::tokens::{Claims, IssuedToken, Subject, TokenError, Tokens};
use crate::clock::{Clock, Timestamp};
use crate::error::{Coded, Kind};
use crate::ids::{DeviceId, DisplayName, UserId};
use crate::sms::number::PhoneNumber;
use crate::store::{Store, StoreError, Table, TxAbort, TxError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A device's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DeviceState {
    /// Paired and allowed in.
    Active,
    /// Paired where new phones need an admin's approval, and not yet
    /// approved: its token shows only its own state (`GET /phone/me`).
    PendingApproval,
    /// Temporarily refused; can be reactivated.
    Suspended,
    /// Permanently refused.
    Revoked,
}

impl DeviceState {
    /// The state's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DeviceState::Active => "active",
            DeviceState::PendingApproval => "pending_approval",
            DeviceState::Suspended => "suspended",
            DeviceState::Revoked => "revoked",
        }
    }
}

/// A paired device, as stored and as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Device {
    /// The phone's id.
    pub device_id: DeviceId,
    /// The user it is paired for.
    pub user_id: UserId,
    /// The user's display name.
    pub user_name: DisplayName,
    /// The phone's name.
    pub device_name: DisplayName,
    /// `ios`, `android`, `web`, …
    pub device_type: String,
    /// OS version reported at pairing.
    pub os_version: String,
    /// App version reported at pairing.
    pub app_version: String,
    /// Lifecycle state.
    pub status: DeviceState,
    /// Paired at.
    pub paired_at: Timestamp,
    /// Last authenticated request.
    pub last_seen_at: Option<Timestamp>,
    /// Last suspension.
    pub suspended_at: Option<Timestamp>,
    /// Revocation.
    pub revoked_at: Option<Timestamp>,
    /// Identity fingerprint (the token's `fp`).
    pub fingerprint: String,
    /// The current token's id.
    pub token_jti: String,
    /// The current token's expiry.
    pub token_expires_at: Timestamp,
    /// Notification ids up to this one belong to earlier pairings of this
    /// device id and are never shown to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbox_floor: Option<String>,
}

/// Why a device operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No such device.
    #[error("no device with id {0}")]
    NotFound(String),
    /// The device was revoked; that is final.
    #[error("the device has been revoked; pair it again")]
    Revoked,
    /// An admin asked to change a revoked device.
    #[error("the device has been revoked; revocation is final")]
    AlreadyRevoked,
    /// The device is suspended.
    #[error("the device is suspended; an admin can reactivate it")]
    Suspended,
    /// The device waits for an admin's approval.
    #[error("the device waits for an admin's approval")]
    PendingApproval,
    /// Approve or reject asked of a device that is not waiting, or suspend
    /// or reactivate of one that is.
    #[error("{0}")]
    NotPending(&'static str),
    /// The token was not accepted.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for DeviceError {
    fn coded(&self) -> (&'static str, Kind) {
        match self {
            DeviceError::NotFound(_) => ("device_not_found", Kind::NotFound),
            DeviceError::Revoked => ("device_revoked", Kind::Unauthenticated),
            DeviceError::AlreadyRevoked => ("device_revoked", Kind::Conflict),
            DeviceError::Suspended => ("device_suspended", Kind::Forbidden),
            DeviceError::PendingApproval => ("device_pending_approval", Kind::Forbidden),
            DeviceError::NotPending(_) => ("device_not_pending", Kind::Conflict),
            DeviceError::Token(t) => t.coded(),
            DeviceError::Store(_) => ("internal", Kind::Internal),
        }
    }
}

impl From<TxError<DeviceError>> for DeviceError {
    fn from(e: TxError<DeviceError>) -> Self {
        match e {
            TxError::Domain(e) => e,
            TxError::Store(e) => DeviceError::Store(e),
        }
    }
}

/// An authenticated device request.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    /// The device record.
    pub device: Device,
    /// The token's claims.
    pub claims: Claims,
}

/// The device service.
#[derive(Clone)]
pub(crate) struct Devices {
    store: Store,
    tokens: Arc<Tokens>,
    audit: AuditLog,
    clock: Clock,
}

const LAST_SEEN_GRANULARITY_S: i64 = 60;

impl Devices {
    /// A service over `store`.
    pub(crate) fn new(store: Store, tokens: Arc<Tokens>, audit: AuditLog, clock: Clock) -> Devices {
        Devices { store, tokens, audit, clock }
    }

    /// The appliance's clock.
    pub(crate) fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// Every device, optionally only one user's (read through the index of
    /// devices by user), newest pairing first.
    pub(crate) fn list(&self, user: Option<&UserId>) -> Result<Vec<Device>, DeviceError> {
        let mut devices: Vec<Device> = match user {
            None => self.store.scan(Table::Devices)?,
            Some(user) => {
                let ids = crate::devices::index::of(&self.store, user)?;
                let found: Vec<Option<Device>> =
                    ids.iter().map(|id| self.store.get(Table::Devices, id)).collect::<Result<_, _>>()?;
                found.into_iter().flatten().filter(|d| &d.user_id == user).collect()
            }
        };
        devices.sort_by_key(|d| std::cmp::Reverse(d.paired_at));
        Ok(devices)
    }

    /// The active devices of `user` among the first `limit` filed under
    /// them, but `except` (a bounded read, whatever the user's count).
    pub(crate) fn some_active(
        &self,
        user: &UserId,
        except: Option<&DeviceId>,
        limit: usize,
    ) -> Result<Vec<Device>, DeviceError> {
        let ids = crate::devices::index::some_of(&self.store, user, limit)?;
        let wanted = |id: &&String| except.is_none_or(|e| e.as_str() != id.as_str());
        let found: Vec<Option<Device>> =
            ids.iter().filter(wanted).map(|id| self.store.get(Table::Devices, id)).collect::<Result<_, _>>()?;
        Ok(found.into_iter().flatten().filter(|d| &d.user_id == user && d.status == DeviceState::Active).collect())
    }

    /// One device.
    pub(crate) fn get(&self, id: &str) -> Result<Device, DeviceError> {
        self.store.get(Table::Devices, id)?.ok_or_else(|| DeviceError::NotFound(id.to_owned()))
    }

    /// Device counts by state (kept by the store; no scan).
    pub(crate) fn count_by_state(&self) -> Result<Vec<(&'static str, i64)>, DeviceError> {
        Ok(crate::devices::counts::read(&self.store)?)
    }

    /// Applies an admin's lifecycle change; repeating a change is harmless.
    pub(crate) async fn change(&self, actor: &Actor, id: &str, change: Change) -> Result<Device, DeviceError> {
        let now = self.clock.now();
        let outcome = self.store.commit(|tx| apply_change(tx, id, change, now)).await.map_err(DeviceError::from);
        let result = outcome.as_ref().map(|_| "ok").unwrap_or_else(|e| e.code());
        self.audit.record(Event::new(actor, change.action(), id, result)).await;
        outcome
    }

    /// Records the number escalations text for device `id` (a QR-paired
    /// phone has none of its own).
    pub(crate) async fn set_number(
        &self,
        actor: &Actor,
        id: &str,
        number: &PhoneNumber,
    ) -> Result<Device, DeviceError> {
        let outcome = self
            .store
            .commit(|tx| {
                let device: Device =
                    tx.get(Table::Devices, id)?.ok_or_else(|| TxAbort::Domain(DeviceError::NotFound(id.into())))?;
                if device.status == DeviceState::Revoked {
                    return Err(TxAbort::Domain(DeviceError::AlreadyRevoked));
                }
                numbers::remember(tx, id, Some(number))?;
                Ok(device)
            })
            .await
            .map_err(DeviceError::from);
        let result = outcome.as_ref().map(|_| "ok").unwrap_or_else(|e| e.code());
        self.audit.record(Event::new(actor, "device.sms_number", format!("{id} {}", number.masked()), result)).await;
        outcome
    }

    /// The number escalations text for device `id`, masked.
    pub(crate) fn masked_number(&self, id: &str) -> Result<Option<String>, DeviceError> {
        Ok(numbers::of(&self.store, id)?.map(|n| n.masked()))
    }

    /// Checks a bearer token: signature, expiry, revocation and device state
    /// (active only).
    pub(crate) fn authenticate(&self, token: Option<&str>) -> Result<Authenticated, DeviceError> {
        let auth = self.authenticate_waiting(token)?;
        match auth.device.status {
            DeviceState::PendingApproval => Err(DeviceError::PendingApproval),
            _ => Ok(auth),
        }
    }

    /// As [`Devices::authenticate`], also admitting a phone that waits for
    /// approval (it may read its own state and nothing else).
    pub(crate) fn authenticate_waiting(&self, token: Option<&str>) -> Result<Authenticated, DeviceError> {
        let claims = self.tokens.verify(token.ok_or(TokenError::Missing)?)?;
        let device: Device = self.store.get(Table::Devices, &claims.device_id)?.ok_or(TokenError::Revoked)?;
        if device.user_id.as_str() != claims.sub || device.fingerprint != claims.fp {
            return Err(TokenError::Revoked.into());
        }
        match device.status {
            DeviceState::Revoked => return Err(DeviceError::Revoked),
            DeviceState::Suspended => return Err(DeviceError::Suspended),
            DeviceState::Active | DeviceState::PendingApproval => {}
        }
        if self.store.contains(Table::RevokedTokens, &claims.jti)? {
            return Err(TokenError::Revoked.into());
        }
        Ok(Authenticated { device, claims })
    }

    /// Notes that a device was seen (at most once a minute, not flushed: a
    /// lost last-seen time is harmless).
    pub(crate) fn touch(&self, auth: &Authenticated) {
        let now = self.clock.now();
        let stale = auth.device.last_seen_at.is_none_or(|t| (now - t).num_seconds() >= LAST_SEEN_GRANULARITY_S);
        if stale {
            self.seen(auth.device.device_id.as_str());
        }
    }

    /// Notes that a device was seen now (presence over MQTT; not flushed).
    pub(crate) fn seen(&self, id: &str) {
        let now = self.clock.now();
        let _ = self.store.commit_unflushed(|tx| {
            let mut device: Device = tx.get::<_, ()>(Table::Devices, id)?.ok_or(TxAbort::Domain(()))?;
            device.last_seen_at = Some(now);
            tx.put(Table::Devices, id, &device)
        });
    }

    /// Forgets revoked token ids whose tokens have expired anyway (a token
    /// past its expiry is refused by its signature check); how many.
    pub(crate) fn prune_revoked_tokens(&self) -> Result<usize, DeviceError> {
        let now = self.clock.now().timestamp();
        let revoked: Vec<(String, i64)> = self.store.scan_keyed(Table::RevokedTokens)?;
        let old: Vec<&String> = revoked.iter().filter(|(_, exp)| *exp < now).map(|(jti, _)| jti).collect();
        self.store.commit_unflushed(|tx| {
            old.iter().try_for_each(|jti| tx.remove::<DeviceError>(Table::RevokedTokens, jti))
        })?;
        Ok(old.len())
    }

    /// Issues a fresh token for an authenticated device and revokes the one
    /// it presented.
    pub(crate) async fn refresh(&self, auth: &Authenticated) -> Result<IssuedToken, DeviceError> {
        let device = &auth.device;
        let issued = self.tokens.issue(&Subject {
            user_id: device.user_id.as_str(),
            device_id: device.device_id.as_str(),
            fingerprint: &device.fingerprint,
        })?;
        let old_jti = auth.claims.jti.clone();
        self.store
            .commit(|tx| {
                let mut current: Device =
                    tx.get(Table::Devices, device.device_id.as_str())?.ok_or(TxAbort::Domain(DeviceError::Revoked))?;
                if current.token_jti != old_jti || tx.get::<i64, _>(Table::RevokedTokens, &old_jti)?.is_some() {
                    return Err(TxAbort::Domain(TokenError::Revoked.into()));
                }
                tx.put(Table::RevokedTokens, &old_jti, &auth.claims.exp)?;
                current.token_jti = issued.claims.jti.clone();
                current.token_expires_at = issued.expires_at;
                tx.put(Table::Devices, device.device_id.as_str(), &current)
            })
            .await?;
        let actor = Actor::Device(device.device_id.to_string());
        self.audit.record(Event::new(&actor, "token.refresh", device.device_id.as_str(), "ok")).await;
        Ok(issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn revoked_token_ids_are_forgotten_once_their_tokens_expire() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = crate::store::datadir::DataDir::open(tmp.path()).unwrap();
        let store = Store::open(&dir.database()).unwrap();
        let clock = Clock::system();
        let tokens =
            Arc::new(Tokens::load_or_create(&dir, std::time::Duration::from_secs(3600), clock.clone()).unwrap());
        let audit = AuditLog::open(&dir.audit_log(), clock.clone()).unwrap();
        let devices = Devices::new(store.clone(), tokens, audit, clock.clone());
        let now = clock.now().timestamp();
        store.insert(Table::RevokedTokens, "expired", &(now - 10)).await.unwrap();
        store.insert(Table::RevokedTokens, "still-valid", &(now + 3600)).await.unwrap();
        assert_eq!(devices.prune_revoked_tokens().unwrap(), 1);
        assert!(!store.contains(Table::RevokedTokens, "expired").unwrap());
        assert!(store.contains(Table::RevokedTokens, "still-valid").unwrap(), "a live token stays revoked");
    }
}
