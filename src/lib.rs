//! Top Dog appliance: one binary that pairs developers' phones with the Top
//! Dog IDE (SMS link or QR code), keeps the paired devices and their tokens,
//! and serves the HTTPS API. `App` wires the parts together; each folder is
//! one part (the README's "Code map") and each module says what it owns in
//! its own header.
#![forbid(unsafe_code)]
// Crate-private by default: public only what the binary's `main`, the tests
// and the benchmarks use (the modules marked `pub` below, and in them only
// what those reach); everything else is `pub(crate)`.
#![warn(unreachable_pub)]

mod acme;
pub mod actions;
pub mod app;
mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
mod cluster;
pub mod config;
mod devices;
mod error;
mod hooks;
pub mod http;
mod ids;
pub mod licensing;
mod limits;
pub mod messaging;
mod metrics;
mod mqtt;
mod pairing;
mod people;
pub mod pki;
mod proxy;
mod push;
pub mod sms;
pub mod store;

pub use app::App;
pub use config::Config;
