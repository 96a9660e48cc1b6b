//! Routes of `/admin/license`: the license's status and seats (GET) and
//! activating a license key (POST `{license_key}`).

use super::context::{ctx, Ctx};
use super::errors::{parse_json, respond};
use super::{json_body, with_state, Routes, State};
use crate::auth::api_tokens::Scope;
use crate::error::Error;
use bytes::Bytes;
use serde::Deserialize;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

#[derive(Debug, Deserialize)]
struct Activate {
    license_key: String,
}

/// The license routes.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let path = warp::path!("admin" / "license");
    let get = path.and(warp::get()).and(with_state(state.clone())).and(ctx()).then(status);
    let post = path.and(warp::post()).and(with_state(state)).and(ctx()).and(json_body()).then(activate);
    get.or(post).unify().boxed()
}

async fn status(state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        ctx.authorize(&state, Scope::Admin).await?;
        Ok::<_, Error>(state.licensing.status()?)
    };
    respond(StatusCode::OK, result.await)
}

async fn activate(state: Arc<State>, ctx: Ctx, body: Bytes) -> Response {
    let result = async {
        let actor = ctx.authorize(&state, Scope::Admin).await?.actor;
        let req: Activate = parse_json(&body)?;
        Ok::<_, Error>(state.licensing.activate(&actor, &req.license_key).await?)
    };
    respond(StatusCode::OK, result.await)
}
