//! Routes of the console's session: `POST /admin/session` `{admin_token}`
//! (the break-glass way in) sets the session cookie and returns the CSRF
//! token; `GET /admin/session` returns it again for a live session (a
//! reloaded page, or the first page after single sign-on) with who it is
//! for and their role; `DELETE /admin/session` signs out, giving the
//! provider's logout URL where it has one. Wrong tokens are rate limited
//! and audited like any wrong admin token.

use super::context::{ctx, Ctx};
use super::errors::{parse_json, reply_error, respond};
use super::{json_body, with_state, Routes, State};
use crate::audit::{Actor, Event};
use crate::auth::sessions::{Started, Who, COOKIE, TTL};
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    admin_token: String,
}

#[derive(Serialize)]
struct SessionView {
    csrf_token: String,
    expires_at: crate::clock::Timestamp,
    /// `admin` or `developer`.
    role: &'static str,
    /// `admin_token` or `oidc`.
    signed_in_with: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

impl SessionView {
    fn of(csrf_token: String, expires_at: crate::clock::Timestamp, who: &Who) -> SessionView {
        match who {
            Who::AdminToken => SessionView {
                csrf_token,
                expires_at,
                role: "admin",
                signed_in_with: "admin_token",
                user_id: None,
                name: None,
            },
            Who::Person { person, .. } => SessionView {
                csrf_token,
                expires_at,
                role: person.role.as_str(),
                signed_in_with: "oidc",
                user_id: Some(person.user_id.to_string()),
                name: Some(person.name.clone()),
            },
        }
    }
}

/// The session routes.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let s = move || with_state(state.clone());
    let path = || warp::path!("admin" / "session");
    let sign_in = path().and(warp::post()).and(json_body()).and(s()).and(ctx()).then(sign_in);
    let current = path().and(warp::get()).and(s()).and(ctx()).then(current);
    let sign_out = path().and(warp::delete()).and(s()).and(ctx()).then(sign_out);
    sign_in.or(current).unify().or(sign_out).unify().boxed()
}

/// The session cookie.
pub(super) fn cookie(value: &str, max_age: i64) -> HeaderValue {
    let text = format!("{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("topdog_session=; Max-Age=0"))
}

/// `response`, setting a cookie.
pub(super) fn with_cookie(mut response: Response, value: HeaderValue) -> Response {
    response.headers_mut().append(header::SET_COOKIE, value);
    response
}

async fn sign_in(body: bytes::Bytes, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let SignIn { admin_token } = parse_json(&body)?;
        ctx.admin_with_token(&state, &admin_token).await?;
        let Started { id, csrf_token, expires_at } = state.sessions.start(Who::AdminToken);
        state.audit.record(Event::new(&Actor::Admin, "admin.signin", "console (admin token, break-glass)", "ok")).await;
        Ok::<_, Error>((id, SessionView::of(csrf_token, expires_at, &Who::AdminToken)))
    };
    match result.await {
        Ok((id, view)) => with_cookie(respond(StatusCode::OK, Ok(view)), cookie(&id, TTL.num_seconds())),
        Err(e) => reply_error(&e),
    }
}

async fn current(state: Arc<State>, ctx: Ctx) -> Response {
    let result =
        ctx.session_id().ok_or(crate::auth::sessions::SessionError::Ended).and_then(|id| state.sessions.get(id));
    respond(StatusCode::OK, result.map(|l| SessionView::of(l.csrf_token, l.expires_at, &l.who)).map_err(Error::from))
}

/// Signs out (the admin token's session or a person's); a person is sent
/// on to the provider's logout where it has one, which ends its session too.
async fn sign_out(state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let actor = match ctx.person(&state) {
            Ok(person) => Actor::Person(person.user_id.to_string()),
            Err(_) => ctx.admin(&state).await?,
        };
        let ended = ctx.session_id().and_then(|id| state.sessions.end(id));
        let logout_url = match (ended, &state.oidc) {
            (Some(Who::Person { id_token, .. }), Some(oidc)) => oidc.logout_url(&id_token).await,
            _ => None,
        };
        state.audit.record(Event::new(&actor, "console.signout", "console", "ok")).await;
        Ok::<_, Error>(serde_json::json!({"signed_out": true, "logout_url": logout_url}))
    };
    match result.await {
        Ok(body) => with_cookie(respond(StatusCode::OK, Ok(body)), cookie("", 0)),
        Err(e) => reply_error(&e),
    }
}
