//! `GET /phone/events`: the live event stream for phones without an MQTT
//! client (the web app), as Server-Sent Events authenticated by the device
//! token. It starts with what the phone missed (notifications after
//! `?since=`, or unacknowledged ones, and pending approvals), then carries
//! every message the appliance sends the device, each event named by its
//! type. A `control` revoked/suspended message ends it, as does shutdown.

use super::context::{ctx, Ctx};
use super::errors::reply_error;
use super::{with_state, Routes, State};
use crate::error::Error;
use crate::messaging::delivery::LiveEvent;
use crate::messaging::wire::{self, Kind, Outbound};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use warp::reply::Response;
use warp::sse::Event;
use warp::{Filter, Reply};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    since: Option<String>,
}

/// The events route.
pub fn routes(state: Arc<State>) -> Routes {
    warp::path!("phone" / "events")
        .and(warp::get())
        .and(warp::query::<EventsQuery>())
        .and(with_state(state))
        .and(ctx())
        .then(events)
        .boxed()
}

fn event(kind: Kind, id: &str, json: &str) -> Event {
    Event::default().event(kind.as_str()).id(id).data(json)
}

/// What the phone missed, as events.
fn backlog(state: &State, device: &crate::devices::Device, since: Option<&str>) -> Result<Vec<Event>, Error> {
    let messaging = &state.messaging;
    if let Some(since) = since {
        super::messaging::check_since(since)?;
    }
    let since = since.filter(|s| *s != "all");
    if let Some(since) = since {
        messaging.notifications.acknowledge(device.device_id.as_str(), since)?;
    }
    let mut events = Vec::new();
    for listed in messaging.notifications.list(device.device_id.as_str(), since)? {
        let message = Outbound::Notification(listed.message);
        let json = serde_json::to_string(&message).map_err(|e| Error::Internal(e.to_string()))?;
        events.push(event(Kind::Notification, message.id(), &json));
    }
    for approval in messaging.approvals.pending_for(device)? {
        let request = wire::ApprovalRequest {
            id: approval.id.clone(),
            time: approval.created_at,
            title: approval.title,
            detail: approval.detail,
            choices: approval.choices,
            expires_at: approval.expires_at,
        };
        let json =
            serde_json::to_string(&Outbound::ApprovalRequest(request)).map_err(|e| Error::Internal(e.to_string()))?;
        events.push(event(Kind::ApprovalRequest, &approval.id, &json));
    }
    Ok(events)
}

/// Whether this event ends the stream (the device was cut off).
fn is_final(live: &LiveEvent) -> bool {
    live.kind == Kind::Control && (live.json.contains("\"revoked\"") || live.json.contains("\"suspended\""))
}

/// The device's live events until it is cut off or the appliance stops.
fn live(
    receiver: broadcast::Receiver<LiveEvent>,
    device: String,
    shutdown: tokio_util::sync::CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold((receiver, false), move |(mut receiver, done)| {
        let (device, shutdown) = (device.clone(), shutdown.clone());
        async move {
            if done {
                return None;
            }
            loop {
                let next = tokio::select! {
                    next = receiver.recv() => next,
                    _ = shutdown.cancelled() => return None,
                };
                match next {
                    Ok(live) if live.device_id == device => {
                        let last = is_final(&live);
                        return Some((Ok(event(live.kind, &live.id, &live.json)), (receiver, last)));
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    })
}

async fn events(query: EventsQuery, state: Arc<State>, ctx: Ctx) -> Response {
    let auth = match ctx.device(&state) {
        Ok(auth) => auth,
        Err(e) => return reply_error(&e),
    };
    let receiver = state.messaging.delivery.subscribe();
    let backlog = match backlog(&state, &auth.device, query.since.as_deref()) {
        Ok(events) => events,
        Err(e) => return reply_error(&e),
    };
    let device = auth.device.device_id.to_string();
    let first = stream::iter(backlog.into_iter().map(Ok::<_, Infallible>));
    let stream = first.chain(live(receiver, device, state.shutdown.clone()));
    let keep_alive = warp::sse::keep_alive().interval(Duration::from_secs(20));
    warp::sse::reply(keep_alive.stream(stream)).into_response()
}
