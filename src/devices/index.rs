//! Devices by user: one store record `{user}/{device}` per paired device,
//! written in the same transaction as the device, so finding a user's
//! phones (every notify and approval) reads that user's records instead of
//! every device. Rebuilt at start-up with the seat counts.

use crate::devices::Device;
use crate::ids::UserId;
use crate::store::{Store, StoreError, Table, Tx, TxAbort};

fn key(user: &str, device: &str) -> String {
    format!("{user}/{device}")
}

/// Files `device` under its user, and no longer under `previous` (the user
/// of an earlier pairing of the same id).
pub(crate) fn file<E>(tx: &Tx<'_>, previous: Option<&Device>, device: &Device) -> Result<(), TxAbort<E>> {
    if let Some(old) = previous.filter(|old| old.user_id != device.user_id) {
        tx.remove(Table::UserDevices, &key(old.user_id.as_str(), old.device_id.as_str()))?;
    }
    tx.put(Table::UserDevices, &key(device.user_id.as_str(), device.device_id.as_str()), &())
}

/// The ids of `user`'s devices (any state).
pub(crate) fn of(store: &Store, user: &UserId) -> Result<Vec<String>, StoreError> {
    some_of(store, user, usize::MAX)
}

/// The ids of at most `limit` of `user`'s devices (any state; in id order).
pub(crate) fn some_of(store: &Store, user: &UserId, limit: usize) -> Result<Vec<String>, StoreError> {
    let prefix = format!("{user}/");
    let filed: Vec<(String, ())> = store.scan_prefix(Table::UserDevices, &prefix, None, limit)?;
    Ok(filed.into_iter().map(|(k, ())| k[prefix.len()..].to_owned()).collect())
}

/// Files every device afresh (at start-up), forgetting entries in `stale`.
pub(crate) fn rebuild<E>(tx: &Tx<'_>, stale: &[String], devices: &[Device]) -> Result<(), TxAbort<E>> {
    stale.iter().try_for_each(|k| tx.remove(Table::UserDevices, k))?;
    devices.iter().try_for_each(|d| tx.put(Table::UserDevices, &key(d.user_id.as_str(), d.device_id.as_str()), &()))
}

/// Every entry's key (for `rebuild`).
pub(crate) fn all_keys(store: &Store) -> Result<Vec<String>, StoreError> {
    Ok(store.scan_keyed::<()>(Table::UserDevices)?.into_iter().map(|(k, ())| k).collect())
}
