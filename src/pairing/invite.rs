//! The invite record: how it reaches the phone, its state, and the session
//! timestamps kept for every invite (stored under the SHA-256 of its code).

use super::PairingError;
use crate::clock::Timestamp;
use crate::ids::{DeviceId, DisplayName, UserId};
use crate::sms::number::PhoneNumber;
use serde::{Deserialize, Serialize};

/// How an invite reaches the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum InviteKind {
    /// A link by SMS.
    Sms,
    /// A QR code shown by the IDE or console.
    Qr,
}

impl InviteKind {
    pub(super) fn label(self) -> &'static str {
        match self {
            InviteKind::Sms => "sms",
            InviteKind::Qr => "qr",
        }
    }
}

/// An invite's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum InviteStatus {
    /// Waiting for the phone.
    Pending,
    /// Used by a phone.
    Accepted,
    /// Past its expiry unused.
    Expired,
    /// Withdrawn by an admin (or after too many wrong OTPs).
    Cancelled,
}

/// An invite and its pairing session, as stored (under the code's hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Invite {
    /// SMS or QR.
    pub kind: InviteKind,
    /// First characters of the code, for logs.
    pub hint: String,
    /// The user being paired.
    pub user_id: UserId,
    /// The user's display name.
    pub user_name: DisplayName,
    /// The number the SMS went to.
    pub phone: Option<PhoneNumber>,
    /// Stored state (`effective_status` also applies the expiry).
    pub status: InviteStatus,
    /// Created.
    pub created_at: Timestamp,
    /// Expires.
    pub expires_at: Timestamp,
    /// Accepted.
    pub accepted_at: Option<Timestamp>,
    /// Cancelled.
    pub cancelled_at: Option<Timestamp>,
    /// Marked expired.
    pub expired_at: Option<Timestamp>,
    /// The device that accepted it.
    pub device_id: Option<DeviceId>,
    /// SHA-256 of the OTP, when one is required.
    pub otp_hash: Option<String>,
    /// Wrong OTPs so far.
    pub otp_failures: u32,
    /// SMS sent so far.
    pub sends: u32,
}

impl Invite {
    /// The status with the expiry applied at `now`.
    pub(crate) fn effective_status(&self, now: Timestamp) -> InviteStatus {
        match self.status {
            InviteStatus::Pending if now >= self.expires_at => InviteStatus::Expired,
            status => status,
        }
    }

    pub(super) fn acceptable(&self, now: Timestamp) -> Result<(), PairingError> {
        match self.effective_status(now) {
            InviteStatus::Pending => Ok(()),
            InviteStatus::Accepted => Err(PairingError::AlreadyAccepted),
            InviteStatus::Expired => Err(PairingError::Expired),
            InviteStatus::Cancelled => Err(PairingError::Cancelled),
        }
    }
}
