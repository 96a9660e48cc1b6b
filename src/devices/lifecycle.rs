//! A device's lifecycle changes (suspend, reactivate, revoke, approve,
//! reject, disown) and the one transaction that applies them: which moves
//! are allowed from which state, the seat a revocation frees, the counts by
//! state and the revoked token id, all in the same transaction as the
//! device.

use super::{Device, DeviceError, DeviceState};
use crate::clock::Timestamp;
use crate::store::{Table, TxAbort};

/// The lifecycle change an admin asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Refuse the device until reactivated.
    Suspend,
    /// Let a suspended device in again.
    Reactivate,
    /// Refuse the device for good.
    Revoke,
    /// Let a phone that waits for approval in.
    Approve,
    /// Refuse a phone that waits for approval (it is revoked).
    Reject,
    /// Revoke a phone its user's other phone says was not theirs.
    Disown,
}

impl Change {
    /// Its audit action.
    pub(super) fn action(self) -> &'static str {
        match self {
            Change::Suspend => "device.suspend",
            Change::Reactivate => "device.reactivate",
            Change::Revoke => "device.revoke",
            Change::Approve => "device.approve",
            Change::Reject => "device.reject",
            Change::Disown => "device.disown",
        }
    }
}

/// Applies `change` to device `id` inside `tx`; the device as it is after.
pub(super) fn apply_change(
    tx: &crate::store::Tx<'_>,
    id: &str,
    change: Change,
    now: Timestamp,
) -> Result<Device, TxAbort<DeviceError>> {
    let mut device: Device =
        tx.get(Table::Devices, id)?.ok_or_else(|| TxAbort::Domain(DeviceError::NotFound(id.into())))?;
    let before = device.status;
    match (change, device.status) {
        (_, DeviceState::Revoked) if !matches!(change, Change::Revoke | Change::Disown) => {
            return Err(TxAbort::Domain(DeviceError::AlreadyRevoked))
        }
        (_, DeviceState::Revoked) => return Ok(device),
        (Change::Suspend | Change::Reactivate, DeviceState::PendingApproval) => {
            return Err(TxAbort::Domain(DeviceError::NotPending("the phone waits for approval; approve or reject it")))
        }
        (Change::Reject, DeviceState::Active | DeviceState::Suspended) => {
            return Err(TxAbort::Domain(DeviceError::NotPending("only a phone waiting for approval can be rejected")))
        }
        (Change::Approve, DeviceState::Suspended) => {
            return Err(TxAbort::Domain(DeviceError::NotPending("the phone is suspended; reactivate it")))
        }
        (Change::Suspend, DeviceState::Active) => {
            device.status = DeviceState::Suspended;
            device.suspended_at = Some(now);
        }
        (Change::Reactivate, DeviceState::Suspended) | (Change::Approve, DeviceState::PendingApproval) => {
            device.status = DeviceState::Active
        }
        (Change::Revoke | Change::Reject | Change::Disown, _) => {
            crate::licensing::seats::release(tx, &device.user_id)?;
            device.status = DeviceState::Revoked;
            device.revoked_at = Some(now);
            tx.put(Table::RevokedTokens, &device.token_jti, &device.token_expires_at.timestamp())?;
        }
        _ => return Ok(device),
    }
    crate::devices::counts::adjust(tx, Some(before), device.status)?;
    tx.put(Table::Devices, id, &device)?;
    Ok(device)
}
