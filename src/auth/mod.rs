//! Who may do what: the admin token, scoped API tokens, console sessions,
//! device tokens (JWT) and the signing key behind them.

pub(crate) mod admin;
pub(crate) mod api_tokens;
pub(crate) mod jwt;
pub(crate) mod oidc;
pub(crate) mod sessions;
pub mod tokens;
