//! Why a sign-in through the OpenID provider did not succeed.

use crate::error::{Coded, Kind};

/// Why a sign-in did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OidcError {
    /// Single sign-on is not configured.
    #[error("sign-in with the company's identity provider is not set up on this appliance")]
    NotConfigured,
    /// The callback carried no `state`, or one this browser did not start.
    #[error("this sign-in was not started here, or has already been used; start again")]
    UnknownState,
    /// The sign-in took longer than allowed.
    #[error("this sign-in took too long; start again")]
    Expired,
    /// The provider answered the sign-in with an error.
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The provider could not be reached or answered nonsense.
    #[error("the identity provider could not be reached: {0}")]
    Provider(String),
    /// The code could not be exchanged (unknown, used before, wrong verifier).
    #[error("the identity provider did not accept the sign-in code: {0}")]
    Exchange(String),
    /// The ID token failed a check (signature, issuer, audience, expiry, nonce).
    #[error("the identity provider's ID token was not accepted: {0}")]
    IdToken(String),
    /// The person's user id claim is missing or not a valid user id.
    #[error("{0}")]
    UserId(String),
    /// The person is in neither the admin nor the developer group.
    #[error("{0} is in neither the admin nor the developer group of this appliance")]
    NoRole(String),
    /// Too many sign-ins are under way.
    #[error("too many sign-ins are under way; try again in a minute")]
    Busy,
}

impl Coded for OidcError {
    fn coded(&self) -> (&'static str, Kind) {
        match self {
            OidcError::NotConfigured => ("oidc_not_configured", Kind::NotFound),
            OidcError::UnknownState => ("oidc_state_invalid", Kind::Invalid),
            OidcError::Expired => ("oidc_state_expired", Kind::Invalid),
            OidcError::Refused(_) => ("oidc_refused", Kind::Unauthenticated),
            OidcError::Provider(_) => ("oidc_provider_unavailable", Kind::Upstream),
            OidcError::Exchange(_) => ("oidc_code_invalid", Kind::Unauthenticated),
            OidcError::IdToken(_) => ("oidc_id_token_invalid", Kind::Unauthenticated),
            OidcError::UserId(_) => ("oidc_user_id_invalid", Kind::Forbidden),
            OidcError::NoRole(_) => ("oidc_no_role", Kind::Forbidden),
            OidcError::Busy => ("rate_limited", Kind::Busy),
        }
    }
}

/// An error's message followed by its causes' ("error sending request:
/// connection closed before message completed"), for `Provider`: an
/// HTTP client's own message alone rarely says what went wrong.
pub(super) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}
