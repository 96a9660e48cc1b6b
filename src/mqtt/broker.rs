//! The embedded MQTT broker: rumqttd's router on our runtime, one internal
//! listener on loopback without TLS (the phone's TLS session ends at the
//! gateway, its only client), whose CONNECT auth hook lets in only the
//! gateway: client id = user name = a device id, password = this boot's
//! secret, which only the gateway knows (it checked the phone's certificate
//! and token at the door), compared in constant time; and the appliance's
//! own in-process link: it publishes to phones and is subscribed to the
//! phone → appliance types, whose messages it hands on as `Received`.

use crate::mqtt::topics::{inbound_filter, KINDS};
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::v4::V4;
use rumqttd::Notification;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use std::net::SocketAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, Mutex};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BrokerError {
    /// Files or sockets.
    #[error("broker: {0}")]
    Io(#[from] std::io::Error),
    /// The in-process link.
    #[error("broker link: {0}")]
    Link(String),
}

/// What the gateway needs to reach the internal listener.
#[derive(Clone)]
pub(crate) struct Internal {
    /// The loopback address of the internal listener.
    pub addr: SocketAddr,
    /// This boot's password for the internal listener.
    pub secret: Arc<str>,
}

impl std::fmt::Debug for Internal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Internal").field("addr", &self.addr).field("secret", &"…").finish()
    }
}

/// The running broker.
pub(crate) struct Broker {
    /// Reaching the internal listener.
    pub internal: Internal,
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

/// Whether `id` is one [`upstream_client_id`] makes.
fn valid_upstream_client_id(id: &str) -> bool {
    id.rsplit_once('.')
        .is_some_and(|(device, n)| valid_client_id(device) && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
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

fn connection_settings(secret: Arc<str>) -> ConnectionSettings {
    let mut settings = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: 64 * 1024,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        // A phone publishes only where the appliance listens (the gateway
        // enforces it), so nothing a phone sends creates a commit log.
        dynamic_filters: false,
    };
    settings.set_auth_handler(move |client_id: String, username: String, password: String| {
        let secret = secret.clone();
        async move { gateway_login(&secret, &client_id, &username, &password) }
    });
    settings
}

/// The CONNECT check: a gateway connection's client id as client id and
/// user name, and this boot's secret as password.
fn gateway_login(secret: &str, client_id: &str, username: &str, password: &str) -> bool {
    let secret_matches: bool = password.as_bytes().ct_eq(secret.as_bytes()).into();
    if !(secret_matches && valid_upstream_client_id(client_id) && client_id == username) {
        tracing::warn!(client = client_id, "internal MQTT login refused: not the gateway");
        return false;
    }
    true
}

/// A new secret for this boot: 256 random bits, hex.
fn boot_secret() -> Arc<str> {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes).into()
}

fn free_loopback_port() -> std::io::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
    probe.local_addr()
}

impl Broker {
    /// Starts the router, the internal listener and the appliance's link;
    /// the broker and what phones send the appliance.
    pub(crate) fn start() -> Result<(Broker, Inbox), BrokerError> {
        let secret = boot_secret();
        let addr = free_loopback_port()?;
        let router_tx = Router::new(0, router_config()).spawn();
        let settings = ServerSettings {
            name: "internal".into(),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 0,
            connections: connection_settings(secret.clone()),
        };
        let mut server = Server::new(settings, router_tx.clone(), V4);
        tokio::spawn(async move {
            if let Err(e) = server.start(LinkType::Remote).await {
                tracing::error!(error = %e, "the internal MQTT listener stopped");
            }
        });
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
        Ok((Broker { internal: Internal { addr, secret }, link }, received))
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
