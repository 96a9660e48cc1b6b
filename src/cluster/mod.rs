//! Several nodes acting as one appliance on a shared PostgreSQL store: what
//! one node tells the others (a message to publish to a phone connected
//! elsewhere, a phone to cut off, an approval decided), whether this node
//! runs the background work now (one node at a time), and each node's
//! heartbeat. On the embedded store there is one node: telling is a no-op
//! and this node always leads.

pub(crate) mod nodes;
pub(crate) mod relay;

use crate::store::{Leadership, Store};
pub(crate) use relay::Relay;
use serde::{Deserialize, Serialize};

/// What crosses between nodes: who sent it, and what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Envelope {
    /// The node process that sent it (its instance, not its name: two
    /// nodes given one name still hear each other).
    pub from: String,
    /// What it says.
    #[serde(flatten)]
    pub relay: Relay,
}

/// This node's place among the nodes (cheap to clone).
#[derive(Clone)]
pub(crate) struct Cluster {
    store: Store,
    node: String,
    instance: String,
    leadership: Leadership,
}

impl Cluster {
    /// This node, named `node`, on `store`.
    pub(crate) fn new(store: Store, node: String) -> Cluster {
        let leadership = store.leadership();
        let instance = format!("{:016x}", rand::random::<u64>());
        Cluster { store, node, instance, leadership }
    }

    /// This node process (a new one at every start).
    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    /// This node's name.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// Whether other nodes may hold phones (the store is shared).
    pub(crate) fn is_shared(&self) -> bool {
        self.store.is_shared()
    }

    /// Tells the other nodes `relay` (nothing to do on one's own store). A
    /// failure is logged: the phone gets what it missed on its next replay.
    pub(crate) async fn tell(&self, relay: Relay) {
        if !self.store.is_shared() {
            return;
        }
        let envelope = Envelope { from: self.instance.clone(), relay };
        let payload = match serde_json::to_string(&envelope) {
            Ok(payload) => payload,
            Err(e) => return tracing::error!(error = %e, "could not encode a message for the other nodes"),
        };
        if let Err(e) = self.store.announce(&payload).await {
            tracing::error!(error = %e, "could not tell the other nodes");
        }
    }

    /// What the nodes tell (None on one's own store), this node's own
    /// messages included; an empty one stands for "some may have been
    /// missed" (the channel was lost and found again).
    pub(crate) fn heard(&self) -> Option<tokio::sync::mpsc::Receiver<String>> {
        self.store.listen()
    }

    /// Whether this node runs the background work now.
    pub(crate) fn leading(&self) -> bool {
        *self.leadership.borrow()
    }

    /// Whether this node runs the background work, to wait on changes (on
    /// one's own store it is always true, and never changes).
    pub(crate) fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }
}
