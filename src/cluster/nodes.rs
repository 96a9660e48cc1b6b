//! Each node's heartbeat in the store (its addresses, how many phones it
//! holds, when it last beat), listed by `GET /admin/status`; a node whose
//! heartbeat is older than [`ALIVE_WITHIN`] is shown as gone.

use crate::clock::{Clock, Timestamp};
use crate::store::{Store, StoreError, Table};
use serde::{Deserialize, Serialize};

/// How often a node beats.
pub(crate) const EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// A node that has not beaten for this long is gone.
pub(crate) const ALIVE_WITHIN: chrono::TimeDelta = chrono::TimeDelta::seconds(15);
/// Gone nodes are forgotten after this long.
const FORGET_AFTER: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// One node as its heartbeat left it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Node {
    /// Its name.
    pub name: String,
    /// Its API's address.
    pub api_url: String,
    /// Its MQTT listener's address.
    pub mqtt_url: String,
    /// Phones connected to it.
    pub phones: usize,
    /// Whether it runs the background work.
    pub leading: bool,
    /// When it started.
    pub started_at: Timestamp,
    /// Its last heartbeat.
    pub heartbeat_at: Timestamp,
    /// Whether it beat within [`ALIVE_WITHIN`] (set when listed).
    #[serde(default)]
    pub alive: bool,
}

/// The nodes' heartbeats (cheap to clone).
#[derive(Clone)]
pub(crate) struct Nodes {
    store: Store,
    clock: Clock,
}

impl Nodes {
    /// The heartbeats in `store`.
    pub(crate) fn new(store: Store, clock: Clock) -> Nodes {
        Nodes { store, clock }
    }

    /// Records `node`'s heartbeat now.
    pub(crate) async fn beat(&self, mut node: Node) -> Result<(), StoreError> {
        node.heartbeat_at = self.clock.now();
        self.store.insert(Table::Nodes, &node.name.clone(), &node).await
    }

    /// Every node heard from within a day, alive ones first, by name.
    pub(crate) fn list(&self) -> Result<Vec<Node>, StoreError> {
        let now = self.clock.now();
        let mut nodes: Vec<Node> = self.store.scan(Table::Nodes)?;
        nodes.retain(|n| now - n.heartbeat_at < FORGET_AFTER);
        nodes.iter_mut().for_each(|n| n.alive = now - n.heartbeat_at < ALIVE_WITHIN);
        nodes.sort_by(|a, b| b.alive.cmp(&a.alive).then_with(|| a.name.cmp(&b.name)));
        Ok(nodes)
    }
}
