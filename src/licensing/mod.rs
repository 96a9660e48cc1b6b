//! The appliance's own license: activation (checked offline and stored),
//! its status with the seats in use, the seat limit pairing enforces (one
//! seat without a valid license), and the clock's high-water mark that
//! catches a clock set back.

pub mod key;
pub(crate) mod seats;

use crate::audit::{Actor, AuditLog, Event};
use crate::clock::{Clock, Timestamp};
use crate::error::{Coded, Kind};
use crate::store::{Store, StoreError, Table, Tx, TxAbort};
use key::{Context, ExpiryKind, LicenseError, Payload, VendorKeys};
use serde::Serialize;
use std::sync::{Arc, Mutex};

const LICENSE: &str = "license";
const HIGH_WATER: &str = "clock_high_water";
/// Seats without a license.
pub(crate) const UNLICENSED_SEATS: u32 = 1;

/// Why a license operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LicensingError {
    /// The key was refused.
    #[error(transparent)]
    License(#[from] LicenseError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for LicensingError {
    fn coded(&self) -> (&'static str, Kind) {
        match self {
            LicensingError::License(l) => (l.code(), Kind::Invalid),
            LicensingError::Store(_) => ("internal", Kind::Internal),
        }
    }
}

/// What `GET /admin/license` answers.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LicenseStatus {
    /// `licensed`, `unlicensed` or `expired` (which also covers a clock set back).
    pub(crate) state: &'static str,
    /// Why the license does not apply, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// The license's id.
    pub(crate) license_id: Option<String>,
    /// The customer.
    pub(crate) customer: Option<String>,
    /// Seats that apply now.
    pub(crate) seats: u32,
    /// Seats in use.
    pub(crate) seats_used: u32,
    /// Expiry date, if any.
    pub(crate) expires_at: Option<chrono::NaiveDate>,
    /// What the expiry limits.
    pub(crate) expiry_kind: Option<ExpiryKind>,
    /// Whole days until the license expires.
    pub(crate) days_left: Option<i64>,
    /// Whether the license is bound to this machine.
    pub(crate) machine_bound: bool,
}

/// The licensing service.
#[derive(Clone)]
pub(crate) struct Licensing {
    store: Store,
    trusted: Arc<VendorKeys>,
    audit: AuditLog,
    machine: Option<String>,
    clock: Clock,
    /// The stored key last verified, with its payload: the signature is
    /// checked once per key, not at every pairing.
    verified: Arc<Mutex<Option<(String, Payload)>>>,
}

impl Licensing {
    /// A service trusting `trusted`.
    pub(crate) fn new(store: Store, trusted: VendorKeys, audit: AuditLog, clock: Clock) -> Licensing {
        let (trusted, machine, verified) = (Arc::new(trusted), key::machine_fingerprint(), Arc::default());
        Licensing { store, trusted, audit, machine, clock, verified }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn context(&self) -> Result<Context, StoreError> {
        Ok(self.context_at(self.store.get(Table::Meta, HIGH_WATER)?))
    }

    fn context_at(&self, high_water: Option<Timestamp>) -> Context {
        Context { now: self.now(), high_water, build_date: key::build_date(), machine: self.machine.clone() }
    }

    /// Raises the clock's high-water mark to now (never lowers it).
    pub(crate) async fn observe_clock(&self) -> Result<(), StoreError> {
        let now = self.now();
        let seen: Option<Timestamp> = self.store.get(Table::Meta, HIGH_WATER)?;
        if seen.is_none_or(|t| now > t) {
            self.store.insert(Table::Meta, HIGH_WATER, &now).await?;
        }
        Ok(())
    }

    /// Checks and stores a license key.
    pub(crate) async fn activate(&self, actor: &Actor, key: &str) -> Result<LicenseStatus, LicensingError> {
        let ctx = self.context()?;
        let checked = key::verify(key, &self.trusted).and_then(|p| key::check(&p, &ctx).map(|()| p));
        let target = checked.as_ref().map(|p| p.license_id.clone()).unwrap_or_else(|_| "(refused key)".into());
        let result = checked.as_ref().map(|_| "ok").unwrap_or_else(|e| e.code());
        self.audit.record(Event::new(actor, "license.activate", target, result)).await;
        checked?;
        let compact: String = key.chars().filter(|c| !c.is_whitespace()).collect();
        self.store.insert(Table::Meta, LICENSE, &compact).await?;
        Ok(self.status()?)
    }

    fn stored(&self) -> Result<Option<Payload>, StoreError> {
        Ok(self.verified(self.store.get::<String>(Table::Meta, LICENSE)?))
    }

    /// The payload of `key` if its signature holds (checked once per key).
    fn verified(&self, key: Option<String>) -> Option<Payload> {
        let key = key?;
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, payload)) = verified.as_ref().filter(|(known, _)| *known == key) {
            return Some(payload.clone());
        }
        let payload = key::verify(&key, &self.trusted).ok();
        *verified = payload.clone().map(|p| (key, p));
        payload
    }

    /// The license's state and the seats in use.
    pub(crate) fn status(&self) -> Result<LicenseStatus, StoreError> {
        let seats_used = seats::used(&self.store)?;
        let Some(payload) = self.stored()? else {
            return Ok(LicenseStatus {
                state: "unlicensed",
                reason: None,
                license_id: None,
                customer: None,
                seats: UNLICENSED_SEATS,
                seats_used,
                expires_at: None,
                expiry_kind: None,
                days_left: None,
                machine_bound: false,
            });
        };
        let ctx = self.context()?;
        let verdict = key::check(&payload, &ctx);
        let applies = verdict.is_ok();
        let days_left = payload.expires.map(|d| (d - ctx.now.date_naive()).num_days());
        Ok(LicenseStatus {
            state: if applies { "licensed" } else { "expired" },
            reason: verdict.err().map(|e| e.to_string()),
            seats: if applies { payload.seats } else { UNLICENSED_SEATS },
            seats_used,
            license_id: Some(payload.license_id),
            customer: Some(payload.customer),
            expires_at: payload.expires,
            expiry_kind: payload.expires.map(|_| payload.expiry_kind),
            days_left,
            machine_bound: payload.machine.is_some(),
        })
    }

    /// The number of seats pairing may fill now: the license's while it
    /// applies, otherwise [`UNLICENSED_SEATS`].
    pub(crate) fn seat_limit(&self) -> Result<u32, StoreError> {
        let (key, high_water) = (self.store.get(Table::Meta, LICENSE)?, self.store.get(Table::Meta, HIGH_WATER)?);
        Ok(self.limit(key, high_water))
    }

    /// [`Licensing::seat_limit`] as transaction `tx` sees it (reading
    /// [`limit_records`], which a transaction may read ahead).
    pub(crate) fn seat_limit_in<E>(&self, tx: &Tx<'_>) -> Result<u32, TxAbort<E>> {
        Ok(self.limit(tx.get(Table::Meta, LICENSE)?, tx.get(Table::Meta, HIGH_WATER)?))
    }

    fn limit(&self, key: Option<String>, high_water: Option<Timestamp>) -> u32 {
        let Some(payload) = self.verified(key) else { return UNLICENSED_SEATS };
        let applies = key::check(&payload, &self.context_at(high_water)).is_ok();
        if applies {
            payload.seats
        } else {
            UNLICENSED_SEATS
        }
    }
}

/// The records the seat limit is read from.
pub(crate) fn limit_records() -> [(Table, String); 2] {
    [(Table::Meta, LICENSE.to_owned()), (Table::Meta, HIGH_WATER.to_owned())]
}
