//! What the http layer knows about a request before any handler runs: the
//! connection it came on (peer address, or the local admin socket), its
//! credentials and user agent; plus the per-request log line and metric,
//! labelled by route template so no code or id lands in a label.

use crate::audit::Actor;
use crate::auth::admin::AdminError;
use crate::devices::Authenticated;
use crate::error::Error;
use crate::limits::{Bucket, ClientKey};
use crate::metrics::Metrics;
use std::net::SocketAddr;
use warp::http::Method;
use warp::Filter;

use super::State;

/// Facts about the connection, put on each request by `serve`.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The peer's address (None on the Unix socket).
    pub peer: Option<SocketAddr>,
    /// Whether the request came on the local admin socket.
    pub local_admin: bool,
}

/// A request's credentials and origin.
#[derive(Debug, Clone)]
pub struct Ctx {
    conn: Option<ConnInfo>,
    admin_token: Option<String>,
    bearer: Option<String>,
    user_agent: Option<String>,
    session: Option<String>,
    csrf: Option<String>,
    changes_state: bool,
}

/// Extracts the request context (rejects only unreadable headers).
pub fn ctx() -> impl Filter<Extract = (Ctx,), Error = warp::Rejection> + Clone {
    let credentials = warp::header::optional::<String>("x-admin-token")
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::cookie::optional::<String>(crate::auth::sessions::COOKIE))
        .and(warp::header::optional::<String>("x-csrf-token"));
    warp::ext::optional::<ConnInfo>()
        .and(credentials)
        .and(warp::header::optional::<String>("user-agent"))
        .and(warp::method())
        .map(|conn, admin_token, authorization: Option<String>, session, csrf, user_agent, method: Method| Ctx {
            conn,
            admin_token,
            bearer: authorization.and_then(|a| a.strip_prefix("Bearer ").map(|t| t.trim().to_owned())),
            user_agent,
            session,
            csrf,
            changes_state: !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS),
        })
}

impl Ctx {
    /// Admits an admin (socket or token), or says why not; wrong tokens are
    /// rate-limited and audited.
    pub async fn admin(&self, state: &State) -> Result<Actor, Error> {
        if self.conn.is_some_and(|c| c.local_admin) {
            return Ok(Actor::AdminSocket);
        }
        if let (None, Some(session)) = (&self.admin_token, &self.session) {
            state.sessions.check(session, self.csrf.as_deref(), self.changes_state)?;
            return Ok(Actor::Admin);
        }
        self.check_token(state, self.admin_token.as_deref()).await
    }

    /// Checks an admin token given in the body (console sign-in) the same
    /// way as one in the header.
    pub async fn admin_with_token(&self, state: &State, token: &str) -> Result<Actor, Error> {
        self.check_token(state, Some(token)).await
    }

    /// The console session id from the cookie.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// The client's user agent.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    async fn check_token(&self, state: &State, token: Option<&str>) -> Result<Actor, Error> {
        match state.admin.check(token) {
            Ok(()) => Ok(Actor::Admin),
            Err(e) => {
                if matches!(e, AdminError::Invalid) {
                    // Wrong tokens draw on the client's invite budget and on
                    // one appliance-wide budget, which bounds both guessing
                    // and the audit lines it writes.
                    if !self.is_local_admin() {
                        state.limits.admin_failure(self.client())?;
                    }
                    let event = crate::audit::Event::new(
                        &Actor::Client(self.peer_ip()),
                        "admin.auth",
                        "admin token",
                        "admin_token_invalid",
                    );
                    state.audit.record(event).await;
                    tracing::warn!(peer = %self.peer_ip(), "request with a wrong admin token");
                }
                Err(e.into())
            }
        }
    }

    /// Admits a device by its bearer token.
    pub fn device(&self, state: &State) -> Result<Authenticated, Error> {
        let auth = state.devices.authenticate(self.bearer.as_deref())?;
        state.devices.touch(&auth);
        Ok(auth)
    }

    /// Takes one request from this client's budget.
    pub fn limit(&self, state: &State, bucket: Bucket) -> Result<(), Error> {
        if self.is_local_admin() {
            return Ok(());
        }
        Ok(state.limits.check(bucket, self.client())?)
    }

    /// The bearer token, if any.
    pub fn bearer(&self) -> Option<&str> {
        self.bearer.as_deref()
    }

    /// Whether the client is on this machine (loopback or the admin socket).
    pub fn is_loopback(&self) -> bool {
        match self.conn {
            Some(ConnInfo { peer: Some(p), .. }) => p.ip().is_loopback() || ClientKey::of(Some(p.ip())).is_loopback(),
            Some(ConnInfo { local_admin, .. }) => local_admin,
            None => false,
        }
    }

    fn is_local_admin(&self) -> bool {
        self.conn.is_some_and(|c| c.local_admin)
    }

    /// The key this client's budgets are counted under: its address only.
    fn client(&self) -> ClientKey {
        ClientKey::of(self.conn.and_then(|c| c.peer).map(|p| p.ip()))
    }

    fn peer_ip(&self) -> String {
        match self.conn {
            Some(ConnInfo { peer: Some(p), .. }) => p.ip().to_string(),
            _ => "local".into(),
        }
    }
}

/// Logs and counts one answered request.
pub fn log_request(metrics: &Metrics, info: &warp::log::Info<'_>) {
    let route = super::routes_table::route_template(info.path());
    let status = info.status().as_u16();
    metrics.http_request(route, info.method().as_str(), status);
    tracing::debug!(method = %info.method(), route, status, elapsed_ms = info.elapsed().as_millis() as u64, "request");
}
