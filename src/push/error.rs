//! Why a push subscription was refused.

use crate::error::{Coded, Kind};
use crate::store::{StoreError, TxError};

/// Why a push subscription was refused or could not be kept.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    /// The endpoint is not one the appliance sends to.
    #[error("endpoint {0}")]
    Endpoint(String),
    /// The subscription's keys are not a P-256 point and a 16-byte secret.
    #[error("keys: {0}")]
    Keys(&'static str),
    /// The device holds as many subscriptions as it may.
    #[error("this phone already has {0} push subscriptions; remove one first")]
    Full(usize),
    /// No such subscription of this phone.
    #[error("this phone has no push subscription with this endpoint")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for PushError {
    fn coded(&self) -> (&'static str, Kind) {
        match self {
            PushError::Endpoint(_) => ("push_endpoint_refused", Kind::Invalid),
            PushError::Keys(_) => ("push_keys_invalid", Kind::Invalid),
            PushError::Full(_) => ("push_subscriptions_full", Kind::Conflict),
            PushError::NotFound => ("push_subscription_not_found", Kind::NotFound),
            PushError::Store(_) => ("internal", Kind::Internal),
        }
    }
}

impl From<TxError<PushError>> for PushError {
    fn from(e: TxError<PushError>) -> Self {
        match e {
            TxError::Domain(e) => e,
            TxError::Store(e) => PushError::Store(e),
        }
    }
}
