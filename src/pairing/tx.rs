//! The pairing transactions: accept (OTP check, one-time use, seat), resend
//! (new expiry) and expiry marking, each run inside one store transaction.

use super::{Invite, InviteKind, InviteStatus, PairingError};
use crate::clock::Timestamp;
use crate::devices::{Device, DeviceState};
use crate::ids::InviteCode;
use crate::licensing::{seats, Licensing};
use crate::store::{Table, Tx, TxAbort};
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Wrong OTPs allowed before the QR token is cancelled.
pub(super) const MAX_OTP_FAILURES: u32 = 5;

pub(super) fn hash_otp(otp: &str) -> String {
    hex::encode(Sha256::digest(otp.as_bytes()))
}

pub(super) fn new_otp() -> String {
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32))
}

/// The transaction of a resend: a pending or expired SMS invite gets a new
/// expiry.
pub(super) fn renew_in(
    tx: &Tx<'_>,
    code: &InviteCode,
    now: Timestamp,
    ttl: chrono::Duration,
) -> Result<Invite, TxAbort<PairingError>> {
    let mut invite = get_invite(tx, code)?;
    if invite.kind != InviteKind::Sms {
        return Err(TxAbort::Domain(PairingError::NotSms));
    }
    match invite.effective_status(now) {
        InviteStatus::Pending | InviteStatus::Expired => {}
        InviteStatus::Accepted => return Err(TxAbort::Domain(PairingError::AlreadyAccepted)),
        InviteStatus::Cancelled => return Err(TxAbort::Domain(PairingError::Cancelled)),
    }
    invite.status = InviteStatus::Pending;
    invite.expires_at = now + ttl;
    invite.expired_at = None;
    invite.sends += 1;
    tx.put(Table::Invites, &code.key().0, &invite)?;
    Ok(invite)
}

pub(super) fn get_invite(tx: &Tx<'_>, code: &InviteCode) -> Result<Invite, TxAbort<PairingError>> {
    tx.get(Table::Invites, &code.key().0)?.ok_or(TxAbort::Domain(PairingError::NotFound))
}

/// Everything [`accept_in`] reads (`device.user_id`: the invite's user as
/// read before the transaction; should it differ, the seat is read when
/// taken).
pub(super) fn accept_reads(code: &InviteCode, device: &Device) -> Vec<(Table, String)> {
    let mut reads = vec![(Table::Invites, code.key().0), (Table::Devices, device.device_id.to_string())];
    reads.push(crate::devices::counts::record(device.status));
    reads.extend(seats::records(&device.user_id));
    reads.extend(crate::licensing::limit_records());
    reads
}

/// What an accept stored.
pub(super) struct Stored {
    pub invite: Invite,
    pub device: Device,
    /// The user's other phones not revoked, as its seat counted them.
    pub others: u32,
}

/// The transaction of an accept: the invite and the device as stored, the
/// seat taken within the license's limit as the transaction reads it. An
/// OTP failure is counted (committed) and reported as the inner error.
pub(super) fn accept_in(
    tx: &Tx<'_>,
    code: &InviteCode,
    otp: Option<&str>,
    device: &Device,
    now: Timestamp,
    licensing: &Licensing,
) -> Result<Result<Stored, PairingError>, TxAbort<PairingError>> {
    let key = code.key().0;
    let mut invite = get_invite(tx, code)?;
    invite.acceptable(now).map_err(TxAbort::Domain)?;
    if let Some(expected) = &invite.otp_hash {
        let Some(given) = otp else {
            return Err(TxAbort::Domain(PairingError::OtpRequired));
        };
        if !bool::from(hash_otp(given.trim()).as_bytes().ct_eq(expected.as_bytes())) {
            invite.otp_failures += 1;
            if invite.otp_failures >= MAX_OTP_FAILURES {
                invite.status = InviteStatus::Cancelled;
                invite.cancelled_at = Some(now);
            }
            tx.put(Table::Invites, &key, &invite)?;
            return Ok(Err(PairingError::OtpInvalid));
        }
    }
    let existing = tx.get::<Device, _>(Table::Devices, device.device_id.as_str())?;
    if existing.as_ref().is_some_and(|e| e.status != DeviceState::Revoked) {
        return Err(TxAbort::Domain(PairingError::DeviceExists(device.device_id.to_string())));
    }
    crate::devices::counts::adjust(tx, existing.as_ref().map(|e| e.status), device.status)?;
    let others = seats::take(tx, &invite.user_id, licensing.seat_limit_in(tx)?)?;
    invite.status = InviteStatus::Accepted;
    invite.accepted_at = Some(now);
    invite.device_id = Some(device.device_id.clone());
    let mut device = device.clone();
    device.user_id = invite.user_id.clone();
    device.user_name = invite.user_name.clone();
    tx.put(Table::Invites, &key, &invite)?;
    crate::devices::index::file(tx, existing.as_ref(), &device)?;
    tx.put(Table::Devices, device.device_id.as_str(), &device)?;
    crate::devices::numbers::remember(tx, device.device_id.as_str(), invite.phone.as_ref())?;
    Ok(Ok(Stored { invite, device, others }))
}

/// Marks one invite expired if it is still pending and past its expiry.
pub(super) fn expire_in(tx: &Tx<'_>, key: &str, now: Timestamp) -> Result<Option<InviteKind>, TxAbort<PairingError>> {
    let Some(mut invite) = tx.get::<Invite, _>(Table::Invites, key)? else {
        return Ok(None);
    };
    if invite.status != InviteStatus::Pending || invite.expires_at > now {
        return Ok(None);
    }
    invite.status = InviteStatus::Expired;
    invite.expired_at = Some(now);
    tx.put(Table::Invites, key, &invite)?;
    Ok(Some(invite.kind))
}
