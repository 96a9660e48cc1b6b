//! Sends appliance → phone messages: published on the device's topic through
//! the broker's in-process link, and handed to the device's live event
//! streams (the web app's SSE). Counts them, and closes a device's MQTT
//! connection after telling it why.

use super::wire::{self, Outbound};
use crate::metrics::Metrics;
use crate::mqtt::broker::Link;
use crate::mqtt::gateway::Gateway;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;

/// A message for one device's live event streams.
#[derive(Debug, Clone)]
pub struct LiveEvent {
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
pub const MAX_STREAMS: usize = 4;

/// One open event stream of a device, counted until dropped.
pub struct StreamSlot {
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

/// The sender (cheap to clone).
#[derive(Clone)]
pub struct Delivery {
    link: Link,
    gateway: Gateway,
    live: broadcast::Sender<LiveEvent>,
    metrics: Metrics,
    streams: Arc<Mutex<HashMap<String, usize>>>,
    tasks: TaskTracker,
}

impl Delivery {
    /// A sender over the broker `link`.
    pub fn new(link: Link, gateway: Gateway, metrics: Metrics, tasks: TaskTracker) -> Delivery {
        Delivery { link, gateway, live: broadcast::channel(4096).0, metrics, streams: Arc::default(), tasks }
    }

    /// Sends `message` to a device; the device's live MQTT connection that
    /// was subscribed to its notifications when the message was published
    /// (and so gets it), if any.
    pub async fn send(&self, user_id: &str, device_id: &str, message: &Outbound) -> Option<u64> {
        let settled = self.gateway.settled(device_id).await;
        let kind = message.kind();
        let json = match serde_json::to_string(message) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(error = %e, "could not encode a message");
                return None;
            }
        };
        let topic = wire::topic(user_id, device_id, kind);
        if let Err(e) = self.link.publish(&topic, json.clone().into_bytes()).await {
            tracing::error!(error = %e, device = device_id, "could not publish to the broker");
        }
        let subscribed = settled.connection;
        drop(settled);
        let event = LiveEvent { device_id: device_id.to_owned(), kind, id: message.id().to_owned(), json: json.into() };
        let _ = self.live.send(event);
        self.metrics.message(false, kind.as_str());
        subscribed
    }

    /// The device's live connection subscribed to its notifications (once
    /// none of its SUBSCRIBEs is on its way).
    pub async fn subscribed_connection(&self, device_id: &str) -> Option<u64> {
        self.gateway.settled(device_id).await.connection
    }

    /// Counts a new live event stream of `device`; None when it holds
    /// [`MAX_STREAMS`] already.
    pub fn open_stream(&self, device: &str) -> Option<StreamSlot> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let open = streams.entry(device.to_owned()).or_default();
        if *open >= MAX_STREAMS {
            return None;
        }
        *open += 1;
        Some(StreamSlot { streams: self.streams.clone(), device: device.to_owned() })
    }

    /// A receiver of every live event (filter by device).
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }

    /// Sends `message` (a `control`) and then closes the device's MQTT
    /// connections: each as soon as the message has passed to the phone,
    /// or at [`CONTROL_DEADLINE`] if it never does (a phone not subscribed
    /// to `control`).
    pub async fn send_then_cut_off(&self, user_id: &str, device_id: &str, message: &Outbound) {
        self.gateway.close_after_control(device_id);
        self.send(user_id, device_id, message).await;
        let (gateway, device) = (self.gateway.clone(), device_id.to_owned());
        self.tasks.spawn(async move {
            tokio::time::sleep(CONTROL_DEADLINE).await;
            gateway.kick_closing(&device);
        });
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
