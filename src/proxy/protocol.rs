//! The PROXY protocol (HAProxy's, versions 1 and 2, parsed by `ppp`) before
//! a phone's MQTT connection: a load balancer in TCP passthrough says whose
//! connection it forwards, since the mutual TLS must end at the appliance.
//! Read only from trusted proxies, exactly (the TLS handshake that follows
//! stays in the socket), within [`TIMEOUT`].

use ppp::{HeaderResult, PartialResult};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// How long a proxy has to send its header.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
/// The longest header read (v1 is at most 107 bytes; v2 with addresses and
/// a few TLVs fits easily).
const MAX_HEADER: usize = 1024;

/// Why a proxied connection was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// No whole header within the time.
    #[error("no PROXY protocol header within {} s", TIMEOUT.as_secs())]
    TimedOut,
    /// Something else than a PROXY header, or a malformed one.
    #[error("not a PROXY protocol header: {0}")]
    Invalid(String),
    /// The connection failed while the header was read.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the PROXY header at the start of `stream`: the client's address
/// (None for a proxy's own health check, `LOCAL` / `UNKNOWN`).
pub(crate) async fn read_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyError> {
    tokio::time::timeout(TIMEOUT, read(stream)).await.map_err(|_| ProxyError::TimedOut)?
}

async fn read(stream: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyError> {
    let mut buf = vec![0u8; MAX_HEADER];
    loop {
        stream.readable().await?;
        let seen = stream.peek(&mut buf).await?;
        if seen == 0 {
            return Err(ProxyError::Invalid("the connection closed".into()));
        }
        let header = HeaderResult::parse(&buf[..seen]);
        if header.is_incomplete() && seen < MAX_HEADER {
            // Split across segments: wait for more (the spec lets a server
            // refuse this; proxies send it whole, so this is rare).
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let (length, client) = parsed(header)?;
        let mut consumed = vec![0u8; length];
        stream.read_exact(&mut consumed).await?;
        return Ok(client);
    }
}

/// The header's length and the client address it names.
fn parsed(header: HeaderResult<'_>) -> Result<(usize, Option<SocketAddr>), ProxyError> {
    match header {
        HeaderResult::V1(Ok(h)) => {
            let client = match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port)),
                ppp::v1::Addresses::Tcp6(a) => Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port)),
                ppp::v1::Addresses::Unknown => None,
            };
            Ok((h.header.len(), client))
        }
        HeaderResult::V2(Ok(h)) => {
            let client = match h.addresses {
                ppp::v2::Addresses::IPv4(a) => Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port)),
                ppp::v2::Addresses::IPv6(a) => Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port)),
                ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
            };
            let local = matches!(h.command, ppp::v2::Command::Local);
            Ok((h.len(), if local { None } else { client }))
        }
        HeaderResult::V1(Err(e)) => Err(ProxyError::Invalid(e.to_string())),
        HeaderResult::V2(Err(e)) => Err(ProxyError::Invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn through(header: &[u8]) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut sent = header.to_vec();
        sent.extend_from_slice(b"\x16\x03\x01rest");
        let sender = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&sent).await.unwrap();
            s
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let result = read_header(&mut stream).await;
        let _keep = sender.await.unwrap();
        let mut rest = vec![0u8; 8];
        let n = if result.is_ok() { stream.read(&mut rest).await.unwrap() } else { 0 };
        (result, rest[..n].to_vec())
    }

    #[tokio::test]
    async fn a_v1_header_names_the_client_and_leaves_the_handshake() {
        let (client, rest) = through(b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 8883\r\n").await;
        assert_eq!(client.unwrap(), Some("203.0.113.7:56324".parse().unwrap()));
        assert_eq!(rest, b"\x16\x03\x01rest");
        let (client, _) = through(b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 8883\r\n").await;
        assert_eq!(client.unwrap(), Some("[2001:db8::7]:4000".parse().unwrap()));
        let (client, _) = through(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(client.unwrap(), None);
    }

    #[tokio::test]
    async fn a_v2_header_names_the_client_and_leaves_the_handshake() {
        let source: SocketAddr = "198.51.100.4:41000".parse().unwrap();
        let destination: SocketAddr = "192.0.2.1:8883".parse().unwrap();
        let header = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (source, destination),
        )
        .build()
        .unwrap();
        let (client, rest) = through(&header).await;
        assert_eq!(client.unwrap(), Some(source));
        assert_eq!(rest, b"\x16\x03\x01rest");
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        let (result, _) = through(b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(matches!(result, Err(ProxyError::Invalid(_))), "{result:?}");
    }
}
