//! Running the routes: an accept loop per listener (TLS over TCP, plain TCP
//! when asked for, or the local admin Unix socket). Each connection is
//! handled in its own task — the TLS handshake too, with a timeout — by
//! hyper-util, with header-read timeouts and graceful shutdown. TCP clients
//! are held to their address's share of connections and handshakes
//! (`conn_limits`).

use super::request_id::WithRequestId;
use super::ConnInfo;
use crate::limits::connections::{Admitted, ConnLimits};
use crate::pki::live::ACME_TLS_ALPN;
use crate::proxy::TrustedProxies;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

/// How long a client has to finish the TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's headers.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once, in all.
pub(crate) const MAX_PENDING_HANDSHAKES: usize = 512;
/// Handshakes in progress at once from one address.
pub(crate) const MAX_PENDING_PER_ADDRESS: usize = 16;

/// Puts `ConnInfo` on every request of a connection, with the client
/// address a trusted proxy forwarded for that request.
#[derive(Clone)]
struct WithConn<S> {
    inner: S,
    info: ConnInfo,
    trusted: Arc<TrustedProxies>,
}

impl<S, B> Service<http::Request<B>> for WithConn<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let mut info = self.info;
        info.client = info.peer.map(|p| crate::proxy::forwarded::client(p.ip(), req.headers(), &self.trusted));
        req.extensions_mut().insert(info);
        self.inner.call(req)
    }
}

/// Most of an oversized body read (and thrown away) before its 413.
const DRAIN_MAX: u64 = 8 * 1024 * 1024;

/// Answers a request whose declared body is over its route's limit with
/// a 413, having read and thrown away the body first (up to [`DRAIN_MAX`],
/// within the body timeout): answering while the client is still sending
/// makes HTTP/2 reset the stream and HTTP/1.1 close the connection under
/// the client's upload, and clients such as curl or Python's then report
/// no reply at all. A client that asked `Expect: 100-continue` has sent
/// nothing yet and gets the answer at once.
#[derive(Clone)]
struct TooLarge<S> {
    inner: S,
}

fn declared_too_large<B>(req: &http::Request<B>) -> bool {
    let length = req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    length.is_some_and(|n| n > super::body_limit(req.uri().path()))
}

fn waits_to_send<B>(req: &http::Request<B>) -> bool {
    req.headers().get(http::header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads a body to its end (or [`DRAIN_MAX`]), keeping none of it.
async fn drain(mut body: hyper::body::Incoming) {
    use http_body_util::BodyExt;
    let mut read = 0u64;
    let to_end = async {
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > DRAIN_MAX {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(super::BODY_TIMEOUT, to_end).await;
}

impl<S> Service<http::Request<hyper::body::Incoming>> for TooLarge<S>
where
    S: Service<http::Request<hyper::body::Incoming>, Response = warp::reply::Response>,
    S::Future: Send + 'static,
{
    type Response = warp::reply::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        if declared_too_large(&req) {
            let limit = super::body_limit(req.uri().path());
            return Box::pin(async move {
                if !waits_to_send(&req) {
                    drain(req.into_body()).await;
                }
                let detail = format!("the body may be at most {} bytes", limit);
                let answer =
                    super::errors::error_body(http::StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", &detail);
                Ok(super::errors::secure_headers(answer))
            });
        }
        Box::pin(self.inner.call(req))
    }
}

/// The filter every connection serves.
pub(crate) trait Routes:
    warp::Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone + Send + Sync + 'static
{
}
impl<F> Routes for F where
    F: warp::Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Shared by the accept loops: the shutdown signal and the connection
/// tracker.
#[derive(Clone)]
pub(crate) struct Lifecycle {
    /// Becomes true when the appliance is shutting down.
    pub stop: watch::Receiver<bool>,
    /// Tracks open connections for a graceful drain.
    pub graceful: Arc<GracefulShutdown>,
    /// Per-address shares of the TCP listener's connections.
    pub limits: ConnLimits,
    /// Proxies whose forwarded client addresses are believed.
    pub trusted: Arc<TrustedProxies>,
}

impl Lifecycle {
    /// What one connection holds of the lifecycle: its graceful-shutdown
    /// watcher and the trusted proxies (never the lifecycle itself, whose
    /// shutdown handle must be free once the listeners stop).
    fn held(&self) -> (Watcher, Arc<TrustedProxies>) {
        (self.graceful.watcher(), self.trusted.clone())
    }
}

fn serve_connection<I, R>(
    io: I,
    info: ConnInfo,
    routes: R,
    (watcher, trusted): (Watcher, Arc<TrustedProxies>),
) -> impl Future<Output = ()> + Send + 'static
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: Routes,
{
    let routes = TooLarge { inner: WithConn { inner: warp::service(routes), info, trusted } };
    let service = TowerToHyperService::new(WithRequestId { inner: routes });
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_buf_size(64 * 1024);
    builder.http2().timer(TokioTimer::new()).max_header_list_size(64 * 1024);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
    let watched = watcher.watch(conn);
    async move {
        if let Err(e) = watched.await {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// A listening socket.
trait Accept {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn next(&self) -> impl Future<Output = std::io::Result<(Self::Io, Option<SocketAddr>)>> + Send;
}

impl Accept for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn next(&self) -> std::io::Result<(Self::Io, Option<SocketAddr>)> {
        let (stream, peer) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, Some(peer)))
    }
}

impl Accept for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn next(&self) -> std::io::Result<(Self::Io, Option<SocketAddr>)> {
        Ok((self.accept().await?.0, None))
    }
}

/// Accepts connections until `stop` turns true, handing each to `handle`.
async fn accept_loop<L: Accept>(
    listener: L,
    mut stop: watch::Receiver<bool>,
    mut handle: impl FnMut(L::Io, Option<SocketAddr>),
) {
    loop {
        tokio::select! {
            accepted = listener.next() => match accepted {
                Ok((io, peer)) => handle(io, peer),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => break,
        }
    }
}

/// Counts a TCP connection against its address, or turns it away.
fn admit(limits: &ConnLimits, peer: Option<SocketAddr>) -> Option<Admitted> {
    let ip = peer.map_or(std::net::IpAddr::from([0u8; 4]), |p| p.ip());
    match limits.admit(ip) {
        Ok(admitted) => Some(admitted),
        Err(turned) => {
            tracing::debug!(?peer, reason = %turned, "connection dropped");
            None
        }
    }
}

/// The handshake, after the address's turn, within the handshake timeout.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: tokio::net::TcpStream,
    admitted: &Admitted,
) -> Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, String> {
    let accepted = async {
        let _turn = admitted.handshake_turn().await.map_err(|e| e.to_string())?;
        acceptor.accept(stream).await.map_err(|e| e.to_string())
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, accepted).await.map_err(|_| "timed out".to_owned())?
}

/// What is known of a TCP connection before its first request.
fn tcp(peer: Option<SocketAddr>) -> ConnInfo {
    ConnInfo { peer, client: peer.map(|p| p.ip()), local_admin: false }
}

/// Serves HTTPS on `listener` until shutdown. A TLS-ALPN-01 validation
/// (RFC 8737) ends with its handshake.
pub(crate) async fn serve_tls<R: Routes>(listener: TcpListener, acceptor: TlsAcceptor, routes: R, life: Lifecycle) {
    accept_loop(listener, life.stop.clone(), |stream, peer| {
        let Some(admitted) = admit(&life.limits, peer) else { return };
        let (acceptor, routes, held) = (acceptor.clone(), routes.clone(), life.held());
        tokio::spawn(async move {
            match handshake(&acceptor, stream, &admitted).await {
                Ok(tls) if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) => {
                    tracing::info!(?peer, "answered an ACME TLS-ALPN-01 validation");
                }
                Ok(tls) => serve_connection(tls, tcp(peer), routes, held).await,
                Err(e) => tracing::debug!(?peer, error = %e, "TLS handshake failed"),
            }
            drop(admitted);
        });
    })
    .await;
}

/// Serves plain HTTP on `listener` (only with `--insecure-http`).
pub(crate) async fn serve_plain<R: Routes>(listener: TcpListener, routes: R, life: Lifecycle) {
    accept_loop(listener, life.stop.clone(), |stream, peer| {
        let Some(admitted) = admit(&life.limits, peer) else { return };
        let served = serve_connection(stream, tcp(peer), routes.clone(), life.held());
        tokio::spawn(async move {
            served.await;
            drop(admitted);
        });
    })
    .await;
}

/// Serves the local admin socket: every request on it is an admin's.
pub(crate) async fn serve_unix<R: Routes>(listener: UnixListener, routes: R, life: Lifecycle) {
    accept_loop(listener, life.stop.clone(), |stream, _| {
        let info = ConnInfo { peer: None, client: None, local_admin: true };
        tokio::spawn(serve_connection(stream, info, routes.clone(), life.held()));
    })
    .await;
}
