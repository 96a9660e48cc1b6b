//! The phone number each device was paired with (by SMS), kept apart from
//! the device record so that no API answer carries it whole: escalations
//! text it, the device list shows it masked. A QR-paired phone has none
//! unless an admin records one; a new pairing of the id replaces it.

use crate::sms::number::PhoneNumber;
use crate::store::{Store, StoreError, Table, Tx, TxAbort};

/// Records (or forgets) the number `device` was paired with, in the
/// pairing's transaction.
pub(crate) fn remember<E>(tx: &Tx<'_>, device: &str, number: Option<&PhoneNumber>) -> Result<(), TxAbort<E>> {
    match number {
        Some(n) => tx.put(Table::DeviceNumbers, device, &n.e164().to_owned()),
        None => tx.remove(Table::DeviceNumbers, device),
    }
}

/// The number `device` was paired with.
pub(crate) fn of(store: &Store, device: &str) -> Result<Option<PhoneNumber>, StoreError> {
    let stored: Option<String> = store.get(Table::DeviceNumbers, device)?;
    Ok(stored.and_then(|n| PhoneNumber::parse(&n).ok()))
}
