//! What the http layer knows about a request before any handler runs: the
//! connection it came on (peer address, or the local admin socket), its
//! credentials and user agent; plus the per-request log line and metric,
//! labelled by route template so no code or id lands in a label.

use crate::audit::Actor;
use crate::auth::admin::AdminError;
use crate::auth::api_tokens::{self, ApiTokenError, Grant, Scope};
use crate::auth::sessions::{SessionError, Who};
use crate::devices::Authenticated;
use crate::error::Coded;
use crate::error::Error;
use crate::limits::{Bucket, ClientKey};
use crate::metrics::Metrics;
use crate::people::{Person, Role};
use std::net::SocketAddr;
use warp::http::Method;
use warp::Filter;

use super::State;

/// Facts about the connection, put on each request by `serve`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnInfo {
    /// The peer's address (None on the Unix socket).
    pub peer: Option<SocketAddr>,
    /// The client's address: the peer's, or the one a trusted proxy
    /// forwarded (None on the Unix socket).
    pub client: Option<std::net::IpAddr>,
    /// Whether the request came on the local admin socket.
    pub local_admin: bool,
}

/// A request's credentials and origin.
#[derive(Debug, Clone)]
pub(super) struct Ctx {
    conn: Option<ConnInfo>,
    admin_token: Option<String>,
    bearer: Option<String>,
    user_agent: Option<String>,
    session: Option<String>,
    csrf: Option<String>,
    changes_state: bool,
}

/// Extracts the request context (rejects only unreadable headers).
pub(super) fn ctx() -> impl Filter<Extract = (Ctx,), Error = warp::Rejection> + Clone {
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

/// Who is asking (for the audit), and which users they may reach.
#[derive(Debug, Clone)]
pub(super) struct Caller {
    /// Who acts.
    pub actor: Actor,
    grant: Option<Grant>,
}

impl Caller {
    /// Refuses unless the caller may notify or ask `user` (an API token
    /// limited to users; admins reach everyone).
    pub(super) fn may_reach(&self, user: &str) -> Result<(), Error> {
        match &self.grant {
            Some(grant) => Ok(grant.may_reach(user)?),
            None => Ok(()),
        }
    }

    /// Whether the caller may reach only some users.
    pub(super) fn is_limited(&self) -> bool {
        self.grant.as_ref().is_some_and(Grant::is_limited)
    }
}

impl Ctx {
    /// Admits the admin token, a console session or the local socket, and
    /// nothing else (backups, console sign-in); an API token is refused.
    pub(super) async fn admin(&self, state: &State) -> Result<Actor, Error> {
        if self.is_local_admin() {
            return Ok(Actor::AdminSocket);
        }
        if let Some(token) = self.api_token() {
            self.check_api_token(state, token).await?;
            return Err(ApiTokenError::AdminOnly.into());
        }
        if let (None, Some(session)) = (&self.admin_token, &self.session) {
            return match state.sessions.check(session, self.csrf.as_deref(), self.changes_state)? {
                Who::AdminToken => Ok(Actor::Admin),
                Who::Person { person, .. } if person.role == Role::Admin => {
                    Ok(Actor::Person(person.user_id.to_string()))
                }
                Who::Person { .. } => Err(SessionError::NotAdmin.into()),
            };
        }
        self.check_token(state, self.admin_token.as_deref()).await
    }

    /// Admits a person's console session (an admin's or a developer's),
    /// for their own phones; who they are.
    pub(super) fn person(&self, state: &State) -> Result<Person, Error> {
        let session = self.session.as_deref().ok_or(SessionError::Ended)?;
        match state.sessions.check(session, self.csrf.as_deref(), self.changes_state)? {
            Who::Person { person, .. } => Ok(person),
            Who::AdminToken => Err(SessionError::NoPerson.into()),
        }
    }

    /// Admits an API token holding `scope` (within its own rate budget), or
    /// an admin as [`Ctx::admin`] does.
    pub(super) async fn authorize(&self, state: &State, scope: Scope) -> Result<Caller, Error> {
        let Some(token) = self.api_token().filter(|_| !self.is_local_admin()) else {
            return Ok(Caller { actor: self.admin(state).await?, grant: None });
        };
        let grant = self.check_api_token(state, token).await?;
        if let Err(refused) = grant.require(scope) {
            tracing::warn!(token = grant.name(), scope = scope.as_str(), "API token used outside its scopes");
            return Err(refused.into());
        }
        state.limits.check_token(grant.name())?;
        Ok(Caller { actor: grant.actor(), grant: Some(grant) })
    }

    /// Checks an admin token given in the body (console sign-in) the same
    /// way as one in the header.
    pub(super) async fn admin_with_token(&self, state: &State, token: &str) -> Result<Actor, Error> {
        self.check_token(state, Some(token)).await
    }

    /// The API token presented (`x-admin-token` or `Authorization: Bearer`),
    /// told apart by its prefix.
    fn api_token(&self) -> Option<&str> {
        let is_api = |t: &&str| t.starts_with(api_tokens::PREFIX);
        self.admin_token.as_deref().filter(is_api).or_else(|| self.bearer.as_deref().filter(is_api))
    }

    async fn check_api_token(&self, state: &State, token: &str) -> Result<Grant, Error> {
        match state.api_tokens.authenticate(token) {
            Ok(grant) => Ok(grant),
            Err(e) => {
                if matches!(e, ApiTokenError::Unknown | ApiTokenError::Expired(_)) {
                    self.wrong_credential(state, "api token", e.code()).await?;
                }
                Err(e.into())
            }
        }
    }

    /// Counts and audits a wrong credential: it draws on the client's invite
    /// budget and on one appliance-wide budget, which bounds both guessing
    /// and the audit lines it writes.
    pub(super) async fn wrong_credential(&self, state: &State, what: &str, code: &str) -> Result<(), Error> {
        if !self.is_local_admin() {
            state.limits.admin_failure(self.client())?;
        }
        let event = crate::audit::Event::new(&Actor::Client(self.peer_ip()), "admin.auth", what, code);
        state.audit.record(event).await;
        tracing::warn!(peer = %self.peer_ip(), credential = what, code, "request with a wrong credential");
        Ok(())
    }

    /// The console session id from the cookie.
    pub(super) fn session_id(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// The client's user agent.
    pub(super) fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    async fn check_token(&self, state: &State, token: Option<&str>) -> Result<Actor, Error> {
        match state.admin.check(token) {
            Ok(()) => Ok(Actor::Admin),
            Err(e) => {
                if matches!(e, AdminError::Invalid) {
                    self.wrong_credential(state, "admin token", e.code()).await?;
                }
                Err(e.into())
            }
        }
    }

    /// Admits a device by its bearer token.
    pub(super) fn device(&self, state: &State) -> Result<Authenticated, Error> {
        let auth = state.devices.authenticate(self.bearer.as_deref())?;
        state.devices.touch(&auth);
        Ok(auth)
    }

    /// Admits a device by its bearer token, also while it waits for an
    /// admin's approval (only `GET /phone/me`).
    pub(super) fn device_waiting(&self, state: &State) -> Result<Authenticated, Error> {
        Ok(state.devices.authenticate_waiting(self.bearer.as_deref())?)
    }

    /// The client's address, where known (not on the admin socket).
    pub(super) fn client_address(&self) -> Option<String> {
        self.conn.and_then(|c| c.client).map(|ip| ip.to_string())
    }

    /// Takes one request from this client's budget.
    pub(super) fn limit(&self, state: &State, bucket: Bucket) -> Result<(), Error> {
        if self.is_local_admin() {
            return Ok(());
        }
        Ok(state.limits.check(bucket, self.client())?)
    }

    /// The bearer token, if any.
    pub(super) fn bearer(&self) -> Option<&str> {
        self.bearer.as_deref()
    }

    /// Whether the client is on this machine (loopback or the admin socket).
    pub(super) fn is_loopback(&self) -> bool {
        match self.conn {
            Some(ConnInfo { client: Some(ip), .. }) => ip.is_loopback() || ClientKey::of(Some(ip)).is_loopback(),
            Some(ConnInfo { local_admin, .. }) => local_admin,
            None => false,
        }
    }

    fn is_local_admin(&self) -> bool {
        self.conn.is_some_and(|c| c.local_admin)
    }

    /// The key this client's budgets are counted under: its address only.
    fn client(&self) -> ClientKey {
        ClientKey::of(self.conn.and_then(|c| c.client))
    }

    fn peer_ip(&self) -> String {
        match self.conn {
            Some(ConnInfo { client: Some(ip), .. }) => ip.to_string(),
            _ => "local".into(),
        }
    }
}

/// Logs and counts one answered request.
pub(super) fn log_request(metrics: &Metrics, info: &warp::log::Info<'_>) {
    let route = super::routes_table::route_template(info.path());
    let status = info.status().as_u16();
    metrics.http_request(route, info.method().as_str(), status);
    tracing::debug!(method = %info.method(), route, status, elapsed_ms = info.elapsed().as_millis() as u64, "request");
}
