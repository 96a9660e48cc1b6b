//! Why an API token was refused or not made, each with its API code.

use super::{Scope, MAX_TOKENS};
use crate::clock::Timestamp;
use crate::error::{Coded, Kind};
use crate::store::{StoreError, TxError};

/// Why a token was refused or not made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiTokenError {
    /// No such token, or a revoked one.
    #[error("the API token is not valid (revoked, or never issued)")]
    Unknown,
    /// The token's time is up.
    #[error("the API token expired at {0}")]
    Expired(Timestamp),
    /// The token lacks the scope this route needs.
    #[error("this API token lacks the `{}` scope this needs", .0.as_str())]
    OutOfScope(Scope),
    /// Only the admin token (or the local socket) may do this.
    #[error(
        "only the admin token or the local admin socket may do this (backups, console sign-in); API tokens cannot"
    )]
    AdminOnly,
    /// The token is limited to users that do not include this one.
    #[error("this API token may not reach user `{0}`")]
    NotForUser(String),
    /// A bad request to create one.
    #[error("{0}")]
    Invalid(String),
    /// A token of this name exists.
    #[error("a token named `{0}` exists; revoke it first or choose another name")]
    Exists(String),
    /// As many tokens as the appliance keeps.
    #[error("the appliance keeps at most {MAX_TOKENS} API tokens; revoke some first")]
    Full,
    /// No token of this name.
    #[error("no API token is named `{0}`")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for ApiTokenError {
    fn coded(&self) -> (&'static str, Kind) {
        match self {
            ApiTokenError::Unknown => ("api_token_invalid", Kind::Unauthenticated),
            ApiTokenError::Expired(_) => ("api_token_expired", Kind::Unauthenticated),
            ApiTokenError::OutOfScope(_) | ApiTokenError::AdminOnly | ApiTokenError::NotForUser(_) => {
                ("token_scope", Kind::Forbidden)
            }
            ApiTokenError::Invalid(_) => ("invalid_token_request", Kind::Invalid),
            ApiTokenError::Exists(_) => ("token_exists", Kind::Conflict),
            ApiTokenError::Full => ("token_limit", Kind::Conflict),
            ApiTokenError::NotFound(_) => ("token_not_found", Kind::NotFound),
            ApiTokenError::Store(_) => ("internal", Kind::Internal),
        }
    }
}

impl From<TxError<ApiTokenError>> for ApiTokenError {
    fn from(e: TxError<ApiTokenError>) -> Self {
        match e {
            TxError::Domain(e) => e,
            TxError::Store(e) => ApiTokenError::Store(e),
        }
    }
}
