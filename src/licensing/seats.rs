//! Seat accounting: a seat is a user with at least one paired device that is
//! not revoked. The store keeps each user's device count and the total of
//! users with a seat, changed in the same transaction as the devices, so two
//! racing pairings can never take more seats than the license has.

use crate::ids::UserId;
use crate::store::{Store, StoreError, Table, Tx, TxAbort};
use std::collections::BTreeMap;

const USED: &str = "seats_used";

/// Every seat is taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("all {limit} seats are in use; revoke a device or add seats to the license")]
pub(crate) struct SeatLimit {
    /// The seat count of the license.
    pub limit: u32,
}

/// The records `take` reads for `user` (to read them ahead).
pub(crate) fn records(user: &UserId) -> [(Table, String); 2] {
    [(Table::Seats, user.as_str().to_owned()), (Table::Meta, USED.to_owned())]
}

/// Counts one more device for `user`, taking a seat if it had none; how
/// many it had before.
pub(crate) fn take<E: From<SeatLimit>>(tx: &Tx<'_>, user: &UserId, limit: u32) -> Result<u32, TxAbort<E>> {
    let count: u32 = tx.get(Table::Seats, user.as_str())?.unwrap_or(0);
    if count == 0 {
        let used: u32 = tx.get(Table::Meta, USED)?.unwrap_or(0);
        if used >= limit {
            return Err(TxAbort::Domain(SeatLimit { limit }.into()));
        }
        tx.put(Table::Meta, USED, &(used + 1))?;
    }
    tx.put(Table::Seats, user.as_str(), &(count + 1))?;
    Ok(count)
}

/// Counts one device fewer for `user`, freeing its seat at zero.
pub(crate) fn release<E>(tx: &Tx<'_>, user: &UserId) -> Result<(), TxAbort<E>> {
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
pub(crate) fn used(store: &Store) -> Result<u32, StoreError> {
    Ok(store.get(Table::Meta, USED)?.unwrap_or(0))
}

/// Whether `user` already has a seat.
pub(crate) fn has_seat(store: &Store, user: &UserId) -> Result<bool, StoreError> {
    Ok(store.get::<u32>(Table::Seats, user.as_str())?.unwrap_or(0) > 0)
}

/// Whether a new pairing for `user` fits within `limit`.
pub(crate) fn check(store: &Store, user: &UserId, limit: u32) -> Result<(), CheckError> {
    if has_seat(store, user)? || used(store)? < limit {
        Ok(())
    } else {
        Err(CheckError::Limit(SeatLimit { limit }))
    }
}

/// Why `check` said no.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckError {
    /// No seat left.
    #[error(transparent)]
    Limit(#[from] SeatLimit),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Users holding a seat now (for a recount).
pub(crate) fn holders(store: &Store) -> Result<Vec<String>, StoreError> {
    Ok(store.scan_keyed::<u32>(Table::Seats)?.into_iter().map(|(k, _)| k).collect())
}

/// Sets every seat from a recount: `holders` (as found before) lose
/// theirs, then each user in `counts` holds one with that many devices.
pub(crate) fn reset<E>(tx: &Tx<'_>, holders: &[String], counts: &BTreeMap<String, u32>) -> Result<(), TxAbort<E>> {
    for user in holders {
        tx.remove(Table::Seats, user)?;
    }
    for (user, count) in counts {
        tx.put(Table::Seats, user, count)?;
    }
    tx.put(Table::Meta, USED, &(counts.len() as u32))
}
