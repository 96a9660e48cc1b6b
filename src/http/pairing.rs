//! Routes of `/phone/pairing/…`: send-sms, resend-sms, cancel and
//! generate-qr (admin), accept-invite and invite status (rate-limited, for
//! phones).

use super::context::{ctx, Ctx};
use super::errors::{parse_json, respond};
use super::{json_body, with_state, Routes, State};
use crate::auth::api_tokens::Scope;
use crate::error::Error;
use crate::limits::Bucket;
use crate::pairing::{AcceptRequest, QrRequest, SendSmsRequest};
use bytes::Bytes;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

/// The pairing routes.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let base = warp::path("phone").and(warp::path("pairing"));
    let send = base.and(warp::path("send-sms")).and(warp::path::end()).and(warp::post());
    let send = send.and(with_state(state.clone())).and(ctx()).and(json_body()).then(send_sms);
    let accept = base.and(warp::path("accept-invite")).and(warp::path::end()).and(warp::post());
    let accept = accept.and(with_state(state.clone())).and(ctx()).and(json_body()).then(accept_invite);
    let qr = base.and(warp::path("generate-qr")).and(warp::path::end()).and(warp::post());
    let qr = qr.and(with_state(state.clone())).and(ctx()).and(json_body()).then(generate_qr);
    let invite = base.and(warp::path("invite")).and(warp::path::param::<String>()).and(warp::path::end());
    let status = invite.and(warp::get()).and(with_state(state.clone())).and(ctx()).then(invite_status);
    let cancel = invite.and(warp::delete()).and(with_state(state.clone())).and(ctx()).then(cancel_invite);
    let resend = base.and(warp::path("resend-sms")).and(warp::path::param::<String>()).and(warp::path::end());
    let resend = resend.and(warp::post()).and(with_state(state)).and(ctx()).then(resend_sms);
    send.or(accept).unify().or(qr).unify().or(status).unify().or(cancel).unify().or(resend).unify().boxed()
}

async fn send_sms(state: Arc<State>, ctx: Ctx, body: Bytes) -> Response {
    let result = async {
        let actor = ctx.authorize(&state, Scope::Pairing).await?.actor;
        ctx.limit(&state, Bucket::Invites)?;
        let req: SendSmsRequest = parse_json(&body)?;
        Ok::<_, Error>(state.pairing.send_sms(&actor, req).await?)
    };
    respond(StatusCode::OK, result.await)
}

async fn resend_sms(code: String, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let actor = ctx.authorize(&state, Scope::Pairing).await?.actor;
        ctx.limit(&state, Bucket::Invites)?;
        Ok::<_, Error>(state.pairing.resend(&actor, &code).await?)
    };
    respond(StatusCode::OK, result.await)
}

async fn cancel_invite(code: String, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let actor = ctx.authorize(&state, Scope::Pairing).await?.actor;
        Ok::<_, Error>(state.pairing.cancel(&actor, &code).await?)
    };
    respond(StatusCode::OK, result.await)
}

async fn generate_qr(state: Arc<State>, ctx: Ctx, body: Bytes) -> Response {
    let result = async {
        let actor = ctx.authorize(&state, Scope::Pairing).await?.actor;
        ctx.limit(&state, Bucket::Invites)?;
        let req: QrRequest = parse_json(&body)?;
        Ok::<_, Error>(state.pairing.generate_qr(&actor, req).await?)
    };
    respond(StatusCode::OK, result.await)
}

async fn accept_invite(state: Arc<State>, ctx: Ctx, body: Bytes) -> Response {
    let result = async {
        ctx.limit(&state, Bucket::Accepts)?;
        let req: AcceptRequest = parse_json(&body)?;
        let accepted = state.pairing.accept(req).await?;
        tell_of_new_phone(&state, &ctx, &accepted).await;
        Ok::<_, Error>(accepted.answer)
    };
    respond(StatusCode::OK, result.await)
}

/// The user's other phones (and, for a phone that waits for approval, the
/// admins' phones) hear of a new pairing.
async fn tell_of_new_phone(state: &State, ctx: &Ctx, accepted: &crate::pairing::Accepted) {
    let device = &accepted.device;
    // Who the admins are is read only when they are to be told.
    let admins = match device.status {
        crate::devices::DeviceState::PendingApproval => state.people.admins().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read who the admins are");
            Vec::new()
        }),
        _ => Vec::new(),
    };
    state.messaging.paired(device, accepted.others, ctx.client_address(), &admins).await;
}

async fn invite_status(code: String, state: Arc<State>, ctx: Ctx) -> Response {
    let result = ctx.limit(&state, Bucket::Accepts).and_then(|()| Ok(state.pairing.status(&code)?));
    respond(StatusCode::OK, result)
}
