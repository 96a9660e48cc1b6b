//! Wall-clock time for the domain modules, in one place so that every
//! timestamp the appliance writes has the same type and format.

use chrono::{DateTime, Utc};

/// A point in time, UTC, serialised as RFC 3339.
pub type Timestamp = DateTime<Utc>;

/// The current time.
pub fn now() -> Timestamp {
    Utc::now()
}

/// Converts a `std::time::Duration` into a chrono duration, saturating.
pub fn span(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
