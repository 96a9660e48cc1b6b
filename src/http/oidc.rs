//! Routes of single sign-on: `GET /auth/login` sends the browser to the
//! company's OpenID provider (with a login cookie that binds the callback
//! to this browser); `GET /auth/callback` finishes the sign-in, starts a
//! console session for the person (audited by name and role) and sends the
//! browser to the console, or shows a page saying why not. Both draw on the
//! client's budget; only a sign-in that named a real state is audited, so
//! junk cannot grow the audit log.

use super::context::{ctx, Ctx};
use super::page::{escape, Assets, PAGE_CSP};
use super::session::{cookie, with_cookie};
use super::{with_state, Routes, State};
use crate::audit::{Actor, Event};
use crate::auth::oidc::{Callback, OidcError, CALLBACK_PATH};
use crate::auth::sessions::{Who, TTL};
use crate::error::{Coded, Error, Kind};
use crate::limits::Bucket;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

/// The cookie that binds a sign-in to the browser that began it. `Lax`:
/// it must come along on the provider's redirect back, a top-level GET
/// from another site.
const LOGIN_COOKIE: &str = "topdog_login";

/// The single sign-on routes.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let s = move || with_state(state.clone());
    let login = warp::path!("auth" / "login").and(warp::get()).and(s()).and(ctx()).then(login);
    let callback = warp::path!("auth" / "callback")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::cookie::optional::<String>(LOGIN_COOKIE))
        .and(s())
        .and(ctx())
        .then(callback);
    login.or(callback).unify().boxed()
}

fn login_cookie(value: &str, max_age: i64) -> HeaderValue {
    let text =
        format!("{LOGIN_COOKIE}={value}; Path={CALLBACK_PATH}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("topdog_login=; Max-Age=0"))
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn login(state: Arc<State>, ctx: Ctx) -> Response {
    let begun = async {
        ctx.limit(&state, Bucket::Accepts)?;
        let oidc = state.oidc.as_ref().ok_or(OidcError::NotConfigured)?;
        Ok::<_, Error>(oidc.begin().await?)
    };
    match begun.await {
        Ok(begun) => with_cookie(redirect(&begun.url), login_cookie(&begun.browser, 600)),
        Err(e) => refused_page(&e),
    }
}

#[derive(Deserialize)]
struct Query {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(query: HashMap<String, String>, browser: Option<String>, state: Arc<State>, ctx: Ctx) -> Response {
    let query: Query = match serde_json::to_value(query).and_then(serde_json::from_value) {
        Ok(q) => q,
        Err(_) => return refused_page(&OidcError::UnknownState.into()),
    };
    let finished = async {
        ctx.limit(&state, Bucket::Accepts)?;
        let oidc = state.oidc.as_ref().ok_or(OidcError::NotConfigured)?;
        let error =
            query.error.map(|e| format!("{e} {}", query.error_description.unwrap_or_default()).trim().to_owned());
        let callback =
            Callback { state: query.state.as_deref(), code: query.code.as_deref(), error, browser: browser.as_deref() };
        let outcome = oidc.finish(callback).await;
        audit(&state, &ctx, &outcome).await;
        Ok::<_, Error>(outcome?)
    };
    let signed_in = match finished.await {
        Ok(signed_in) => signed_in,
        Err(e) => return with_cookie(refused_page(&e), login_cookie("", 0)),
    };
    if let Err(e) = state.people.signed_in(&signed_in.person).await {
        return refused_page(&e.into());
    }
    let started = state.sessions.start(Who::Person { person: signed_in.person, id_token: signed_in.id_token });
    let response = with_cookie(redirect("/"), cookie(&started.id, TTL.num_seconds()));
    with_cookie(response, login_cookie("", 0))
}

/// Audits a sign-in that got as far as a known state.
async fn audit(state: &State, ctx: &Ctx, outcome: &Result<crate::auth::oidc::SignedIn, OidcError>) {
    let event = match outcome {
        Ok(done) => {
            let actor = Actor::Person(done.person.user_id.to_string());
            Event::new(&actor, "person.signin", format!("console ({})", done.person.role.as_str()), "ok")
        }
        Err(OidcError::UnknownState | OidcError::NotConfigured | OidcError::Busy) => return,
        Err(e) => {
            let actor = Actor::Client(ctx.client_address().unwrap_or_else(|| "local".into()));
            tracing::warn!(error = %e, "a sign-in through the identity provider was refused");
            Event::new(&actor, "person.signin", "console", e.code())
        }
    };
    state.audit.record(event).await;
}

/// A page that says why the sign-in did not happen.
fn refused_page(error: &Error) -> Response {
    let (code, kind) = error.coded();
    let status = super::errors::status(kind);
    let message = match kind {
        Kind::Internal => "The appliance could not finish the sign-in; its log says why.".to_owned(),
        _ => error.to_string(),
    };
    let help = match code {
        "oidc_no_role" => "Ask your administrator to add you to the Top Dog admins' or developers' group.",
        "oidc_provider_unavailable" => "The appliance could not reach the identity provider; try again in a minute.",
        "rate_limited" => "Too many attempts from this address; wait a minute.",
        _ => "Start the sign-in again from the appliance's page.",
    };
    let template =
        Assets::get("signin.html").map(|f| String::from_utf8_lossy(&f.data).into_owned()).unwrap_or_default();
    let html = template.replace("{{code}}", code).replace("{{message}}", &escape(&message)).replace("{{help}}", help);
    let reply = warp::reply::with_status(warp::reply::html(html), status);
    warp::reply::with_header(reply, "content-security-policy", PAGE_CSP).into_response()
}
