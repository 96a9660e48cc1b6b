//! Routes of a phone's Web Push subscriptions (device token): `GET
//! /phone/push/key` (the VAPID public key its browser subscribes with),
//! `GET`/`POST /phone/push/subscriptions` and `DELETE
//! /phone/push/subscriptions/{id}`.

use super::context::{ctx, Ctx};
use super::errors::{parse_json, respond};
use super::{json_body, with_state, Routes, State};
use crate::error::Error;
use crate::push::subscriptions::{Listed, Register};
use serde::Serialize;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

#[derive(Serialize)]
struct Key {
    public_key: String,
}

#[derive(Serialize)]
struct SubscriptionList {
    subscriptions: Vec<Listed>,
    count: usize,
}

#[derive(Serialize)]
struct Removed {
    id: String,
    removed: bool,
}

/// The push routes.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let s = move || with_state(state.clone());
    let key = warp::path!("phone" / "push" / "key").and(warp::get()).and(s()).and(ctx()).then(key);
    let subscriptions = warp::path!("phone" / "push" / "subscriptions");
    let list = subscriptions.and(warp::get()).and(s()).and(ctx()).then(list);
    let register = subscriptions.and(warp::post()).and(json_body()).and(s()).and(ctx()).then(register);
    let delete = warp::path!("phone" / "push" / "subscriptions" / String).and(warp::delete());
    let delete = delete.and(s()).and(ctx()).then(remove);
    key.or(list).unify().or(register).unify().or(delete).unify().boxed()
}

async fn key(state: Arc<State>, ctx: Ctx) -> Response {
    let result = ctx.device(&state).map(|_| Key { public_key: state.push.public_key().to_owned() });
    respond(StatusCode::OK, result)
}

async fn list(state: Arc<State>, ctx: Ctx) -> Response {
    let result = (|| {
        let auth = ctx.device(&state)?;
        let subscriptions: Vec<Listed> =
            state.push.subscriptions().of(&auth.device)?.iter().map(Listed::from).collect();
        Ok::<_, Error>(SubscriptionList { count: subscriptions.len(), subscriptions })
    })();
    respond(StatusCode::OK, result)
}

async fn register(body: bytes::Bytes, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let auth = ctx.device(&state)?;
        let request: Register = parse_json(&body)?;
        Ok::<_, Error>(state.push.subscriptions().register(&auth.device, &request).await?)
    };
    match result.await {
        Ok((listed, true)) => respond(StatusCode::CREATED, Ok(listed)),
        other => respond(StatusCode::OK, other.map(|(listed, _)| listed)),
    }
}

async fn remove(id: String, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let auth = ctx.device(&state)?;
        state.push.subscriptions().remove(&auth.device, &id).await?;
        Ok::<_, Error>(Removed { id, removed: true })
    };
    respond(StatusCode::OK, result.await)
}
