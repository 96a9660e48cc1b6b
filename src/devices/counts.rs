//! Devices counted by state, kept in the store and changed in the same
//! transaction as the device, so `/metrics` and `/admin/status` read three
//! numbers instead of scanning every device. Recounted at start-up.

use crate::devices::DeviceState;
use crate::store::{Store, StoreError, Table, Tx, TxAbort};

/// Every state, in the order they are reported.
pub(crate) const STATES: [DeviceState; 4] =
    [DeviceState::Active, DeviceState::PendingApproval, DeviceState::Suspended, DeviceState::Revoked];

fn key(state: DeviceState) -> String {
    format!("devices_{}", state.as_str())
}

/// The record `adjust` reads to count a new device in state `to` (to read
/// it ahead).
pub(crate) fn record(to: DeviceState) -> (Table, String) {
    (Table::Meta, key(to))
}

/// Moves one device from `from` (none: a new device) to `to`.
pub(crate) fn adjust<E>(tx: &Tx<'_>, from: Option<DeviceState>, to: DeviceState) -> Result<(), TxAbort<E>> {
    if from == Some(to) {
        return Ok(());
    }
    if let Some(from) = from {
        let n: i64 = tx.get(Table::Meta, &key(from))?.unwrap_or(0);
        tx.put(Table::Meta, &key(from), &(n - 1).max(0))?;
    }
    let n: i64 = tx.get(Table::Meta, &key(to))?.unwrap_or(0);
    tx.put(Table::Meta, &key(to), &(n + 1))
}

/// Sets every count (at start-up, from a scan of the devices).
pub(crate) fn set<E>(tx: &Tx<'_>, counts: &[(DeviceState, i64)]) -> Result<(), TxAbort<E>> {
    STATES.iter().try_for_each(|state| {
        let n = counts.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
        tx.put(Table::Meta, &key(*state), &n)
    })
}

/// Devices by state.
pub(crate) fn read(store: &Store) -> Result<Vec<(&'static str, i64)>, StoreError> {
    STATES.iter().map(|s| Ok((s.as_str(), store.get(Table::Meta, &key(*s))?.unwrap_or(0)))).collect()
}
