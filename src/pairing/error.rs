//! Why a pairing request was refused, and the API code of each reason.

use super::qr;
use crate::auth::tokens::TokenError;
use crate::error::{Coded, Kind};
use crate::ids::InvalidId;
use crate::licensing::seats::SeatLimit;
use crate::sms::number::PhoneError;
use crate::sms::SmsError;
use crate::store::{StoreError, TxError};

/// Why a pairing request was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PairingError {
    /// A field failed validation.
    #[error(transparent)]
    Invalid(#[from] InvalidId),
    /// The phone number was refused.
    #[error(transparent)]
    Phone(#[from] PhoneError),
    /// No invite has this code.
    #[error("no invite with this code")]
    NotFound,
    /// The invite has expired.
    #[error("the invite has expired; ask for a new one")]
    Expired,
    /// The invite was already used.
    #[error("the invite has already been used")]
    AlreadyAccepted,
    /// The invite was cancelled.
    #[error("the invite was cancelled")]
    Cancelled,
    /// A QR pairing without its OTP.
    #[error("this pairing needs the 6-digit code shown next to the QR code")]
    OtpRequired,
    /// A wrong OTP.
    #[error("the 6-digit code is wrong")]
    OtpInvalid,
    /// A device with this id is already paired.
    #[error("a device with id {0} is already paired; revoke it first")]
    DeviceExists(String),
    /// The certificate request could not be used.
    #[error("mqtt_csr: not a PEM certificate request with a valid signature")]
    BadCsr,
    /// Only SMS invites can be resent.
    #[error("only SMS invites can be resent")]
    NotSms,
    /// The SMS could not be sent; the invite stays pending.
    #[error("{source}; the invite stays pending and can be resent")]
    Sms {
        /// The provider's error.
        source: SmsError,
        /// The invite's code, so that the admin can resend it.
        code: String,
    },
    /// Every seat of the license is taken.
    #[error(transparent)]
    SeatLimit(#[from] SeatLimit),
    /// The phone's certificate could not be made.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// The QR code could not be drawn.
    #[error(transparent)]
    Qr(#[from] qr::QrError),
    /// Signing the token failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TxError<PairingError>> for PairingError {
    fn from(e: TxError<PairingError>) -> Self {
        match e {
            TxError::Domain(e) => e,
            TxError::Store(e) => PairingError::Store(e),
        }
    }
}

impl Coded for PairingError {
    fn coded(&self) -> (&'static str, Kind) {
        match self {
            PairingError::Invalid(_) => ("invalid_field", Kind::Invalid),
            PairingError::BadCsr => ("invalid_csr", Kind::Invalid),
            PairingError::Phone(PhoneError::Invalid) => ("invalid_phone_number", Kind::Invalid),
            PairingError::Phone(PhoneError::CountryNotAllowed(_)) => ("country_not_allowed", Kind::Invalid),
            PairingError::OtpRequired => ("otp_required", Kind::Invalid),
            PairingError::OtpInvalid => ("otp_invalid", Kind::Forbidden),
            PairingError::NotFound => ("invite_not_found", Kind::NotFound),
            PairingError::Expired => ("invite_expired", Kind::Gone),
            PairingError::AlreadyAccepted => ("invite_already_used", Kind::Conflict),
            PairingError::Cancelled => ("invite_cancelled", Kind::Conflict),
            PairingError::DeviceExists(_) => ("device_exists", Kind::Conflict),
            PairingError::NotSms => ("not_an_sms_invite", Kind::Conflict),
            PairingError::Sms { .. } => ("sms_failed", Kind::Upstream),
            PairingError::SeatLimit(_) => ("seat_limit", Kind::SeatsExhausted),
            PairingError::Qr(_) | PairingError::Token(_) | PairingError::Store(_) | PairingError::Pki(_) => {
                ("internal", Kind::Internal)
            }
        }
    }
}
