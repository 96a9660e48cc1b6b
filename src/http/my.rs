//! Routes of "My phones", for a person signed in through the identity
//! provider (a developer, or an admin for their own phones): `GET
//! /my/devices`, `DELETE /my/devices/{id}`, `POST /my/pairing/send-sms`
//! `{phone_number}`, `POST /my/pairing/generate-qr` and `GET /my/activity`.
//! Each acts for the signed-in person only: another user's phone is "not
//! found", and an invite is always for the person themselves. Seats are
//! counted as for any pairing.

use super::context::{ctx, Ctx};
use super::errors::{parse_json, respond};
use super::{json_body, with_state, Routes, State};
use crate::audit::Actor;
use crate::devices::{Change, Device, DeviceError, DeviceState};
use crate::error::Error;
use crate::limits::Bucket;
use crate::messaging::notifications::Listed;
use crate::messaging::wire::ControlAction;
use crate::pairing::{QrRequest, SendSmsRequest};
use crate::people::Person;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

/// How many of each kind "My activity" shows.
const SHOWN: usize = 20;

/// How far back among everyone's approvals and commands "My activity"
/// looks for the person's own.
const LOOK_BACK: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SmsBody {
    phone_number: String,
}

#[derive(Serialize)]
struct MyDevices {
    user_id: String,
    devices: Vec<Device>,
    count: usize,
}

/// An approval as its person sees it in the console (never the code: the
/// number belongs at the requester).
#[derive(Serialize)]
struct MyApproval {
    id: String,
    title: String,
    status: crate::messaging::approvals::Status,
    created_at: crate::clock::Timestamp,
    decided_by: Option<String>,
}

/// The "My phones" routes.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let s = move || with_state(state.clone());
    let list = warp::path!("my" / "devices").and(warp::get()).and(s()).and(ctx()).then(my_devices);
    let revoke = warp::path!("my" / "devices" / String).and(warp::delete()).and(s()).and(ctx()).then(revoke);
    let sms = warp::path!("my" / "pairing" / "send-sms").and(warp::post()).and(json_body()).and(s()).and(ctx());
    let sms = sms.then(send_sms);
    let qr = warp::path!("my" / "pairing" / "generate-qr").and(warp::post()).and(s()).and(ctx()).then(generate_qr);
    let activity = warp::path!("my" / "activity").and(warp::get()).and(s()).and(ctx()).then(activity);
    list.or(revoke).unify().or(sms).unify().or(qr).unify().or(activity).unify().boxed()
}

fn actor(person: &Person) -> Actor {
    Actor::Person(person.user_id.to_string())
}

async fn my_devices(state: Arc<State>, ctx: Ctx) -> Response {
    let result = ctx.person(&state).and_then(|person| {
        let devices = state.devices.list(Some(&person.user_id))?;
        Ok(MyDevices { user_id: person.user_id.to_string(), count: devices.len(), devices })
    });
    respond(StatusCode::OK, result)
}

async fn revoke(id: String, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let person = ctx.person(&state)?;
        match state.devices.get(&id) {
            Ok(device) if device.user_id == person.user_id => {}
            _ => return Err(DeviceError::NotFound(id).into()),
        }
        let device = state.devices.change(&actor(&person), &id, Change::Revoke).await?;
        state.messaging.control(&device, ControlAction::Revoked, "You revoked this phone in the console.").await;
        Ok::<_, Error>(serde_json::json!({"device_id": device.device_id, "status": device.status}))
    };
    respond(StatusCode::OK, result.await)
}

async fn send_sms(body: bytes::Bytes, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let person = ctx.person(&state)?;
        ctx.limit(&state, Bucket::Invites)?;
        let SmsBody { phone_number } = parse_json(&body)?;
        let request =
            SendSmsRequest { phone_number, user_id: person.user_id.to_string(), user_name: person.name.clone() };
        Ok::<_, Error>(state.pairing.send_sms(&actor(&person), request).await?)
    };
    respond(StatusCode::OK, result.await)
}

async fn generate_qr(state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let person = ctx.person(&state)?;
        ctx.limit(&state, Bucket::Invites)?;
        let request = QrRequest { user_id: person.user_id.to_string(), user_name: Some(person.name.clone()) };
        Ok::<_, Error>(state.pairing.generate_qr(&actor(&person), request).await?)
    };
    respond(StatusCode::OK, result.await)
}

async fn activity(state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let person = ctx.person(&state)?;
        let devices = state.devices.list(Some(&person.user_id))?;
        let mut notifications: Vec<Listed> = Vec::new();
        for device in devices.iter().filter(|d| d.status != DeviceState::Revoked) {
            notifications.extend(state.messaging.notifications.list(device, Some(""))?);
        }
        notifications.sort_by(|a, b| b.message.id.cmp(&a.message.id));
        notifications.dedup_by(|a, b| a.message.id == b.message.id);
        notifications.truncate(SHOWN);
        let user = person.user_id.as_str();
        let approvals: Vec<MyApproval> = (state.messaging.approvals.recent(LOOK_BACK)?.into_iter())
            .filter(|a| a.user_id == user)
            .take(SHOWN)
            .map(|a| MyApproval {
                id: a.id,
                title: a.title,
                status: a.status,
                created_at: a.created_at,
                decided_by: a.decided_by,
            })
            .collect();
        let commands: Vec<_> =
            state.messaging.commands.recent(LOOK_BACK)?.into_iter().filter(|c| c.user_id == user).take(SHOWN).collect();
        Ok::<_, Error>(
            serde_json::json!({"notifications": notifications, "approvals": approvals, "commands": commands}),
        )
    };
    respond(StatusCode::OK, result.await)
}
