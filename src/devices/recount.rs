//! The recount at start-up of everything derived from the devices: each
//! user's seat, the devices by state, and each device filed under its user;
//! so these always match the devices, whatever version wrote them.

use super::{Device, DeviceState};
use crate::licensing::seats;
use crate::store::{Store, StoreError, Table};
use std::collections::BTreeMap;
use std::convert::Infallible;

/// Recounts from the devices, in one transaction.
pub(crate) async fn rebuild(store: &Store) -> Result<(), StoreError> {
    let devices: Vec<Device> = store.scan(Table::Devices)?;
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for device in devices.iter().filter(|d| d.status != DeviceState::Revoked) {
        *counts.entry(device.user_id.to_string()).or_default() += 1;
    }
    let by_state: Vec<(DeviceState, i64)> = super::counts::STATES
        .into_iter()
        .map(|s| (s, devices.iter().filter(|d| d.status == s).count() as i64))
        .collect();
    let holders = seats::holders(store)?;
    let stale_index = super::index::all_keys(store)?;
    let outcome = store
        .commit(|tx| {
            seats::reset::<Infallible>(tx, &holders, &counts)?;
            super::counts::set::<Infallible>(tx, &by_state)?;
            super::index::rebuild::<Infallible>(tx, &stale_index, &devices)
        })
        .await;
    outcome.map_err(StoreError::from)
}
