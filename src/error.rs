//! The crate-wide error: every domain module's error converts into it.
//! Each error type says, in one match beside its definition, its API code
//! and its kind (`Coded`); the http layer only turns a kind into a status
//! (`http::errors`).

use crate::auth::admin::AdminError;
use crate::auth::tokens::TokenError;
use crate::devices::DeviceError;
use crate::limits::RateLimited;
use crate::pairing::PairingError;
use crate::store::StoreError;

/// What sort of failure an error is; the http layer gives each a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The request is wrong (400).
    Invalid,
    /// No credential, or one that is not accepted (401).
    Unauthenticated,
    /// A credential that may not do this (403).
    Forbidden,
    /// No such thing (404).
    NotFound,
    /// The thing is not in a state that allows it (409).
    Conflict,
    /// The thing existed and is gone (410).
    Gone,
    /// Every seat of the license is taken (402).
    SeatsExhausted,
    /// Over a budget or queue; try again later (429).
    Busy,
    /// A service outside the appliance failed (502).
    Upstream,
    /// The appliance failed (500; the cause is logged, not sent).
    Internal,
}

/// An error that knows its API code and kind.
pub(crate) trait Coded {
    /// The API code and the kind, from one match.
    fn coded(&self) -> (&'static str, Kind);

    /// The API code (`{"error": code}`, audit lines, metric labels).
    fn code(&self) -> &'static str {
        self.coded().0
    }

    /// The kind.
    fn kind(&self) -> Kind {
        self.coded().1
    }
}

/// Any error an API request can end in.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
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
    /// A push subscription refused or failed.
    #[error(transparent)]
    Push(#[from] crate::push::PushError),
    /// An API token refused, or a token operation failed.
    #[error(transparent)]
    ApiToken(#[from] crate::auth::api_tokens::ApiTokenError),
    /// A webhook delivery refused.
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    /// A sign-in through the identity provider refused or failed.
    #[error(transparent)]
    Oidc(#[from] crate::auth::oidc::OidcError),
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
    /// Something else failed inside the appliance (the cause is logged
    /// with the request id, never sent).
    #[error(transparent)]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// An internal failure caused by `cause`.
    pub(crate) fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Internal(cause.into())
    }
}

impl Coded for Error {
    fn coded(&self) -> (&'static str, Kind) {
        match self {
            Error::Pairing(e) => e.coded(),
            Error::Device(e) => e.coded(),
            Error::Admin(e) => e.coded(),
            Error::Licensing(e) => e.coded(),
            Error::Messaging(e) => e.coded(),
            Error::Push(e) => e.coded(),
            Error::ApiToken(e) => e.coded(),
            Error::Hook(e) => e.coded(),
            Error::Oidc(e) => e.coded(),
            Error::RateLimited(e) => e.coded(),
            Error::BadRequest { code, .. } => (code, Kind::Invalid),
            Error::Store(_) | Error::Internal(_) => ("internal", Kind::Internal),
        }
    }
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
