//! Routes of phone messaging: `POST /phone/notify`, `GET
//! /phone/notifications/{id}` (scope `notify`) and `POST /phone/approvals` /
//! `GET /phone/approvals/{id}` (scope `approvals`; each with its receipts)
//! for the IDE and build systems; `GET /phone/notifications`, `GET /phone/approvals`,
//! `POST /phone/approvals/{id}/respond`, `POST /phone/commands`, `POST
//! /phone/seen` and `POST /phone/notifications/{id}/not-me` ("This wasn't
//! me" on a new-device alert) for a paired phone (device token).

use super::context::{ctx, Caller, Ctx};
use super::errors::{parse_json, respond};
use super::{json_body, with_state, Routes, State};
use crate::auth::api_tokens::Scope;
use crate::error::Error;
use crate::messaging::approvals::{Answer, Approval, ApprovalRequest, Status};
use crate::messaging::notifications::{Listed, NotifyRequest};
use crate::messaging::MessagingError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinceQuery {
    since: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    wait: Option<String>,
}

#[derive(Serialize)]
struct NotificationList {
    notifications: Vec<Listed>,
    count: usize,
}

#[derive(Serialize)]
struct PendingList {
    approvals: Vec<PhoneView>,
    count: usize,
}

/// What a phone sees of an approval (never the code).
#[derive(Serialize)]
struct PhoneView {
    id: String,
    title: String,
    detail: String,
    choices: Vec<String>,
    status: Status,
    expires_at: crate::clock::Timestamp,
    decided_by: Option<String>,
    decided_at: Option<crate::clock::Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl From<Approval> for PhoneView {
    fn from(a: Approval) -> Self {
        PhoneView {
            id: a.id,
            title: a.title,
            detail: a.detail,
            choices: a.choices,
            status: a.status,
            expires_at: a.expires_at,
            decided_by: a.decided_by,
            decided_at: a.decided_at,
            reason: a.reason,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenBody {
    ids: Vec<String>,
}

#[derive(Serialize)]
struct SeenCount {
    seen: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    text: String,
    #[serde(default)]
    id: Option<String>,
}

/// `?wait=30`, `30s` or `500ms` (the caller clamps it to the configured
/// longest long poll).
fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    let (digits, millis) = match text.strip_suffix("ms") {
        Some(d) => (d, true),
        None => (text.strip_suffix('s').unwrap_or(text), false),
    };
    let n: u64 = match digits.parse() {
        Ok(n) if !digits.is_empty() && digits.len() <= 9 && digits.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => return Err("wait: a number of seconds (30 or 30s) or milliseconds (500ms)".into()),
    };
    Ok(if millis { std::time::Duration::from_millis(n) } else { std::time::Duration::from_secs(n) })
}

/// A `since` cursor: `all`, or a notification id (letters and digits).
pub(super) fn check_since(since: &str) -> Result<(), Error> {
    if since.is_empty() || since.len() > 64 || !since.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(MessagingError::invalid("since", "a notification id (letters and digits) or `all`").into());
    }
    Ok(())
}

/// The messaging routes.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let s = move || with_state(state.clone());
    let notify = warp::path!("phone" / "notify").and(warp::post()).and(json_body()).and(s()).and(ctx()).then(notify);
    let list = warp::path!("phone" / "notifications").and(warp::get()).and(warp::query::<SinceQuery>());
    let list = list.and(s()).and(ctx()).then(notifications);
    let approvals = warp::path!("phone" / "approvals");
    let create = approvals.and(warp::post()).and(json_body()).and(s()).and(ctx()).then(create_approval);
    let pending = approvals.and(warp::get()).and(s()).and(ctx()).then(pending);
    let get = warp::path!("phone" / "approvals" / String).and(warp::get()).and(warp::query::<WaitQuery>());
    let get = get.and(s()).and(ctx()).then(get_approval);
    let answer = warp::path!("phone" / "approvals" / String / "respond").and(warp::post()).and(json_body());
    let answer = answer.and(s()).and(ctx()).then(respond_approval);
    let command =
        warp::path!("phone" / "commands").and(warp::post()).and(json_body()).and(s()).and(ctx()).then(command);
    let seen = warp::path!("phone" / "seen").and(warp::post()).and(json_body()).and(s()).and(ctx()).then(seen);
    let tracked = warp::path!("phone" / "notifications" / String).and(warp::get()).and(s()).and(ctx());
    let tracked = tracked.then(tracked_notification);
    let disown = warp::path!("phone" / "notifications" / String / "not-me").and(warp::post()).and(s()).and(ctx());
    let disown = disown.then(not_me);
    notify
        .or(disown)
        .unify()
        .or(seen)
        .unify()
        .or(tracked)
        .unify()
        .or(list)
        .unify()
        .or(create)
        .unify()
        .or(pending)
        .unify()
        .or(get)
        .unify()
        .or(answer)
        .unify()
        .or(command)
        .unify()
        .boxed()
}

/// Refuses a notification to a user (or one phone of a user) the caller
/// may not reach.
fn check_reach(caller: &Caller, state: &State, request: &NotifyRequest) -> Result<(), Error> {
    if let Some(user) = &request.user_id {
        caller.may_reach(user)?;
    }
    if let Some(device) = &request.device_id {
        if let Ok(found) = state.devices.get(device) {
            caller.may_reach(found.user_id.as_str())?;
        } else if caller.is_limited() {
            return Err(crate::auth::api_tokens::ApiTokenError::NotForUser(format!("(owner of {device})")).into());
        }
    }
    Ok(())
}

async fn notify(body: bytes::Bytes, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let caller = ctx.authorize(&state, Scope::Notify).await?;
        let request: NotifyRequest = parse_json(&body)?;
        check_reach(&caller, &state, &request)?;
        Ok::<_, Error>(state.messaging.notify(&request).await?)
    };
    respond(StatusCode::OK, result.await)
}

async fn notifications(query: SinceQuery, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let auth = ctx.device(&state)?;
        let device = auth.device.device_id.as_str();
        if let Some(since) = query.since.as_deref() {
            check_since(since)?;
        }
        let since = query.since.as_deref().filter(|s| *s != "all");
        if let Some(since) = since {
            state.messaging.notifications.acknowledge(device, since)?;
        }
        let notifications = match query.since.as_deref() {
            Some("all") => state.messaging.notifications.list(&auth.device, Some(""))?,
            _ => state.messaging.notifications.list(&auth.device, since)?,
        };
        Ok::<_, Error>(NotificationList { count: notifications.len(), notifications })
    };
    respond(StatusCode::OK, result.await)
}

async fn create_approval(body: bytes::Bytes, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let caller = ctx.authorize(&state, Scope::Approvals).await?;
        let request: ApprovalRequest = parse_json(&body)?;
        caller.may_reach(&request.user_id)?;
        Ok::<_, Error>(state.messaging.request_approval(&caller.actor, &request).await?)
    };
    respond(StatusCode::CREATED, result.await)
}

async fn get_approval(id: String, query: WaitQuery, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let caller = ctx.authorize(&state, Scope::Approvals).await?;
        caller.may_reach(&state.messaging.approvals.get(&id)?.user_id)?;
        let wait = match query.wait.as_deref() {
            Some(text) => parse_wait(text)
                .map_err(|detail| Error::BadRequest { code: "invalid_query", detail })?
                .min(state.long_poll_max),
            None => std::time::Duration::ZERO,
        };
        let approval = state.messaging.approvals.wait(&id, wait).await?;
        Ok::<_, Error>(state.messaging.tracked_approval(approval)?)
    };
    respond(StatusCode::OK, result.await)
}

async fn tracked_notification(id: String, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let caller = ctx.authorize(&state, Scope::Notify).await?;
        let tracked = state.messaging.tracked_notification(&id)?;
        caller.may_reach(&tracked.item.user_id)?;
        Ok::<_, Error>(tracked)
    };
    respond(StatusCode::OK, result.await)
}

/// "This wasn't me" on a `new_device` alert: the phone it is about is
/// revoked and the admins are told.
async fn not_me(id: String, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let auth = ctx.device(&state)?;
        let admins = state.people.admins().map_err(MessagingError::from)?;
        let revoked = state.messaging.disown(&auth.device, &id, &admins).await?;
        Ok::<_, Error>(serde_json::json!({"device_id": revoked.device_id, "status": revoked.status}))
    };
    respond(StatusCode::OK, result.await)
}

async fn seen(body: bytes::Bytes, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let auth = ctx.device(&state)?;
        let body: SeenBody = parse_json(&body)?;
        Ok::<_, Error>(SeenCount { seen: state.messaging.seen(&auth.device, &body.ids).await? })
    };
    respond(StatusCode::OK, result.await)
}

async fn pending(state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let auth = ctx.device(&state)?;
        let approvals: Vec<PhoneView> =
            state.messaging.approvals.pending_for(&auth.device)?.into_iter().map(PhoneView::from).collect();
        Ok::<_, Error>(PendingList { count: approvals.len(), approvals })
    };
    respond(StatusCode::OK, result.await)
}

async fn respond_approval(id: String, body: bytes::Bytes, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let auth = ctx.device(&state)?;
        let answer: Answer = parse_json(&body)?;
        Ok::<_, Error>(PhoneView::from(state.messaging.answer(&auth.device, &id, &answer).await?))
    };
    respond(StatusCode::OK, result.await)
}

async fn command(body: bytes::Bytes, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let auth = ctx.device(&state)?;
        let body: CommandBody = parse_json(&body)?;
        let id = body.id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        Ok::<_, Error>(state.messaging.commands.handle(&auth.device, &id, &body.text).await?)
    };
    respond(StatusCode::OK, result.await)
}
