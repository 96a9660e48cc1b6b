//! The HTTP layer: warp filters that parse and authenticate each request,
//! call a domain function, and turn its result into JSON (or the pairing
//! page). `routes` puts every module's routes together with one `recover`;
//! `serve` runs them over TLS, plain TCP or the admin Unix socket.

pub(crate) mod acme;
mod ca;
mod context;
mod devices;
pub(crate) mod errors;
mod events;
mod hooks;
mod license;
mod messaging;
mod my;
mod oidc;
mod ops;
mod page;
mod pairing;
mod push;
mod request_id;
mod routes_table;
pub(crate) mod serve;
mod session;
#[cfg(feature = "dev-license-key")]
mod test_clock;
mod tokens;

pub(crate) use context::ConnInfo;
pub use routes_table::ROUTES;

use crate::audit::AuditLog;
use crate::auth::admin::AdminToken;
use crate::auth::tokens::Tokens;
use crate::devices::Devices;
use crate::limits::RateLimits;
use crate::metrics::Metrics;
use crate::pairing::Pairing;
use std::sync::Arc;
use warp::{Filter, Reply};

/// Everything the handlers need, shared by every connection.
pub(crate) struct State {
    /// Pairing service.
    pub(crate) pairing: Pairing,
    /// Device service.
    pub(crate) devices: Devices,
    /// License and seats.
    pub(crate) licensing: crate::licensing::Licensing,
    /// Admin token checker.
    pub(crate) admin: AdminToken,
    /// Rate limits.
    pub(crate) limits: RateLimits,
    /// Metrics.
    pub(crate) metrics: Metrics,
    /// Token signer (for the JWKS).
    pub(crate) tokens: Arc<Tokens>,
    /// Audit log.
    pub(crate) audit: AuditLog,
    /// Whether device routes need the admin token.
    pub(crate) devices_require_admin: bool,
    /// When the appliance started.
    pub(crate) started_at: std::time::Instant,
    /// The store (for backups).
    pub(crate) store: crate::store::Store,
    /// The data directory (for backups).
    pub(crate) data_dir: crate::store::datadir::DataDir,
    /// The MQTT gateway (to close a blocked device's connections).
    pub(crate) gateway: crate::mqtt::gateway::Gateway,
    /// Notifications, approvals, commands, control messages.
    pub(crate) messaging: crate::messaging::Messaging,
    /// Cancelled when the appliance stops (ends long-lived streams).
    pub(crate) shutdown: tokio_util::sync::CancellationToken,
    /// Admin console sessions.
    pub(crate) sessions: crate::auth::sessions::Sessions,
    /// Longest long poll (`?wait=` is clamped to it).
    pub(crate) long_poll_max: std::time::Duration,
    /// The token `/metrics` needs (None: loopback clients and admins).
    pub(crate) metrics_token: Option<String>,
    /// The appliance's clock.
    pub(crate) clock: crate::clock::Clock,
    /// Web Push to phones.
    pub(crate) push: crate::push::Push,
    /// Certificates by ACME, when on.
    pub(crate) acme: Option<Arc<crate::acme::Acme>>,
    /// The nodes' heartbeats.
    pub(crate) nodes: crate::cluster::nodes::Nodes,
    /// This node among the nodes sharing the store.
    pub(crate) cluster: crate::cluster::Cluster,
    /// The appliance CA (its certificate for `/ca`).
    pub(crate) ca: Arc<crate::pki::Ca>,
    /// The server certificate the listeners present.
    pub(crate) server_cert: Arc<crate::pki::live::LiveCert>,
    /// Scoped API tokens.
    pub(crate) api_tokens: crate::auth::api_tokens::ApiTokens,
    /// Webhooks in.
    pub(crate) hooks: crate::hooks::Hooks,
    /// People who sign in to the console, and their roles.
    pub(crate) people: crate::people::People,
    /// Single sign-on through the company's OpenID provider, when set up.
    pub(crate) oidc: Option<Arc<crate::auth::oidc::Oidc>>,
}

/// Largest JSON body accepted (a notification's 4,000 characters of body,
/// each escaped as `\uXXXX`, fit).
pub(crate) const MAX_BODY: u64 = 64 * 1024;

/// Largest webhook body accepted (forges send whole repositories' worth of
/// context with each event).
pub(crate) const MAX_HOOK_BODY: u64 = 1024 * 1024;

/// The largest body a request to `path` may carry.
pub(crate) fn body_limit(path: &str) -> u64 {
    if path.starts_with("/hooks/") {
        MAX_HOOK_BODY
    } else {
        MAX_BODY
    }
}

/// Largest total size of a request's headers (names and values).
pub(crate) const MAX_HEADERS: usize = 32 * 1024;

/// A request whose headers are larger than [`MAX_HEADERS`].
#[derive(Debug)]
pub(crate) struct HeadersTooLarge;

impl warp::reject::Reject for HeadersTooLarge {}

/// Refuses requests with oversized headers (hyper's own limit applies only
/// while a head is still arriving, not to one read in a single piece).
fn header_limit() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::header::headers_cloned()
        .and_then(|headers: warp::http::HeaderMap| async move {
            let size: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
            if size > MAX_HEADERS {
                Err(warp::reject::custom(HeadersTooLarge))
            } else {
                Ok(())
            }
        })
        .untuple_one()
}

/// A module's routes, boxed.
type Routes = warp::filters::BoxedFilter<(warp::reply::Response,)>;

fn with_state(state: Arc<State>) -> impl Filter<Extract = (Arc<State>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// How long a client has to send a request's body, once its headers are in.
pub(crate) const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why a request's body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyRefused {
    /// It did not arrive within [`BODY_TIMEOUT`].
    TimedOut,
    /// It grew past [`MAX_BODY`] (whatever its Content-Length said).
    TooLarge,
    /// The connection broke off in the middle of it.
    Broken,
}

impl warp::reject::Reject for BodyRefused {}

/// A JSON body: declared with a Content-Length of at most [`MAX_BODY`] and
/// arriving whole within [`BODY_TIMEOUT`] (a trickled body cannot hold a
/// connection).
fn json_body() -> impl Filter<Extract = (bytes::Bytes,), Error = warp::Rejection> + Clone {
    body_up_to(MAX_BODY)
}

/// A body of at most `limit` bytes, arriving whole within [`BODY_TIMEOUT`].
fn body_up_to(limit: u64) -> impl Filter<Extract = (bytes::Bytes,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(limit).and(warp::body::stream()).and_then(move |body| async move {
        match tokio::time::timeout(BODY_TIMEOUT, collect_body(body, limit)).await {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(refused)) => Err(warp::reject::custom(refused)),
            Err(_) => Err(warp::reject::custom(BodyRefused::TimedOut)),
        }
    })
}

/// Reads a body whole.
async fn collect_body<S, B>(body: S, limit: u64) -> Result<bytes::Bytes, BodyRefused>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use bytes::BufMut;
    use futures_util::StreamExt;
    let mut all = bytes::BytesMut::new();
    futures_util::pin_mut!(body);
    while let Some(chunk) = body.next().await {
        all.put(chunk.map_err(|_| BodyRefused::Broken)?);
        if all.len() as u64 > limit {
            return Err(BodyRefused::TooLarge);
        }
    }
    Ok(all.freeze())
}

/// Routes only test builds serve (the test clock).
#[cfg(feature = "dev-license-key")]
fn test_routes(state: Arc<State>) -> Routes {
    test_clock::routes(state)
}

/// Release builds serve no test routes.
#[cfg(not(feature = "dev-license-key"))]
fn test_routes(_: Arc<State>) -> Routes {
    warp::any().and_then(|| async { Err::<warp::reply::Response, _>(warp::reject::not_found()) }).boxed()
}

/// All routes, with request metrics, security headers and one `recover`.
pub(crate) fn routes(
    state: Arc<State>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible> + Clone {
    let metrics = state.metrics.clone();
    let api = header_limit().and(
        pairing::routes(state.clone())
            .or(devices::routes(state.clone()))
            .unify()
            .or(ops::routes(state.clone()))
            .unify()
            .or(license::routes(state.clone()))
            .unify()
            .or(messaging::routes(state.clone()))
            .unify()
            .or(push::routes(state.clone()))
            .unify()
            .or(events::routes(state.clone()))
            .unify()
            .or(session::routes(state.clone()))
            .unify()
            .or(oidc::routes(state.clone()))
            .unify()
            .or(my::routes(state.clone()))
            .unify()
            .or(tokens::routes(state.clone()))
            .unify()
            .or(hooks::routes(state.clone()))
            .unify()
            .or(test_routes(state.clone()))
            .unify()
            .or(ca::routes(state.clone()))
            .unify()
            .or(page::routes(state))
            .unify(),
    );
    warp::path::full()
        .and(api.recover(errors::recover).unify())
        .map(|path: warp::path::FullPath, response| errors::allow_header(path.as_str(), response))
        .map(errors::secure_headers)
        .with(warp::log::custom(move |info| context::log_request(&metrics, &info)))
        .map(Reply::into_response)
}
