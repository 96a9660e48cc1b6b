//! Seat accounting: a seat is a user with at least one paired device that is
//! not revoked. The store keeps each user's device count and the total of
//! users with a seat, changed in the same transaction as the devices, so two
//! racing pairings can never take more seats than the license has.

use crate::devices::{Device, DeviceState};
use crate::ids::UserId;
use crate::store::{Store, StoreError, Table, Tx, TxAbort};
use std::collections::BTreeMap;
use std::convert::Infallible;

const USED: &str = "seats_used";

/// Every seat is taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("all {limit} seats are in use; revoke a device or add seats to the license")]
pub struct SeatLimit {
    /// The seat count of the license.
    pub limit: u32,
}

/// Counts one more device for `user`, taking a seat if it had none.
pub fn take<E: From<SeatLimit>>(tx: &Tx<'_>, user: &UserId, limit: u32) -> Result<(), TxAbort<E>> {
    let count: u32 = tx.get(Table::Seats, user.as_str())?.unwrap_or(0);
    if count == 0 {
        let used: u32 = tx.get(Table::Meta, USED)?.unwrap_or(0);
        if used >= limit {
            return Err(TxAbort::Domain(SeatLimit { limit }.into()));
        }
        tx.put(Table::Meta, USED, &(used + 1))?;
    }
    tx.put(Table::Seats, user.as_str(), &(count + 1))
}

/// Counts one device fewer for `user`, freeing its seat at zero.
pub fn release<E>(tx: &Tx<'_>, user: &UserId) -> Result<(), TxAbort<E>> {
    let count: u32 = tx.get(Table::Seats, user.as_str())?.unwrap_or(0);
    match count {
        0 => Ok(()),
        1 => {
            let used: u32 = tx.get(Table::Meta, USED)?.unwrap_or(1);
            tx.put(Table::Meta, USED, &used.saturating_sub(1))?;
            tx.remove(Table::Seats, user.as_str())
        }
        n => tx.put(Table::Seats, user.as_str(), &(n - 1)),
    }
}

/// Seats in use.
pub fn used(store: &Store) -> Result<u32, StoreError> {
    Ok(store.get(Table::Meta, USED)?.unwrap_or(0))
}

/// Whether `user` already has a seat.
pub fn has_seat(store: &Store, user: &UserId) -> Result<bool, StoreError> {
    Ok(store.get::<u32>(Table::Seats, user.as_str())?.unwrap_or(0) > 0)
}

/// Whether a new pairing for `user` fits within `limit`.
pub fn check(store: &Store, user: &UserId, limit: u32) -> Result<(), CheckError> {
    if has_seat(store, user)? || used(store)? < limit {
        Ok(())
    } else {
        Err(CheckError::Limit(SeatLimit { limit }))
    }
}

/// Why `check` said no.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// No seat left.
    #[error(transparent)]
    Limit(#[from] SeatLimit),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Recounts every seat (and the devices by state, and files each device
/// under its user) from the devices (at start-up, so these always match the
/// devices, whatever version wrote them).
pub async fn rebuild(store: &Store) -> Result<(), StoreError> {
    let devices: Vec<Device> = store.scan(Table::Devices)?;
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for device in devices.iter().filter(|d| d.status != DeviceState::Revoked) {
        *counts.entry(device.user_id.to_string()).or_default() += 1;
    }
    let by_state: Vec<(DeviceState, i64)> = crate::devices::counts::STATES
        .into_iter()
        .map(|s| (s, devices.iter().filter(|d| d.status == s).count() as i64))
        .collect();
    let stale: Vec<String> = store.scan_keyed::<u32>(Table::Seats)?.into_iter().map(|(k, _)| k).collect();
    let stale_index = crate::devices::index::all_keys(store)?;
    let outcome = store
        .commit(|tx| {
            for user in &stale {
                tx.remove::<Infallible>(Table::Seats, user)?;
            }
            for (user, count) in &counts {
                tx.put::<_, Infallible>(Table::Seats, user, count)?;
            }
            crate::devices::counts::set::<Infallible>(tx, &by_state)?;
            crate::devices::index::rebuild::<Infallible>(tx, &stale_index, &devices)?;
            tx.put::<_, Infallible>(Table::Meta, USED, &(counts.len() as u32))
        })
        .await;
    outcome.map_err(StoreError::from)
}
