//! Routes of webhooks in: `POST /hooks/github`, `POST /hooks/gitlab` and
//! `POST /hooks/generic/{name}`. Each reads the raw body (up to
//! [`super::MAX_HOOK_BODY`]) and the signature headers, draws on the
//! sender's address budget, and hands them to `hooks`; a bad signature is
//! counted and audited like a wrong admin token.

use super::context::{ctx, Ctx};
use super::errors::respond;
use super::{body_up_to, with_state, Routes, State, MAX_HOOK_BODY};
use crate::error::{Coded, Error, Kind};
use crate::hooks::{Handled, Headers, Source};
use crate::limits::Bucket;
use std::sync::Arc;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::Filter;

/// Which hook a route serves.
#[derive(Debug, Clone)]
enum Route {
    GitHub,
    GitLab,
    Generic(String),
}

/// The webhook routes.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let github = warp::path!("hooks" / "github").map(|| Route::GitHub);
    let gitlab = warp::path!("hooks" / "gitlab").map(|| Route::GitLab);
    let generic = warp::path!("hooks" / "generic" / String).map(Route::Generic);
    let route = github.or(gitlab).unify().or(generic).unify();
    route
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(body_up_to(MAX_HOOK_BODY))
        .and(with_state(state))
        .and(ctx())
        .then(deliver)
        .boxed()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The headers each sender signs and names its deliveries with.
fn read_headers<'a>(route: &Route, h: &'a HeaderMap) -> Headers<'a> {
    match route {
        Route::GitHub => Headers {
            signature: header(h, "x-hub-signature-256"),
            delivery: header(h, "x-github-delivery"),
            event: header(h, "x-github-event"),
            timestamp: None,
        },
        Route::GitLab => Headers {
            signature: header(h, "x-gitlab-token"),
            delivery: header(h, "idempotency-key").or_else(|| header(h, "x-gitlab-event-uuid")),
            event: header(h, "x-gitlab-event"),
            timestamp: None,
        },
        Route::Generic(_) => Headers {
            signature: header(h, "x-topdog-signature-256"),
            delivery: None,
            event: None,
            timestamp: header(h, "x-topdog-timestamp"),
        },
    }
}

async fn deliver(route: Route, headers: HeaderMap, body: bytes::Bytes, state: Arc<State>, ctx: Ctx) -> Response {
    let source = match &route {
        Route::GitHub => Source::GitHub,
        Route::GitLab => Source::GitLab,
        Route::Generic(name) => Source::Generic(name),
    };
    let result = async {
        ctx.limit(&state, Bucket::Hooks)?;
        match state.hooks.receive(source, read_headers(&route, &headers), &body).await {
            Err(e) if e.kind() == Kind::Unauthenticated => {
                ctx.wrong_credential(&state, &format!("{} hook", source.name()), e.code()).await?;
                Err(Error::from(e))
            }
            other => Ok(other?),
        }
    };
    match result.await {
        Ok(ignored @ Handled::Ignored { .. }) => respond(StatusCode::ACCEPTED, Ok::<_, Error>(ignored)),
        other => respond(StatusCode::OK, other),
    }
}
