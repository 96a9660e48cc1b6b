//! Routes of `/phone/devices…` (admin: list, revoke, suspend, reactivate,
//! approve or reject a new phone, the number escalations text) and of the phone itself (`GET`/`DELETE
//! /phone/me`, `/phone/token/refresh`).

use super::context::{ctx, Ctx};
use super::errors::respond;
use super::{with_state, Routes, State};
use crate::auth::api_tokens::Scope;
use crate::devices::{Change, Device};
use crate::error::Error;
use crate::ids::UserId;
use crate::limits::DeviceBucket;
use crate::messaging::wire::ControlAction;
use crate::pairing::PairingError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

#[derive(Debug, Deserialize)]
struct ListQuery {
    user_id: Option<String>,
}

/// A device as the admin sees it: with the number escalations text,
/// masked.
#[derive(Serialize)]
struct DeviceView {
    #[serde(flatten)]
    device: Device,
    sms_number: Option<String>,
}

#[derive(Serialize)]
struct DeviceList {
    devices: Vec<DeviceView>,
    count: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NumberBody {
    phone_number: String,
}

#[derive(Serialize)]
struct StateChange {
    device_id: String,
    status: &'static str,
}

#[derive(Serialize)]
struct Refreshed {
    device_id: String,
    jwt_token: String,
    expires_at: crate::clock::Timestamp,
}

/// The device routes.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let devices = warp::path("phone").and(warp::path("devices"));
    let list = devices.and(warp::path::end()).and(warp::get()).and(warp::query::<ListQuery>());
    let list = list.and(with_state(state.clone())).and(ctx()).then(list_devices);
    let one = devices.and(warp::path::param::<String>());
    let revoke = one.and(warp::path::end()).and(warp::delete()).map(|id| (id, Change::Revoke)).untuple_one();
    let post = move |verb: &'static str, change: Change| {
        one.and(warp::path(verb)).and(warp::path::end()).and(warp::post()).map(move |id| (id, change)).untuple_one()
    };
    let (suspend, reactivate) = (post("suspend", Change::Suspend), post("reactivate", Change::Reactivate));
    let (approve, reject) = (post("approve", Change::Approve), post("reject", Change::Reject));
    let change = revoke.or(suspend).unify().or(reactivate).unify().or(approve).unify().or(reject).unify();
    let change = change.and(with_state(state.clone())).and(ctx()).then(change_device);
    let number = one.and(warp::path("sms-number")).and(warp::path::end()).and(warp::post()).and(super::json_body());
    let number = number.and(with_state(state.clone())).and(ctx()).then(set_number);
    let me = warp::path!("phone" / "me").and(warp::get()).and(with_state(state.clone())).and(ctx()).then(me);
    let unpair = warp::path!("phone" / "me").and(warp::delete()).and(with_state(state.clone())).and(ctx()).then(unpair);
    let refresh =
        warp::path!("phone" / "token" / "refresh").and(warp::post()).and(with_state(state)).and(ctx()).then(refresh);
    list.or(change).unify().or(number).unify().or(me).unify().or(unpair).unify().or(refresh).unify().boxed()
}

async fn device_admin(state: &State, ctx: &Ctx, scope: Scope) -> Result<crate::audit::Actor, Error> {
    if state.devices_require_admin {
        Ok(ctx.authorize(state, scope).await?.actor)
    } else {
        Ok(crate::audit::Actor::Admin)
    }
}

async fn list_devices(query: ListQuery, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        device_admin(&state, &ctx, Scope::DevicesRead).await?;
        let user = query.user_id.as_deref().map(UserId::parse).transpose().map_err(PairingError::from)?;
        let devices = state.devices.list(user.as_ref())?;
        let devices = devices
            .into_iter()
            .map(|device| {
                Ok(DeviceView { sms_number: state.devices.masked_number(device.device_id.as_str())?, device })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok::<_, Error>(DeviceList { count: devices.len(), devices })
    };
    respond(StatusCode::OK, result.await)
}

async fn change_device(id: String, change: Change, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let actor = device_admin(&state, &ctx, Scope::DevicesWrite).await?;
        let device = state.devices.change(&actor, &id, change).await?;
        let told = match change {
            Change::Suspend => Some((ControlAction::Suspended, "An admin suspended this phone.")),
            Change::Revoke => Some((ControlAction::Revoked, "An admin revoked this phone; pair it again to use it.")),
            Change::Reject => Some((ControlAction::Revoked, "An admin did not approve this phone.")),
            Change::Reactivate | Change::Approve | Change::Disown => None,
        };
        if let Some((action, detail)) = told {
            state.messaging.control(&device, action, detail).await;
        }
        Ok::<_, Error>(StateChange { device_id: device.device_id.to_string(), status: device.status.as_str() })
    };
    respond(StatusCode::OK, result.await)
}

async fn set_number(id: String, body: bytes::Bytes, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let actor = device_admin(&state, &ctx, Scope::DevicesWrite).await?;
        let body: NumberBody = super::errors::parse_json(&body)?;
        let number = state.pairing.check_number(&body.phone_number)?;
        let device = state.devices.set_number(&actor, &id, &number).await?;
        Ok::<_, Error>(DeviceView { device, sms_number: Some(number.masked()) })
    };
    respond(StatusCode::OK, result.await)
}

/// The phone's own record; a phone waiting for approval may read it (and
/// nothing else), to learn when it is approved.
async fn me(state: Arc<State>, ctx: Ctx) -> Response {
    respond(StatusCode::OK, ctx.device_waiting(&state).map(|auth| auth.device))
}

/// A phone unpairs itself: its device is revoked (final) and its seat freed.
async fn unpair(state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let auth = ctx.device(&state)?;
        let actor = crate::audit::Actor::Device(auth.device.device_id.to_string());
        let device = state.devices.change(&actor, auth.device.device_id.as_str(), Change::Revoke).await?;
        state.messaging.control(&device, ControlAction::Revoked, "This phone unpaired itself.").await;
        Ok::<_, Error>(StateChange { device_id: device.device_id.to_string(), status: device.status.as_str() })
    };
    respond(StatusCode::OK, result.await)
}

async fn refresh(state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let auth = ctx.device(&state)?;
        state.limits.check_device(DeviceBucket::TokenRefresh, auth.device.device_id.as_str())?;
        let issued = state.devices.refresh(&auth).await?;
        Ok::<_, Error>(Refreshed {
            device_id: auth.device.device_id.to_string(),
            jwt_token: issued.token,
            expires_at: issued.expires_at,
        })
    };
    respond(StatusCode::OK, result.await)
}
