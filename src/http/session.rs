//! Routes of the admin console's sign-in: `POST /admin/session`
//! `{admin_token}` sets the session cookie and returns the CSRF token;
//! `GET /admin/session` returns it again for a live session (a reloaded
//! page); `DELETE /admin/session` signs out. Wrong tokens are rate limited
//! and audited like any wrong admin token.

use super::context::{ctx, Ctx};
use super::errors::{parse_json, reply_error, respond};
use super::{json_body, with_state, Routes, State};
use crate::audit::{Actor, Event};
use crate::auth::sessions::{Started, COOKIE, TTL};
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
}

/// The session routes.
pub fn routes(state: Arc<State>) -> Routes {
    let s = move || with_state(state.clone());
    let path = || warp::path!("admin" / "session");
    let sign_in = path().and(warp::post()).and(json_body()).and(s()).and(ctx()).then(sign_in);
    let current = path().and(warp::get()).and(s()).and(ctx()).then(current);
    let sign_out = path().and(warp::delete()).and(s()).and(ctx()).then(sign_out);
    sign_in.or(current).unify().or(sign_out).unify().boxed()
}

fn cookie(value: &str, max_age: i64) -> HeaderValue {
    let text = format!("{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("topdog_session=; Max-Age=0"))
}

fn with_cookie(mut response: Response, value: HeaderValue) -> Response {
    response.headers_mut().append(header::SET_COOKIE, value);
    response
}

async fn sign_in(body: bytes::Bytes, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let SignIn { admin_token } = parse_json(&body)?;
        ctx.admin_with_token(&state, &admin_token).await?;
        let Started { id, csrf_token, expires_at } = state.sessions.start();
        state.audit.record(Event::new(&Actor::Admin, "admin.signin", "console", "ok")).await;
        Ok::<_, Error>((id, SessionView { csrf_token, expires_at }))
    };
    match result.await {
        Ok((id, view)) => with_cookie(respond(StatusCode::OK, Ok(view)), cookie(&id, TTL.num_seconds())),
        Err(e) => reply_error(&e),
    }
}

async fn current(state: Arc<State>, ctx: Ctx) -> Response {
    let result =
        ctx.session_id().ok_or(crate::auth::sessions::SessionError::Ended).and_then(|id| state.sessions.get(id));
    respond(
        StatusCode::OK,
        result.map(|(csrf_token, expires_at)| SessionView { csrf_token, expires_at }).map_err(Error::from),
    )
}

async fn sign_out(state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        ctx.admin(&state).await?;
        if let Some(id) = ctx.session_id() {
            state.sessions.end(id);
        }
        Ok::<_, Error>(serde_json::json!({"signed_out": true}))
    };
    match result.await {
        Ok(body) => with_cookie(respond(StatusCode::OK, Ok(body)), cookie("", 0)),
        Err(e) => reply_error(&e),
    }
}
