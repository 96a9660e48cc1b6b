//! The store this node opens (the data directory's sled database, or the
//! PostgreSQL one several nodes share) and this node's part among the
//! nodes sharing it: acting on what the others tell it, and its heartbeat.

use crate::audit::AuditLog;
use crate::cluster::nodes::{self, Node};
use crate::cluster::{Cluster, Envelope, Relay};
use crate::config::Config;
use crate::http::State;
use crate::store::datadir::DataDir;
use crate::store::Store;
use anyhow::Context as _;
use std::sync::Arc;
use tokio::sync::watch;

/// The store: the data directory's sled database, or the shared
/// PostgreSQL one when a database URL is set.
pub(super) async fn open_store(config: &Config, dir: &DataDir) -> anyhow::Result<Store> {
    let Some(database) = &config.database else {
        return Store::open(&dir.database()).context("database");
    };
    let ca = match &database.ca_cert {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let tls = crate::pki::tls::client(ca.as_deref()).context("TLS for the database")?;
    let connection = crate::store::Connection { url: database.url.0.clone(), tls };
    Store::connect(&connection).await.context("PostgreSQL database (--database-url)")
}

/// The audit log: the data directory's file, or the one the nodes keep in
/// the shared store.
pub(super) fn open_audit(store: &Store, dir: &DataDir, clock: &crate::clock::Clock) -> anyhow::Result<AuditLog> {
    if store.is_shared() {
        return Ok(AuditLog::shared(store.clone(), clock.clone()));
    }
    AuditLog::open(&dir.audit_log(), clock.clone()).context("audit log")
}

/// Acts on what the other nodes tell this one until `stop`.
pub(super) async fn hear(state: Arc<State>, mut stop: watch::Receiver<bool>) {
    let Some(mut heard) = state.cluster.heard() else { return };
    loop {
        let payload = tokio::select! {
            payload = heard.recv() => payload,
            _ = stop.changed() => return,
        };
        let Some(payload) = payload else { return };
        if payload.is_empty() {
            tracing::warn!("messages from other nodes may have been missed; phones get them on their next replay");
            catch_up(&state);
            continue;
        }
        match serde_json::from_str::<Envelope>(&payload) {
            Ok(envelope) if envelope.from == state.cluster.instance() => {}
            Ok(envelope) => act(&state, envelope.relay).await,
            Err(e) => tracing::warn!(error = %e, "a message from another node could not be read"),
        }
    }
}

/// What this node does when it may have missed messages: the leader picks
/// up again what waits to escalate, and the certificate the leader stored
/// is served if it is newer.
fn catch_up(state: &State) {
    if let Err(e) = state.messaging.escalation.pick_up() {
        tracing::error!(error = %e, "could not pick up the items waiting to escalate");
    }
    if let Some(acme) = &state.acme {
        acme.heard(&crate::cluster::relay::AcmeNews::Issued);
    }
}

async fn act(state: &State, relay: Relay) {
    let messaging = &state.messaging;
    match relay {
        Relay::Publish { user, device, kind, id, json } => {
            messaging.delivery.relayed(&user, &device, kind, &id, &json).await;
        }
        Relay::CutOff { device } => messaging.delivery.cut_off_here(&device),
        Relay::Decided { id } => messaging.approvals.decided_elsewhere(&id),
        Relay::Watch { item, at } => messaging.escalation.watch_here(item, at),
        Relay::Acme { news } => {
            if let Some(acme) = &state.acme {
                acme.heard(&news);
            }
        }
        Relay::Replay { device } if state.gateway.holds(&device) => {
            let replayed = match state.devices.get(&device) {
                Ok(device) => {
                    messaging.notifications.replay(&device, None).await.map(|_| ()).map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = replayed {
                tracing::warn!(error = %e, device, "could not replay to a phone another node wrote to");
            }
        }
        Relay::Replay { .. } => {}
    }
}

/// This node's heartbeat, every [`nodes::EVERY`], until `stop`.
pub(super) async fn beat(state: Arc<State>, mut node: Node, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(nodes::EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        node.phones = state.gateway.connected();
        node.leading = state.cluster.leading();
        if let Err(e) = state.nodes.beat(node.clone()).await {
            tracing::warn!(error = %e, "could not record this node's heartbeat");
        }
    }
}

/// This node as its first heartbeat shows it.
pub(super) fn this_node(cluster: &Cluster, api_url: &str, mqtt_url: &str, now: crate::clock::Timestamp) -> Node {
    Node {
        name: cluster.node().to_owned(),
        api_url: api_url.to_owned(),
        mqtt_url: mqtt_url.to_owned(),
        phones: 0,
        leading: cluster.leading(),
        started_at: now,
        heartbeat_at: now,
        alive: true,
    }
}
