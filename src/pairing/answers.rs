//! What the pairing service answers and logs about an invite: its view
//! for status calls, the send-sms answer, and the audit's action, outcome
//! and masked code.

use super::{Invite, InviteStatus, InviteView, PairingError, SendSmsResponse};
use crate::clock::Timestamp;
use crate::error::Coded;
use crate::ids::InviteCode;
use crate::sms::number::PhoneNumber;

/// A safe-to-log form of whatever code a client sent.
pub(super) fn hint_of(raw_code: &str) -> String {
    InviteCode::parse(raw_code).map(|c| c.masked()).unwrap_or_else(|_| "(malformed code)".into())
}

pub(super) fn accept_action<T>(result: &Result<T, PairingError>) -> &'static str {
    if result.is_ok() {
        "invite.accept"
    } else {
        "invite.reject"
    }
}

pub(super) fn outcome<T>(result: &Result<T, PairingError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

pub(super) fn view(code: &InviteCode, invite: &Invite, now: Timestamp) -> InviteView {
    let status = invite.effective_status(now);
    InviteView {
        invite_code: code.as_str().to_owned(),
        status,
        expires_at: invite.expires_at,
        is_expired: status == InviteStatus::Expired,
        is_valid: status == InviteStatus::Pending,
    }
}

pub(super) fn sms_answer(code: &InviteCode, invite: &Invite, phone: &PhoneNumber, what: &str) -> SendSmsResponse {
    SendSmsResponse {
        invite_code: code.as_str().to_owned(),
        phone_number: phone.masked(),
        expires_at: invite.expires_at,
        status: InviteStatus::Pending,
        message: format!("{what} to {}", phone.masked()),
    }
}
