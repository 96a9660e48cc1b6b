//! Why a messaging request (notify, approvals, commands) was refused.

use crate::devices::DeviceError;
use crate::error::{Coded, Kind};
use crate::store::{StoreError, TxError};

/// Why a messaging request was refused.
#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    /// A field failed validation.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The user has no active paired phone.
    #[error("user {0} has no active paired phone")]
    NoActiveDevices(String),
    /// The named device cannot receive it.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// No such approval (for this phone).
    #[error("no approval with this id")]
    ApprovalNotFound,
    /// No such notification.
    #[error("no notification with this id")]
    NotificationNotFound,
    /// The pairing an alert is about has already ended.
    #[error("that pairing has already ended")]
    PairingEnded,
    /// This phone may not answer this approval.
    #[error("this phone is not among the approval's approvers")]
    NotApprover,
    /// Somebody answered first.
    #[error("the approval was already answered ({0})")]
    AlreadyDecided(&'static str),
    /// Too late.
    #[error("the approval has expired")]
    ApprovalExpired,
    /// The number does not match the requester's.
    #[error("the number does not match the one shown to the requester")]
    WrongCode,
    /// The phone sent commands faster than its budget.
    #[error(transparent)]
    RateLimited(#[from] crate::limits::RateLimited),
    /// The device holds its whole share of live event streams.
    #[error("this phone already has {0} live event streams open; close one first")]
    TooManyStreams(usize),
    /// Too many commands are already waiting to run.
    #[error("{0} commands are already waiting to run; try again when one has finished")]
    QueueFull(usize),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TxError<MessagingError>> for MessagingError {
    fn from(e: TxError<MessagingError>) -> Self {
        match e {
            TxError::Domain(e) => e,
            TxError::Store(e) => MessagingError::Store(e),
        }
    }
}

impl MessagingError {
    /// A field error.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> MessagingError {
        MessagingError::Invalid { field, reason: reason.into() }
    }
}

impl Coded for MessagingError {
    fn coded(&self) -> (&'static str, Kind) {
        match self {
            MessagingError::Invalid { .. } => ("invalid_field", Kind::Invalid),
            MessagingError::Device(d) => d.coded(),
            MessagingError::NoActiveDevices(_) => ("no_active_devices", Kind::NotFound),
            MessagingError::ApprovalNotFound => ("approval_not_found", Kind::NotFound),
            MessagingError::NotificationNotFound => ("notification_not_found", Kind::NotFound),
            MessagingError::PairingEnded => ("pairing_ended", Kind::Gone),
            MessagingError::NotApprover => ("approval_not_allowed", Kind::Forbidden),
            MessagingError::WrongCode => ("approval_code_mismatch", Kind::Forbidden),
            MessagingError::AlreadyDecided(_) => ("approval_already_decided", Kind::Conflict),
            MessagingError::ApprovalExpired => ("approval_expired", Kind::Gone),
            MessagingError::RateLimited(_) => ("rate_limited", Kind::Busy),
            MessagingError::QueueFull(_) => ("command_queue_full", Kind::Busy),
            MessagingError::TooManyStreams(_) => ("too_many_streams", Kind::Busy),
            MessagingError::Store(_) => ("internal", Kind::Internal),
        }
    }
}
