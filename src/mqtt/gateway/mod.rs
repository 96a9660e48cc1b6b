//! The phones' MQTT/TLS front door (`--mqtt-addr`). Each connection gets its
//! own task: a TLS handshake with a timeout (within its address's share of
//! connections and handshakes) that requires a client certificate from the
//! appliance CA; the certificate's tenant and device (O and CN) must match
//! this appliance and an active device, and its public key the one recorded
//! when that device was paired (so a certificate of an earlier pairing of
//! the same id is refused). The CONNECT's client id must equal the CN and
//! its password be that device's token. The connection then gets a link of
//! its own to the broker's router, in-process: the router's packets to the
//! phone as they come (read for what `subscribed` follows), the phone's
//! packets checked one by one against its rules (`inspect`) and passed on;
//! the phone's keep-alive and will are kept here. One TLS session per
//! phone, ended here, and no second socket.
//! Every live connection is registered, so a device being cut off is closed
//! once it has its `control` message.

mod inspect;
mod link;
mod registry;
mod relay;
mod subscribed;

use crate::devices::{DeviceState, Devices};
use crate::limits::connections::{Admitted, ConnLimits, Shares, Turned};
use crate::metrics::Metrics;
use crate::mqtt::broker::{upstream_client_id, valid_client_id, Links};
use crate::mqtt::quickack::QuickAck;
use crate::mqtt::topics::tenant_of;
use crate::pki::tls::{self, TlsError};
use crate::proxy::TrustedProxies;
use bytes::BytesMut;
use inspect::{next_frame, Connect, Rules, Violation};
use link::{leave, write_connack};
use registry::Registry;
pub(crate) use registry::Settled;
use relay::{relay, Ended};
use sha2::Digest;
use std::sync::Arc;
use std::time::Duration;
use subscribed::Tracker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How long a phone has for the TLS handshake and its CONNECT.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_PENDING_HANDSHAKES: usize = 1024;
const MAX_PENDING_PER_ADDRESS: usize = 64;

/// What one phone may take of the gateway.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GatewayLimits {
    /// Connections open (or opening) from one address.
    pub max_per_ip: usize,
    /// Publishes a second, sustained.
    pub publish_rate: u32,
}

/// The gateway's shared state (cheap to clone).
#[derive(Clone)]
pub(crate) struct Gateway {
    registry: Arc<Registry>,
    acceptor: TlsAcceptor,
    links: Links,
    devices: Devices,
    limits: ConnLimits,
    publish_rate: u32,
    metrics: Metrics,
    /// Load balancers whose PROXY protocol header names the phone.
    trusted: Arc<TrustedProxies>,
}

/// Why a phone's connection was refused (logged, never sent).
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("TLS handshake: {0}")]
    Handshake(String),
    #[error("client certificate: {0}")]
    Certificate(String),
    #[error("device {0} is not active")]
    Inactive(String),
    #[error("CONNECT: {0}")]
    Connect(String),
    #[error("device {0}: token refused: {1}")]
    Token(String, String),
    #[error("broker: {0}")]
    Upstream(#[from] crate::mqtt::broker::BrokerError),
    #[error(transparent)]
    Rule(#[from] Violation),
    #[error(transparent)]
    Turned(#[from] Turned),
}

impl Refused {
    /// The metric label.
    fn reason(&self) -> &'static str {
        match self {
            Refused::Handshake(_) => "handshake",
            Refused::Certificate(_) => "certificate",
            Refused::Inactive(_) => "inactive_device",
            Refused::Connect(_) => "connect",
            Refused::Token(..) => "token",
            Refused::Upstream(_) => "broker",
            Refused::Rule(v) => v.reason(),
            Refused::Turned(t) => t.reason(),
        }
    }
}

impl Gateway {
    /// A gateway serving `server` (the appliance's certificate) and trusting
    /// phone certificates from `appliance_ca_pem`, within `limits`.
    pub(crate) fn new(
        server: Arc<crate::pki::live::LiveCert>,
        appliance_ca_pem: &str,
        links: &Links,
        devices: Devices,
        limits: GatewayLimits,
        metrics: Metrics,
        trusted: TrustedProxies,
    ) -> Result<Gateway, TlsError> {
        let acceptor = TlsAcceptor::from(Arc::new(tls::mqtt_server(server, appliance_ca_pem)?));
        let conn_limits = ConnLimits::new(Shares {
            open_per_address: limits.max_per_ip,
            handshakes_per_address: MAX_PENDING_PER_ADDRESS,
            handshakes_total: MAX_PENDING_HANDSHAKES,
            turn_wait: crate::limits::connections::TURN_WAIT,
        });
        Ok(Gateway {
            registry: Arc::default(),
            acceptor,
            links: links.clone(),
            devices,
            limits: conn_limits,
            publish_rate: limits.publish_rate,
            metrics,
            trusted: Arc::new(trusted),
        })
    }

    /// Asks every live connection of `device` to close once a `control`
    /// message has passed to the phone; how many there are.
    pub(crate) fn close_after_control(&self, device: &str) -> usize {
        self.registry.close_after_control(device)
    }

    /// Closes the connections of `device` that were asked to close after a
    /// `control` message and are still open; how many there were.
    pub(crate) fn kick_closing(&self, device: &str) -> usize {
        self.registry.kick_closing(device)
    }

    /// Whether `device` is connected to this node.
    pub(crate) fn holds(&self, device: &str) -> bool {
        self.registry.holds(device)
    }

    /// Connected phones.
    pub(crate) fn connected(&self) -> usize {
        self.registry.count()
    }

    /// The newest live connection of `device` whose subscription to its
    /// notifications is in force, once none of its SUBSCRIBEs is on its
    /// way: a notification published while the answer is held reaches it
    /// (and no other connection of the device).
    pub(crate) async fn settled(&self, device: &str) -> Settled<'_> {
        self.registry.settled(device).await
    }

    /// Accepts phones on `listener` until `stop` turns true.
    pub(crate) async fn serve(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => { tracing::warn!(error = %e, "MQTT accept failed"); tokio::time::sleep(Duration::from_millis(50)).await; continue; }
                },
                _ = stop.changed() => break,
            };
            if self.trusted.contains(peer.ip()) {
                tokio::spawn(self.clone().proxied(stream, peer));
            } else {
                self.arrived(stream, peer);
            }
        }
        self.registry.close_all();
    }

    /// A connection from a trusted load balancer: its PROXY protocol
    /// header names the phone, whose address then counts (caps, logs).
    async fn proxied(self, mut stream: TcpStream, proxy: std::net::SocketAddr) {
        match crate::proxy::protocol::read_header(&mut stream).await {
            Ok(Some(phone)) => self.arrived(stream, phone),
            Ok(None) => tracing::debug!(%proxy, "a proxy's own connection (health check) closed"),
            Err(e) => {
                self.metrics.gateway_refused("proxy_protocol");
                tracing::warn!(%proxy, error = %e, "MQTT connection from a trusted proxy refused");
            }
        }
    }

    /// Admits a phone's connection (by the phone's address) and serves it
    /// in a task of its own.
    fn arrived(&self, stream: TcpStream, peer: std::net::SocketAddr) {
        let admitted = match self.limits.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(turned) => {
                tracing::warn!(%peer, reason = %turned, "MQTT connection dropped");
                self.metrics.gateway_refused(turned.reason());
                return;
            }
        };
        let gateway = self.clone();
        let span = tracing::info_span!("mqtt", %peer, device = tracing::field::Empty);
        let connection = async move {
            if let Err(e) = gateway.handle(stream, &admitted).await {
                gateway.metrics.gateway_refused(e.reason());
                tracing::info!(error = %e, "MQTT connection refused");
            }
            drop(admitted);
        };
        tokio::spawn(tracing::Instrument::instrument(connection, span));
    }

    async fn handle(&self, stream: TcpStream, admitted: &Admitted) -> Result<(), Refused> {
        let _ = stream.set_nodelay(true);
        let opened = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.open(stream, admitted)).await;
        let Opened { mut phone, device, rules, connect } =
            opened.map_err(|_| Refused::Handshake("timed out".into()))??;
        let (mut tx, mut rx, connack) = self.links.connect(upstream_client_id(&device, rand::random())).await?;
        if let Err(e) = write_connack(&mut phone, connack).await {
            leave(&mut tx, connect).await;
            return Err(Refused::Connect(format!("CONNACK not sent: {e}")));
        }
        let (id, token, closing) = self.registry.add(&device);
        self.registry.take_over(&device, id);
        tracing::Span::current().record("device", device.as_str());
        tracing::info!("phone connected over MQTT");
        let tracker = Tracker::new(self.registry.clone(), &device, id, closing);
        let keep_alive = Duration::from_secs(connect.keep_alive.into());
        let outcome = tokio::select! {
            outcome = relay(phone, (&mut tx, &mut rx), &rules, &tracker, keep_alive) => outcome,
            _ = token.cancelled() => Ok(Ended::Dropped),
        };
        self.registry.remove(&device, id);
        tracing::info!("phone disconnected");
        if !matches!(outcome, Ok(Ended::Goodbye)) {
            leave(&mut tx, connect).await;
        }
        outcome.map(|_| ()).map_err(Refused::from)
    }

    /// Handshake (in the address's turn), certificate and device checks,
    /// CONNECT read and checked.
    async fn open(&self, stream: TcpStream, admitted: &Admitted) -> Result<Opened, Refused> {
        let turn = admitted.handshake_turn().await?;
        let mut tls = self.acceptor.accept(QuickAck(stream)).await.map_err(|e| Refused::Handshake(e.to_string()))?;
        drop(turn);
        let cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| Refused::Certificate("none".into()))?;
        let (device, tenant, key_fingerprint) = identity(cert.as_ref())?;
        if !valid_client_id(&device) || tenant != tenant_of(&device) {
            return Err(Refused::Certificate(format!("not a phone of this appliance ({tenant})")));
        }
        let record = match self.devices.get(&device) {
            Ok(d) if d.status == DeviceState::Active => d,
            _ => return Err(Refused::Inactive(device)),
        };
        if record.fingerprint != key_fingerprint {
            return Err(Refused::Certificate(format!("not the certificate of {device}'s current pairing")));
        }
        let rules = Rules::new(record.user_id.as_str(), &device, self.publish_rate);
        let connect = read_connect(&mut tls).await?;
        rules.connect(&connect)?;
        if connect.keep_alive == 0 {
            return Err(Refused::Connect("a keep-alive of 0 is not accepted".into()));
        }
        if let Err(why) = self.token_of(&device, connect.token.as_deref()) {
            let _ = tls.write_all(&inspect::not_authorized()).await;
            let _ = tls.shutdown().await;
            return Err(Refused::Token(device, why));
        }
        Ok(Opened { phone: tls, device, rules, connect })
    }

    /// Whether `token` is `device`'s own, valid and not revoked.
    fn token_of(&self, device: &str, token: Option<&str>) -> Result<(), String> {
        match self.devices.authenticate(token) {
            Ok(auth) if auth.device.device_id.as_str() == device => Ok(()),
            Ok(auth) => Err(format!("the token of {}", auth.device.device_id)),
            Err(e) => Err(e.to_string()),
        }
    }
}

type Phone = tokio_rustls::server::TlsStream<QuickAck>;

/// A phone let in: its stream, device, rules and CONNECT.
struct Opened {
    phone: Phone,
    device: String,
    rules: Rules,
    connect: Connect,
}

/// The device id (CN), tenant (O) and public-key fingerprint (SHA-256 of
/// the SubjectPublicKeyInfo, as recorded at pairing) of a certificate.
fn identity(der: &[u8]) -> Result<(String, String, String), Refused> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| Refused::Certificate(e.to_string()))?;
    let fingerprint = hex::encode(sha2::Sha256::digest(cert.public_key().raw));
    let subject = cert.subject();
    let field =
        |it: Option<&x509_parser::x509::AttributeTypeAndValue<'_>>| it.and_then(|a| a.as_str().ok()).map(str::to_owned);
    let cn = field(subject.iter_common_name().next()).ok_or_else(|| Refused::Certificate("no CN".into()))?;
    let o = field(subject.iter_organization().next()).ok_or_else(|| Refused::Certificate("no O".into()))?;
    Ok((cn, o, fingerprint))
}

/// Reads the phone's first packet, which must be a whole MQTT 3.1.1 CONNECT.
async fn read_connect<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Result<Connect, Refused> {
    let mut buf = BytesMut::with_capacity(256);
    loop {
        if let Some(frame) = next_frame(&mut buf)? {
            return Ok(inspect::connect(&frame)?);
        }
        if buf.len() >= MAX_CONNECT_BYTES {
            return Err(Refused::Connect("CONNECT too large".into()));
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Err(Refused::Connect("closed before CONNECT".into())),
            Ok(_) => {}
        }
    }
}

/// Largest CONNECT read before it must be whole.
const MAX_CONNECT_BYTES: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(id: &str) -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60];
        for field in [id, id, "token"] {
            body.extend_from_slice(&(field.len() as u16).to_be_bytes());
            body.extend_from_slice(field.as_bytes());
        }
        let mut packet = vec![0x10, body.len() as u8];
        packet.extend(body);
        packet
    }

    #[tokio::test]
    async fn reads_a_whole_connect() {
        let packet = connect("pixel-8");
        let connect = read_connect(&mut packet.as_slice()).await.unwrap();
        assert_eq!(connect.client_id, "pixel-8");
        assert_eq!((connect.keep_alive, connect.token.as_deref()), (60, Some("token")));
    }

    #[tokio::test]
    async fn refuses_anything_but_a_3_1_1_connect() {
        let mut v5 = connect("x");
        v5[8] = 5;
        assert!(read_connect(&mut v5.as_slice()).await.is_err());
        assert!(read_connect(&mut [0x30u8, 0].as_slice()).await.is_err());
        assert!(read_connect(&mut [0x10u8, 0xff, 0xff, 0xff, 0xff, 0x01].as_slice()).await.is_err());
        assert!(read_connect(&mut [0x10u8, 5, 0, 4].as_slice()).await.is_err());
    }
}
