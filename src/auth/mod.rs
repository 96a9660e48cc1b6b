//! Who may do what: the admin token, scoped API tokens, console sessions,
//! device tokens (JWT) and the signing key behind them.

pub mod admin;
pub mod api_tokens;
pub mod jwt;
pub mod oidc;
pub mod sessions;
pub mod tokens;
