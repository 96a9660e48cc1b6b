//! Who may do what: the admin token, console sessions, device tokens (JWT)
//! and the signing key behind them.

pub mod admin;
pub mod jwt;
pub mod sessions;
pub mod tokens;
