//! The embedded MQTT broker: rumqttd's router on our runtime, one internal
//! TLS listener on loopback that trusts only the internal CA (the gateway is
//! its only client), the CONNECT auth hook (client id = username = device
//! id, password = that device's token, device active), and the appliance's
//! own in-process link: it publishes to phones and is subscribed to the
//! phone → appliance types, whose messages it hands on as `Received`.

use crate::devices::Devices;
use crate::mqtt::topics::{inbound_filter, KINDS};
use crate::pki::{Ca, CaKind, PkiError};
use crate::store::datadir::{self, DataDir};
use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::v4::V4;
use rumqttd::Notification;
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings, TlsConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex};

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Certificates for the internal listener.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// Files or sockets.
    #[error("broker: {0}")]
    Io(#[from] std::io::Error),
    /// The in-process link.
    #[error("broker link: {0}")]
    Link(String),
}

/// What the gateway needs to reach the internal listener.
#[derive(Clone)]
pub struct Internal {
    /// The loopback address of the internal listener.
    pub addr: SocketAddr,
    /// The internal CA (signs the gateway's per-tenant certificates).
    pub ca: Arc<Ca>,
}

/// The running broker.
pub struct Broker {
    /// Reaching the internal listener.
    pub internal: Internal,
    /// The appliance's link, for publishing.
    pub link: Link,
}

/// Messages phones published to the appliance's filters.
pub type Inbox = mpsc::Receiver<Received>;

/// A message a phone published: topic and payload.
#[derive(Debug, Clone)]
pub struct Received {
    /// The full topic.
    pub topic: String,
    /// The payload.
    pub payload: bytes::Bytes,
}

/// The appliance's in-process link (cheap to clone).
#[derive(Clone)]
pub struct Link {
    tx: Arc<Mutex<LinkTx>>,
}

impl Link {
    /// Publishes `payload` on `topic` from the appliance.
    pub async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), BrokerError> {
        let mut link = self.tx.lock().await;
        link.publish(topic.to_owned(), payload).map(|_| ()).map_err(|e| BrokerError::Link(e.to_string()))
    }
}

/// Only these client ids are let in (rumqttd panics on a reconnect after
/// refusing an id with `/ + # $`, upstream issue #1062).
pub fn valid_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
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

fn connection_settings(devices: Devices) -> ConnectionSettings {
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
        let devices = devices.clone();
        async move { authorised(&devices, &client_id, &username, &password) }
    });
    settings
}

/// The CONNECT check: id rules, then the token and the device's state.
fn authorised(devices: &Devices, client_id: &str, username: &str, password: &str) -> bool {
    if !valid_client_id(client_id) || client_id != username {
        return false;
    }
    match devices.authenticate(Some(password)) {
        Ok(auth) => auth.device.device_id.as_str() == client_id,
        Err(e) => {
            tracing::info!(device = client_id, error = %e, "MQTT login refused");
            false
        }
    }
}

fn free_loopback_port() -> std::io::Result<SocketAddr> {
    let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
    probe.local_addr()
}

fn internal_tls(dir: &DataDir, ca: &Ca) -> Result<TlsConfig, BrokerError> {
    let pair = ca.issue_server(&["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    let (cert, key, ca_file): (PathBuf, PathBuf, PathBuf) =
        (dir.file("internal-broker-cert.pem"), dir.file("internal-broker-key.pem"), dir.file("internal-ca.pem"));
    datadir::write_public(&cert, pair.chain_pem.as_bytes())?;
    datadir::write_secret(&key, pair.key_pem.as_bytes())?;
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    Ok(TlsConfig::Rustls { capath: Some(path(ca_file)), certpath: path(cert), keypath: path(key) })
}

impl Broker {
    /// Starts the router, the internal listener and the appliance's link;
    /// the broker and what phones send the appliance.
    pub fn start(dir: &DataDir, devices: Devices) -> Result<(Broker, Inbox), BrokerError> {
        let ca = Arc::new(Ca::load_or_create_kind(dir, CaKind::Internal)?);
        let addr = free_loopback_port()?;
        let router_tx = Router::new(0, router_config()).spawn();
        let settings = ServerSettings {
            name: "internal".into(),
            listen: addr,
            tls: Some(internal_tls(dir, &ca)?),
            next_connection_delay_ms: 0,
            connections: connection_settings(devices),
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
        Ok((Broker { internal: Internal { addr, ca }, link }, received))
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
