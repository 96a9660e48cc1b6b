//! The phones' MQTT/TLS front door (`--mqtt-addr`). Each connection gets its
//! own task: a TLS handshake with a timeout that requires a client
//! certificate from the appliance CA; the certificate's tenant and device
//! (O and CN) must match this appliance and an active device, and the
//! CONNECT's client id must equal the CN. The connection is then spliced to
//! the broker's internal listener with a per-tenant internal certificate.
//! Every live connection is registered, so `kick` closes a device at once.

use crate::broker::{valid_client_id, Internal};
use crate::devices::Devices;
use crate::messaging::wire::tenant_of;
use crate::metrics::Metrics;
use crate::pki::TlsPair;
use crate::quickack::QuickAck;
use crate::tls::{self, TlsError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

/// How long a phone has for the TLS handshake and its CONNECT.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_PENDING_HANDSHAKES: usize = 1024;
const MAX_CONNECT_BYTES: usize = 16 * 1024;
const SPLICE_BUFFER: usize = 4 * 1024;

/// Live connections by device id.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    live: Mutex<HashMap<String, Vec<(u64, CancellationToken)>>>,
}

impl Registry {
    fn add(&self, device: &str) -> (u64, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.entry(device.to_owned()).or_default().push((id, token.clone()));
        (id, token)
    }

    fn remove(&self, device: &str, id: u64) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conns) = live.get_mut(device) {
            conns.retain(|(i, _)| *i != id);
            if conns.is_empty() {
                live.remove(device);
            }
        }
    }

    fn kick(&self, device: &str) -> usize {
        let conns = self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(device).unwrap_or_default();
        conns.iter().for_each(|(_, token)| token.cancel());
        conns.len()
    }

    fn count(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).values().map(Vec::len).sum()
    }
}

/// Open connections per IP address, with a cap.
struct PerIp {
    max: usize,
    open: Mutex<HashMap<std::net::IpAddr, usize>>,
}

/// One counted connection; uncounted when dropped.
struct IpSlot {
    owner: Arc<PerIp>,
    ip: std::net::IpAddr,
}

impl PerIp {
    fn take(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpSlot { owner: self.clone(), ip })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The gateway's shared state (cheap to clone).
#[derive(Clone)]
pub struct Gateway {
    registry: Arc<Registry>,
    acceptor: TlsAcceptor,
    internal: Internal,
    /// Upstream connectors by tenant, each with its own internal certificate.
    upstream: Arc<Mutex<HashMap<String, TlsConnector>>>,
    devices: Devices,
    per_ip: Arc<PerIp>,
    metrics: Metrics,
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
    #[error("broker: {0}")]
    Upstream(String),
}

impl Refused {
    /// The metric label.
    fn reason(&self) -> &'static str {
        match self {
            Refused::Handshake(_) => "handshake",
            Refused::Certificate(_) => "certificate",
            Refused::Inactive(_) => "inactive_device",
            Refused::Connect(_) => "connect",
            Refused::Upstream(_) => "broker",
        }
    }
}

impl Gateway {
    /// A gateway serving `server` (the appliance's certificate) and trusting
    /// phone certificates from `appliance_ca_pem`; at most `max_per_ip`
    /// connections are open from one address.
    pub fn new(
        server: &TlsPair,
        appliance_ca_pem: &str,
        internal: &Internal,
        devices: Devices,
        max_per_ip: usize,
        metrics: Metrics,
    ) -> Result<Gateway, TlsError> {
        let acceptor = TlsAcceptor::from(Arc::new(tls::mqtt_server(server, appliance_ca_pem)?));
        let per_ip = Arc::new(PerIp { max: max_per_ip, open: Mutex::default() });
        Ok(Gateway {
            registry: Arc::default(),
            acceptor,
            internal: internal.clone(),
            upstream: Arc::default(),
            devices,
            per_ip,
            metrics,
        })
    }

    /// The connector presenting an internal certificate for `tenant`
    /// (minted once, then cached).
    fn connector(&self, tenant: &str) -> Result<TlsConnector, Refused> {
        let mut cache = self.upstream.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(connector) = cache.get(tenant) {
            return Ok(connector.clone());
        }
        let failed = |e: &dyn std::fmt::Display| Refused::Upstream(e.to_string());
        let (pair, _) = self.internal.ca.issue_client(&format!("gateway-{tenant}"), tenant).map_err(|e| failed(&e))?;
        let config = tls::internal_client(&pair, self.internal.ca.cert_pem()).map_err(|e| failed(&e))?;
        let connector = TlsConnector::from(Arc::new(config));
        cache.insert(tenant.to_owned(), connector.clone());
        Ok(connector)
    }

    /// Closes every live connection of `device`; how many there were.
    pub fn kick(&self, device: &str) -> usize {
        let n = self.registry.kick(device);
        if n > 0 {
            tracing::info!(device, connections = n, "closed the device's MQTT connections");
        }
        n
    }

    /// Connected phones.
    pub fn connected(&self) -> usize {
        self.registry.count()
    }

    /// Whether `device` has a live connection.
    pub fn is_connected(&self, device: &str) -> bool {
        self.registry.live.lock().unwrap_or_else(|p| p.into_inner()).contains_key(device)
    }

    /// Accepts phones on `listener` until `stop` turns true.
    pub async fn serve(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => { tracing::warn!(error = %e, "MQTT accept failed"); tokio::time::sleep(Duration::from_millis(50)).await; continue; }
                },
                _ = stop.changed() => break,
            };
            let Some(slot) = self.per_ip.take(peer.ip()) else {
                tracing::warn!(%peer, "too many MQTT connections from this address; connection dropped");
                self.metrics.gateway_refused("per_ip_limit");
                continue;
            };
            let Ok(permit) = pending.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "too many MQTT handshakes in progress; connection dropped");
                self.metrics.gateway_refused("pending_limit");
                continue;
            };
            let gateway = self.clone();
            tokio::spawn(async move {
                if let Err(e) = gateway.handle(stream, peer, permit).await {
                    gateway.metrics.gateway_refused(e.reason());
                    tracing::info!(%peer, error = %e, "MQTT connection refused");
                }
                drop(slot);
            });
        }
        self.registry
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .flat_map(|(_, c)| c)
            .for_each(|(_, t)| t.cancel());
    }

    async fn handle(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(), Refused> {
        let _ = stream.set_nodelay(true);
        let opened = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.open(stream)).await;
        drop(permit);
        let (mut phone, device, connect) = opened.map_err(|_| Refused::Handshake("timed out".into()))??;
        let mut broker = self.upstream(&tenant_of(&device), &connect).await?;
        let (id, token) = self.registry.add(&device);
        tracing::info!(%peer, device = %device, "phone connected over MQTT");
        tokio::select! {
            _ = tokio::io::copy_bidirectional_with_sizes(&mut phone, &mut broker, SPLICE_BUFFER, SPLICE_BUFFER) => {}
            _ = token.cancelled() => {}
        }
        self.registry.remove(&device, id);
        let _ = phone.shutdown().await;
        let _ = broker.shutdown().await;
        tracing::info!(%peer, device = %device, "phone disconnected");
        Ok(())
    }

    /// Handshake, certificate and device checks, CONNECT read.
    async fn open(
        &self,
        stream: TcpStream,
    ) -> Result<(tokio_rustls::server::TlsStream<QuickAck>, String, Vec<u8>), Refused> {
        let mut tls = self.acceptor.accept(QuickAck(stream)).await.map_err(|e| Refused::Handshake(e.to_string()))?;
        let cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| Refused::Certificate("none".into()))?;
        let (device, tenant) = identity(cert.as_ref())?;
        if !valid_client_id(&device) || tenant != tenant_of(&device) {
            return Err(Refused::Certificate(format!("not a phone of this appliance ({tenant})")));
        }
        if !self.devices.is_active(&device) {
            return Err(Refused::Inactive(device));
        }
        let (connect, client_id) = read_connect(&mut tls).await?;
        if client_id != device {
            return Err(Refused::Connect(format!("client id {client_id:?} does not match the certificate ({device})")));
        }
        Ok((tls, device, connect))
    }

    async fn upstream(
        &self,
        tenant: &str,
        connect: &[u8],
    ) -> Result<tokio_rustls::client::TlsStream<QuickAck>, Refused> {
        let up = |e: &dyn std::fmt::Display| Refused::Upstream(e.to_string());
        let connector = self.connector(tenant)?;
        let tcp = TcpStream::connect(self.internal.addr).await.map_err(|e| up(&e))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(|e| up(&e))?;
        let mut tls = connector.connect(name, QuickAck(tcp)).await.map_err(|e| up(&e))?;
        tls.write_all(connect).await.map_err(|e| up(&e))?;
        Ok(tls)
    }
}

/// The device id (CN) and tenant (O) of a certificate.
fn identity(der: &[u8]) -> Result<(String, String), Refused> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| Refused::Certificate(e.to_string()))?;
    let subject = cert.subject();
    let field =
        |it: Option<&x509_parser::x509::AttributeTypeAndValue<'_>>| it.and_then(|a| a.as_str().ok()).map(str::to_owned);
    let cn = field(subject.iter_common_name().next()).ok_or_else(|| Refused::Certificate("no CN".into()))?;
    let o = field(subject.iter_organization().next()).ok_or_else(|| Refused::Certificate("no O".into()))?;
    Ok((cn, o))
}

/// Reads the first MQTT packet, which must be a 3.1.1 CONNECT; its bytes
/// and client id.
async fn read_connect<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Result<(Vec<u8>, String), Refused> {
    let bad = |why: &str| Refused::Connect(why.to_owned());
    let first = stream.read_u8().await.map_err(|_| bad("closed before CONNECT"))?;
    if first != 0x10 {
        return Err(bad("the first packet is not CONNECT"));
    }
    let mut packet = vec![first];
    let (mut length, mut shift) = (0usize, 0);
    loop {
        let byte = stream.read_u8().await.map_err(|_| bad("truncated length"))?;
        packet.push(byte);
        length |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(bad("bad remaining length"));
        }
    }
    if length > MAX_CONNECT_BYTES {
        return Err(bad("CONNECT too large"));
    }
    let start = packet.len();
    packet.resize(start + length, 0);
    stream.read_exact(&mut packet[start..]).await.map_err(|_| bad("truncated CONNECT"))?;
    let client_id = parse_client_id(&packet[start..]).ok_or_else(|| bad("malformed CONNECT (MQTT 3.1.1 expected)"))?;
    Ok((packet, client_id))
}

/// The client id in a CONNECT's variable header and payload.
fn parse_client_id(body: &[u8]) -> Option<String> {
    let name_len = usize::from(u16::from_be_bytes([*body.first()?, *body.get(1)?]));
    let name = body.get(2..2 + name_len)?;
    let level = *body.get(2 + name_len)?;
    if name != b"MQTT" || level != 4 {
        return None;
    }
    let at = 2 + name_len + 4; // level, flags, keep-alive
    let id_len = usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]));
    let id = body.get(at + 2..at + 2 + id_len)?;
    String::from_utf8(id.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(id: &str) -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60];
        body.extend_from_slice(&(id.len() as u16).to_be_bytes());
        body.extend_from_slice(id.as_bytes());
        let mut packet = vec![0x10, body.len() as u8];
        packet.extend(body);
        packet
    }

    #[tokio::test]
    async fn reads_the_client_id_of_a_connect() {
        let packet = connect("pixel-8");
        let (raw, id) = read_connect(&mut packet.as_slice()).await.unwrap();
        assert_eq!((raw, id.as_str()), (packet.clone(), "pixel-8"));
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

    #[test]
    fn kick_closes_every_connection_of_a_device() {
        let registry = Registry::default();
        let (_, a) = registry.add("p1");
        let (_, b) = registry.add("p1");
        let (id, c) = registry.add("p2");
        assert_eq!(registry.kick("p1"), 2);
        assert!(a.is_cancelled() && b.is_cancelled() && !c.is_cancelled());
        registry.remove("p2", id);
        assert_eq!(registry.count(), 0);
    }
}
