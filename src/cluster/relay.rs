//! The messages nodes send each other through the shared store's channel
//! (PostgreSQL's `NOTIFY` carries at most 8,000 bytes: a message too large
//! to carry is replaced by a replay of the device's notifications).

use crate::mqtt::topics::Kind;
use serde::{Deserialize, Serialize};

/// The most JSON a [`Relay::Publish`] carries.
pub const MAX_CARRIED: usize = 7000;

/// What one node tells the others.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Relay {
    /// Publish `json` to the device, if its connection is on this node.
    Publish {
        /// The device's user.
        user: String,
        /// The device.
        device: String,
        /// The message's type.
        kind: Kind,
        /// The message's id.
        id: String,
        /// The message.
        json: String,
    },
    /// Send the device what it missed (a message too large to carry).
    Replay {
        /// The device.
        device: String,
    },
    /// Close the device's connection once its `control` message passed.
    CutOff {
        /// The device.
        device: String,
    },
    /// An approval was decided: wake whoever waits on it.
    Decided {
        /// The approval.
        id: String,
    },
}
