//! Top Dog appliance: one binary that pairs developers' phones with the Top
//! Dog IDE (SMS link or QR code), keeps the paired devices and their tokens,
//! and serves the HTTPS API. `App` wires the parts together; each folder is
//! one part (the README's "Code map") and each module says what it owns in
//! its own header.
#![forbid(unsafe_code)]

pub mod acme;
pub mod actions;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod devices;
pub mod error;
pub mod hooks;
pub mod http;
pub mod ids;
pub mod licensing;
pub mod limits;
pub mod messaging;
pub mod metrics;
pub mod mqtt;
pub mod pairing;
pub mod people;
pub mod pki;
pub mod proxy;
pub mod push;
pub mod sms;
pub mod store;

pub use app::App;
pub use config::Config;
pub use error::Error;
