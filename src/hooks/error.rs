//! Why a webhook delivery was refused.

use crate::error::{Coded, Kind};
use crate::store::{StoreError, TxError};

/// Why a webhook delivery was refused or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HookError {
    /// No such hook in `hooks.toml` (or no `hooks.toml`).
    #[error("no `{0}` hook is configured in hooks.toml")]
    NotConfigured(String),
    /// A header the sender always sends is missing.
    #[error("the delivery lacks its {0} header")]
    MissingHeader(&'static str),
    /// A signature or token header is missing.
    #[error("the delivery lacks its {0} header")]
    Unsigned(&'static str),
    /// The signature or token does not match the hook's secret.
    #[error("the delivery's signature does not match this hook's secret")]
    BadSignature,
    /// The signed timestamp is too far from the appliance's clock.
    #[error("the delivery's timestamp is more than {0} s away from the appliance's clock")]
    Stale(i64),
    /// A delivery id that was already handled.
    #[error("delivery {0} was already handled")]
    Replayed(String),
    /// The body is not what the event should carry.
    #[error("the payload is not a valid {0} event: {1}")]
    Payload(&'static str, String),
    /// Nobody in `hooks.toml` is the event's actor.
    #[error("none of {0} is mapped to a user in hooks.toml")]
    Unmapped(String),
    /// The user named is not one this hook may notify.
    #[error("this hook may not notify user `{0}`")]
    UserNotAllowed(String),
    /// The notification it maps to was refused (no phone, bad words).
    #[error(transparent)]
    Notify(#[from] crate::messaging::MessagingError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for HookError {
    fn coded(&self) -> (&'static str, Kind) {
        match self {
            HookError::NotConfigured(_) => ("hook_not_configured", Kind::NotFound),
            HookError::MissingHeader(_) => ("hook_header_missing", Kind::Invalid),
            HookError::Unsigned(_) => ("hook_signature_missing", Kind::Unauthenticated),
            HookError::BadSignature => ("hook_signature_invalid", Kind::Unauthenticated),
            HookError::Stale(_) => ("hook_timestamp_stale", Kind::Unauthenticated),
            HookError::Replayed(_) => ("hook_replayed", Kind::Conflict),
            HookError::Payload(..) => ("hook_payload_invalid", Kind::Invalid),
            HookError::Unmapped(_) => ("hook_user_unmapped", Kind::Invalid),
            HookError::UserNotAllowed(_) => ("hook_user_not_allowed", Kind::Forbidden),
            HookError::Notify(e) => e.coded(),
            HookError::Store(_) => ("internal", Kind::Internal),
        }
    }
}

impl From<TxError<HookError>> for HookError {
    fn from(e: TxError<HookError>) -> Self {
        match e {
            TxError::Domain(e) => e,
            TxError::Store(e) => HookError::Store(e),
        }
    }
}
