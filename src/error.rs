//! The crate-wide error: every domain module's error converts into it, and
//! the http layer maps it to a status code and `{"error", "detail"}` in one
//! place (`http::errors`).

use crate::auth::admin::AdminError;
use crate::auth::tokens::TokenError;
use crate::devices::DeviceError;
use crate::limits::RateLimited;
use crate::pairing::PairingError;
use crate::store::StoreError;

/// Any error an API request can end in.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Pairing refused or failed.
    #[error(transparent)]
    Pairing(#[from] PairingError),
    /// A device operation refused or failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Admin authentication failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// A license operation failed.
    #[error(transparent)]
    Licensing(#[from] crate::licensing::LicensingError),
    /// A notification, approval or command refused or failed.
    #[error(transparent)]
    Messaging(#[from] crate::messaging::MessagingError),
    /// Over a rate limit.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// The request itself is malformed (body, query, headers).
    #[error("{detail}")]
    BadRequest {
        /// Machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        detail: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something else failed inside the appliance.
    #[error("{0}")]
    Internal(String),
}

impl From<crate::auth::sessions::SessionError> for Error {
    fn from(e: crate::auth::sessions::SessionError) -> Self {
        Error::Admin(AdminError::Session(e))
    }
}

impl From<TokenError> for Error {
    fn from(e: TokenError) -> Self {
        Error::Device(DeviceError::Token(e))
    }
}
