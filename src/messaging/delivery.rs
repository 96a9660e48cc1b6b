//! Sends appliance → phone messages: published on the device's topic through
//! the broker's in-process link, handed to the device's live event streams
//! (the web app's SSE) and, unless it is a resend to a phone that just came
//! back, pushed to its Web Push subscriptions; on a shared store, the other
//! nodes are told too, and the one holding the phone publishes it. Counts
//! them, and closes a device's MQTT connection after telling it why.

use super::wire::{self, Outbound};
use crate::clock::Clock;
use crate::cluster::relay::{Relay, MAX_CARRIED};
use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::mqtt::broker::Link;
use crate::mqtt::gateway::Gateway;
use crate::push::Push;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;

/// A message for one device's live event streams.
#[derive(Debug, Clone)]
pub(crate) struct LiveEvent {
    /// The device.
    pub device_id: String,
    /// The message's type.
    pub kind: wire::Kind,
    /// The message's id.
    pub id: String,
    /// The JSON.
    pub json: Arc<str>,
}

/// Live event streams one device may hold at once.
pub(crate) const MAX_STREAMS: usize = 4;

/// One open event stream of a device, counted until dropped.
pub(crate) struct StreamSlot {
    streams: Arc<Mutex<HashMap<String, usize>>>,
    device: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = streams.get_mut(&self.device) {
            *n -= 1;
            if *n == 0 {
                streams.remove(&self.device);
            }
        }
    }
}

/// How long a device being cut off has for its `control` message to pass
/// before its connection is closed anyway.
const CONTROL_DEADLINE: Duration = Duration::from_secs(2);

/// What the sender needs.
pub(crate) struct Parts {
    /// The broker's in-process link.
    pub link: Link,
    /// The gateway (which connections are subscribed; cut-offs).
    pub gateway: Gateway,
    /// Web Push.
    pub push: Push,
    /// How long notifications are kept (their push TTL).
    pub retention: Duration,
    /// Counts messages.
    pub metrics: Metrics,
    /// Runs the cut-off deadlines.
    pub tasks: TaskTracker,
    /// The clock.
    pub clock: Clock,
    /// Notes what reached a phone.
    pub receipts: super::receipts::Receipts,
    /// The other nodes.
    pub cluster: Cluster,
}

/// The sender (cheap to clone).
#[derive(Clone)]
pub(crate) struct Delivery {
    parts: Arc<Parts>,
    live: broadcast::Sender<LiveEvent>,
    streams: Arc<Mutex<HashMap<String, usize>>>,
}

impl Delivery {
    /// A sender from its parts.
    pub(crate) fn new(parts: Parts) -> Delivery {
        Delivery { parts: Arc::new(parts), live: broadcast::channel(4096).0, streams: Arc::default() }
    }

    /// Sends `message` to a device, live and by Web Push; the device's live
    /// MQTT connection that was subscribed to its notifications when the
    /// message was published (and so gets it), if any.
    pub(crate) async fn send(&self, user_id: &str, device_id: &str, message: &Outbound) -> Option<u64> {
        let (connection, json) = self.send_live_json(user_id, device_id, message).await?;
        let pushed = super::pushed::push_of(message, &json, self.parts.clock.now(), self.parts.retention);
        let always = matches!(message, Outbound::Control(_));
        self.parts.push.send(device_id, always, pushed);
        connection
    }

    /// Sends `message` to a device's live connections only (a resend to a
    /// phone that just came back); like [`Delivery::send`] otherwise.
    pub(crate) async fn send_live(&self, user_id: &str, device_id: &str, message: &Outbound) -> Option<u64> {
        self.send_live_json(user_id, device_id, message).await.and_then(|(connection, _)| connection)
    }

    /// Publishes and streams `message` here and tells the other nodes: the
    /// connection it reached here, and its JSON (None when it could not be
    /// encoded).
    async fn send_live_json(
        &self,
        user_id: &str,
        device_id: &str,
        message: &Outbound,
    ) -> Option<(Option<u64>, String)> {
        let kind = message.kind();
        let json = match serde_json::to_string(message) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(error = %e, "could not encode a message");
                return None;
            }
        };
        let id = message.id().to_owned();
        let connection = self.publish_here(user_id, device_id, kind, &id, &json).await;
        if self.parts.cluster.is_shared() {
            let (user, device) = (user_id.to_owned(), device_id.to_owned());
            let relay = match json.len() <= MAX_CARRIED {
                true => Relay::Publish { user, device, kind, id, json: json.clone() },
                false => Relay::Replay { device },
            };
            self.parts.cluster.tell(relay).await;
        }
        Some((connection, json))
    }

    /// Publishes and streams a message another node sent, if the device is
    /// connected here (by MQTT or an event stream).
    pub(crate) async fn relayed(&self, user_id: &str, device_id: &str, kind: wire::Kind, id: &str, json: &str) {
        if self.parts.gateway.holds(device_id) || self.streams_open(device_id) {
            self.publish_here(user_id, device_id, kind, id, json).await;
        }
    }

    /// Publishes `json` to the device's topic on this node's broker and
    /// hands it to its event streams here: the connection it reached.
    async fn publish_here(
        &self,
        user_id: &str,
        device_id: &str,
        kind: wire::Kind,
        id: &str,
        json: &str,
    ) -> Option<u64> {
        let settled = self.parts.gateway.settled(device_id).await;
        let topic = wire::topic(user_id, device_id, kind);
        if let Err(e) = self.parts.link.publish(&topic, json.as_bytes().to_vec()).await {
            tracing::error!(error = %e, device = device_id, "could not publish to the broker");
        }
        let subscribed = settled.connection;
        drop(settled);
        let tracked = matches!(kind, wire::Kind::Notification | wire::Kind::ApprovalRequest);
        if tracked && (subscribed.is_some() || self.streams_open(device_id)) {
            self.parts.receipts.reached(device_id, id, super::receipts::Step::Delivered);
        }
        let event = LiveEvent { device_id: device_id.to_owned(), kind, id: id.to_owned(), json: json.into() };
        let _ = self.live.send(event);
        self.parts.metrics.message(false, kind.as_str());
        subscribed
    }

    /// The device's live connection subscribed to its notifications (once
    /// none of its SUBSCRIBEs is on its way).
    pub(crate) async fn subscribed_connection(&self, device_id: &str) -> Option<u64> {
        self.parts.gateway.settled(device_id).await.connection
    }

    fn streams_open(&self, device: &str) -> bool {
        self.streams.lock().unwrap_or_else(|p| p.into_inner()).contains_key(device)
    }

    /// Counts a new live event stream of `device`; None when it holds
    /// [`MAX_STREAMS`] already.
    pub(crate) fn open_stream(&self, device: &str) -> Option<StreamSlot> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let open = streams.entry(device.to_owned()).or_default();
        if *open >= MAX_STREAMS {
            return None;
        }
        *open += 1;
        Some(StreamSlot { streams: self.streams.clone(), device: device.to_owned() })
    }

    /// A receiver of every live event (filter by device).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }

    /// Sends `message` (a `control`) and then closes the device's MQTT
    /// connections: each as soon as the message has passed to the phone,
    /// or at [`CONTROL_DEADLINE`] if it never does (a phone not subscribed
    /// to `control`).
    pub(crate) async fn send_then_cut_off(&self, user_id: &str, device_id: &str, message: &Outbound) {
        self.cut_off_here(device_id);
        self.parts.cluster.tell(Relay::CutOff { device: device_id.to_owned() }).await;
        self.send(user_id, device_id, message).await;
    }

    /// Closes the device's MQTT connections on this node once the next
    /// `control` message has passed (or at [`CONTROL_DEADLINE`]).
    pub(crate) fn cut_off_here(&self, device_id: &str) {
        self.parts.gateway.close_after_control(device_id);
        let (gateway, device) = (self.parts.gateway.clone(), device_id.to_owned());
        self.parts.tasks.spawn(async move {
            tokio::time::sleep(CONTROL_DEADLINE).await;
            gateway.kick_closing(&device);
        });
    }

    /// The other nodes.
    pub(crate) fn cluster(&self) -> &Cluster {
        &self.parts.cluster
    }

    /// The metrics.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.parts.metrics
    }

    /// Web Push.
    pub(crate) fn push(&self) -> &Push {
        &self.parts.push
    }
}
