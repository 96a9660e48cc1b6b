//! Top Dog appliance: one binary that pairs developers' phones with the Top
//! Dog IDE (SMS link or QR code), keeps the paired devices and their tokens,
//! and serves the HTTPS API. `App` wires the parts together; each module owns
//! one part and says so in its own header.
#![forbid(unsafe_code)]

pub mod actions;
pub mod admin;
pub mod app;
pub mod audit;
pub mod backup;
pub mod broker;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod conn_limits;
pub mod datadir;
pub mod device_counts;
pub mod device_index;
pub mod devices;
pub mod error;
pub mod gateway;
pub mod http;
pub mod ids;
pub mod jwt_crypto;
pub mod license;
pub mod licensing;
pub mod limits;
pub mod messaging;
pub mod metrics;
pub mod pairing;
pub mod phone;
pub mod pki;
pub mod qr;
pub mod quickack;
pub mod seats;
pub mod sessions;
pub mod sms;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod upgrade;

pub use app::App;
pub use config::Config;
pub use error::Error;
