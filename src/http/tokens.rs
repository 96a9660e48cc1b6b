//! Routes of `/admin/tokens`: list, create (the token is in the answer and
//! nowhere else) and revoke scoped API tokens (scope `admin`).

use super::context::{ctx, Ctx};
use super::errors::{parse_json, respond};
use super::{json_body, with_state, Routes, State};
use crate::audit::Event;
use crate::auth::api_tokens::{CreateRequest, Scope, TokenView};
use crate::error::Error;
use serde::Serialize;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

#[derive(Serialize)]
struct TokenList {
    tokens: Vec<TokenView>,
    count: usize,
}

/// The token routes.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let all = warp::path!("admin" / "tokens");
    let list = all.and(warp::get()).and(with_state(state.clone())).and(ctx()).then(list);
    let create = all.and(warp::post()).and(json_body()).and(with_state(state.clone())).and(ctx()).then(create);
    let one = warp::path!("admin" / "tokens" / String).and(warp::delete());
    let revoke = one.and(with_state(state)).and(ctx()).then(revoke);
    list.or(create).unify().or(revoke).unify().boxed()
}

async fn list(state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        ctx.authorize(&state, Scope::Admin).await?;
        let tokens = state.api_tokens.list()?;
        Ok::<_, Error>(TokenList { count: tokens.len(), tokens })
    };
    respond(StatusCode::OK, result.await)
}

async fn create(body: bytes::Bytes, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let actor = ctx.authorize(&state, Scope::Admin).await?.actor;
        let request: CreateRequest = parse_json(&body)?;
        let created = state.api_tokens.create(&request).await;
        let outcome = created.as_ref().map_or_else(|e| crate::error::Coded::code(e), |_| "ok");
        let scopes: Vec<&str> = request.scopes.iter().map(String::as_str).collect();
        let target = format!("{} [{}]", request.name, scopes.join(" "));
        state.audit.record(Event::new(&actor, "token.create", target, outcome)).await;
        Ok::<_, Error>(created?)
    };
    respond(StatusCode::CREATED, result.await)
}

async fn revoke(name: String, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let actor = ctx.authorize(&state, Scope::Admin).await?.actor;
        let revoked = state.api_tokens.revoke(&name).await;
        let outcome = revoked.as_ref().map_or_else(|e| crate::error::Coded::code(e), |_| "ok");
        state.audit.record(Event::new(&actor, "token.revoke", name.as_str(), outcome)).await;
        Ok::<_, Error>(revoked?)
    };
    respond(StatusCode::OK, result.await)
}
