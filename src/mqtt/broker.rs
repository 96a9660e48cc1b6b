//! The embedded MQTT broker: rumqttd's router on our runtime, with no
//! listener of its own. Every client is in-process: each phone connection
//! gets a link of its own from the gateway (which ended the phone's TLS
//! session and checked its certificate, token and packets), and the
//! appliance has its link, which publishes to phones and is subscribed to
//! the phone → appliance types, whose messages it hands on as `Received`.
//! No port, so no local process can reach the broker around the gateway.

use crate::mqtt::topics::{inbound_filter, KINDS};
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::Notification;
use rumqttd::{Router, RouterConfig};
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BrokerError {
    /// The in-process link.
    #[error("broker link: {0}")]
    Link(String),
}

/// A new link to the router: a phone connection's two halves and the
/// router's CONNACK.
pub(crate) type Linked = (LinkTx, LinkRx, Notification);

/// Builds a link under a client id, waiting for the router's answer.
type Build = dyn Fn(&str) -> Result<Linked, String> + Send + Sync;

/// Makes links to the router for the gateway's phone connections (cheap to
/// clone).
#[derive(Clone)]
pub(crate) struct Links {
    build: Arc<Build>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links").finish_non_exhaustive()
    }
}

impl Links {
    /// A clean-session link under `client_id` (one per connection: see
    /// [`upstream_client_id`]; the appliance replays what a phone missed
    /// from its own store, so the router keeps no session between
    /// connections). The gateway keeps the phone's will itself (rumqttd
    /// publishes a will only for connections of its own listeners).
    pub(crate) async fn connect(&self, client_id: String) -> Result<Linked, BrokerError> {
        let build = self.build.clone();
        // The router answers a new link on its own thread; waiting for it
        // blocks.
        let linked = tokio::task::spawn_blocking(move || build(&client_id)).await;
        linked.map_err(|e| BrokerError::Link(e.to_string()))?.map_err(BrokerError::Link)
    }
}

/// The running broker.
pub(crate) struct Broker {
    /// Links for the gateway's phone connections.
    pub links: Links,
    /// The appliance's link, for publishing.
    pub link: Link,
}

/// Messages phones published to the appliance's filters.
pub(crate) type Inbox = mpsc::Receiver<Received>;

/// A message a phone published: topic and payload.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// The full topic.
    pub topic: String,
    /// The payload.
    pub payload: bytes::Bytes,
}

/// The appliance's in-process link (cheap to clone).
#[derive(Clone)]
pub(crate) struct Link {
    tx: Arc<Mutex<LinkTx>>,
}

impl Link {
    /// Publishes `payload` on `topic` from the appliance.
    pub(crate) async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), BrokerError> {
        let mut link = self.tx.lock().await;
        link.publish(topic.to_owned(), payload).map(|_| ()).map_err(|e| BrokerError::Link(e.to_string()))
    }
}

/// Only these client ids are let in (rumqttd panics on a reconnect after
/// refusing an id with `/ + # $`, upstream issue #1062).
pub(crate) fn valid_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The client id the gateway gives the broker for connection `n` of
/// `device`: one per connection, so the broker never sees two connections
/// with one id (rumqttd then drops the older one, and a late goodbye of the
/// older one could drop the newer); the gateway itself closes a device's
/// older connections when a new one arrives.
pub(crate) fn upstream_client_id(device: &str, n: u64) -> String {
    format!("{device}.{n}")
}

fn router_config() -> RouterConfig {
    RouterConfig {
        max_connections: 20_000,
        max_outgoing_packet_count: 200,
        max_segment_size: 64 * 1024,
        max_segment_count: 4,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    }
}

impl Broker {
    /// Starts the router and the appliance's link; the broker and what
    /// phones send the appliance.
    pub(crate) fn start() -> Result<(Broker, Inbox), BrokerError> {
        let router_tx = Router::new(0, router_config()).spawn();
        let for_phones = router_tx.clone();
        let build = move |client_id: &str| {
            let link = LinkBuilder::new(client_id, for_phones.clone()).clean_session(true);
            link.build().map_err(|e| e.to_string())
        };
        let (mut tx, rx, _) = LinkBuilder::new("topdog-appliance", router_tx)
            .clean_session(true)
            .dynamic_filters(true)
            .build()
            .map_err(|e| BrokerError::Link(e.to_string()))?;
        for kind in KINDS.into_iter().filter(|k| k.from_phone()) {
            tx.subscribe(inbound_filter(kind)).map_err(|e| BrokerError::Link(e.to_string()))?;
        }
        let (sender, received) = mpsc::channel(4096);
        tokio::spawn(drain(rx, sender));
        let link = Link { tx: Arc::new(Mutex::new(tx)) };
        Ok((Broker { links: Links { build: Arc::new(build) }, link }, received))
    }
}

/// Reads the link's receive side for as long as the router runs, handing
/// phones' publishes on.
async fn drain(mut rx: LinkRx, received: mpsc::Sender<Received>) {
    loop {
        match rx.next().await {
            Ok(Some(Notification::Forward(forward))) => {
                let publish = forward.publish;
                let topic = String::from_utf8_lossy(&publish.topic).into_owned();
                if received.send(Received { topic, payload: publish.payload }).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the broker link closed");
                return;
            }
        }
    }
}
