//! The messages nodes send each other through the shared store's channel
//! (PostgreSQL's `NOTIFY` carries at most 8,000 bytes: a message too large
//! to carry is replaced by a replay of the device's notifications).

use crate::clock::Timestamp;
use crate::mqtt::topics::Kind;
use serde::{Deserialize, Serialize};

/// The most JSON a [`Relay::Publish`] carries.
pub(crate) const MAX_CARRIED: usize = 7000;

/// What one node tells the others.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Relay {
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
    /// What the leading node's ACME client tells the others.
    Acme {
        /// What happened.
        news: AcmeNews,
    },
    /// An item that escalates if unseen was made: the leading node watches
    /// it.
    Watch {
        /// The item.
        item: Item,
        /// When it was made.
        at: Timestamp,
    },
}

/// What escalation watches: an approval request or a priority-5
/// notification, by id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub(crate) enum Item {
    /// An approval request.
    Approval(String),
    /// A priority-5 notification.
    Notification(String),
}

/// What the leading node's ACME client tells the others (the CA may reach
/// any node; each serves the certificate the leader stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "acme", rename_all = "snake_case")]
pub(crate) enum AcmeNews {
    /// Answer this HTTP-01 challenge too.
    Http01 {
        /// The challenge's token.
        token: String,
        /// Its answer.
        key_authorization: String,
    },
    /// Answer this TLS-ALPN-01 challenge too, with a validation
    /// certificate of one's own carrying `digest`.
    TlsAlpn01 {
        /// The name validated.
        name: String,
        /// The SHA-256 of the key authorization, hex.
        digest: String,
    },
    /// The order ended: answer no more.
    Closed,
    /// A certificate was issued and stored: serve it.
    Issued,
}
