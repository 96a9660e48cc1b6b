//! `GET /phone/events`: the live event stream for phones without an MQTT
//! client (the web app), as Server-Sent Events authenticated by the device
//! token. It starts with what the phone missed (notifications after
//! `?since=`, or unacknowledged ones, and pending approvals), then carries
//! every message the appliance sends the device, each event named by its
//! type. A device may hold a few streams at once (429 beyond). A `control`
//! revoked/suspended message ends it, as does shutdown; a stream that falls
//! behind the live feed checks its device again (ending if it was cut off)
//! and sends what it missed from the store instead of skipping it, and so
//! does a periodic re-check.

use super::context::{ctx, Ctx};
use super::errors::reply_error;
use super::{with_state, Routes, State};
use crate::devices::{Device, DeviceState};
use crate::error::Error;
use crate::messaging::delivery::{LiveEvent, StreamSlot};
use crate::messaging::wire::{self, Kind, Outbound};
use futures_util::stream;
use serde::Deserialize;
use std::collections::VecDeque;
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
pub(super) fn routes(state: Arc<State>) -> Routes {
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

/// How often a stream checks that its device is still paired.
const RECHECK: Duration = Duration::from_secs(30);

/// What the phone missed, as events: notifications after `after` (after the
/// acknowledged cursor when `None`) and pending approvals.
fn missed(state: &State, device: &Device, after: Option<&str>) -> Result<Vec<(String, Event)>, Error> {
    let messaging = &state.messaging;
    let mut events = Vec::new();
    for listed in messaging.notifications.list(device, after)? {
        let message = Outbound::Notification(listed.message);
        let json = serde_json::to_string(&message).map_err(Error::internal)?;
        events.push((message.id().to_owned(), event(Kind::Notification, message.id(), &json)));
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
        let json = serde_json::to_string(&Outbound::ApprovalRequest(request)).map_err(Error::internal)?;
        events.push((String::new(), event(Kind::ApprovalRequest, &approval.id, &json)));
    }
    Ok(events)
}

/// The first events: what the phone missed since `since`.
fn backlog(state: &State, device: &Device, since: Option<&str>) -> Result<Vec<(String, Event)>, Error> {
    if let Some(since) = since {
        super::messaging::check_since(since)?;
    }
    let since = since.filter(|s| *s != "all");
    if let Some(since) = since {
        state.messaging.notifications.acknowledge(device.device_id.as_str(), since)?;
    }
    missed(state, device, since)
}

/// Whether this event ends the stream (the device was cut off).
fn is_final(live: &LiveEvent) -> bool {
    live.kind == Kind::Control && (live.json.contains("\"revoked\"") || live.json.contains("\"suspended\""))
}

/// One stream's state between events.
struct Stream {
    state: Arc<State>,
    device: Device,
    receiver: broadcast::Receiver<LiveEvent>,
    /// Events to send before reading the live feed again.
    queued: VecDeque<(String, Event)>,
    /// The newest notification this stream sent.
    newest: Option<String>,
    done: bool,
    recheck: tokio::time::Interval,
    _slot: StreamSlot,
}

impl Stream {
    /// The device as stored now, if it is still this active pairing.
    fn still_paired(&self) -> bool {
        let id = self.device.device_id.as_str();
        self.state
            .devices
            .get(id)
            .is_ok_and(|d| d.status == DeviceState::Active && d.paired_at == self.device.paired_at)
    }

    /// After falling behind: end if cut off, else queue what was missed.
    fn catch_up(&mut self) {
        if !self.still_paired() {
            self.done = true;
            return;
        }
        match missed(&self.state, &self.device, self.newest.as_deref()) {
            Ok(events) => self.queued.extend(events),
            Err(e) => {
                tracing::error!(error = %e, "an event stream could not catch up; ending it");
                self.done = true;
            }
        }
    }

    fn take(&mut self, (id, event): (String, Event)) -> Event {
        if id.starts_with('n') && self.newest.as_deref().is_none_or(|n| n < id.as_str()) {
            self.newest = Some(id);
        }
        event
    }

    /// The next event, or None when the stream ends.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(queued) = self.queued.pop_front() {
                return Some(self.take(queued));
            }
            if self.done {
                return None;
            }
            let next = tokio::select! {
                next = self.receiver.recv() => next,
                _ = self.state.shutdown.cancelled() => return None,
                _ = self.recheck.tick() => {
                    if !self.still_paired() { return None; }
                    continue;
                }
            };
            match next {
                Ok(live) if live.device_id == self.device.device_id.as_str() => {
                    self.done = is_final(&live);
                    let id = if live.kind == Kind::Notification { live.id.clone() } else { String::new() };
                    return Some(self.take((id, event(live.kind, &live.id, &live.json))));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up(),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// The device's events: the backlog, then live ones until it is cut off or
/// the appliance stops.
fn stream(first: Stream) -> impl futures_util::Stream<Item = Result<Event, Infallible>> {
    stream::unfold(first, |mut s| async move { s.next().await.map(|e| (Ok(e), s)) })
}

/// Opens a stream: the device, its slot (at most a few per device), the
/// live feed (subscribed before the backlog is read, so nothing falls
/// between) and the backlog.
fn open(state: &Arc<State>, ctx: &Ctx, since: Option<&str>) -> Result<Stream, Error> {
    let auth = ctx.device(state)?;
    let slot = state.messaging.delivery.open_stream(auth.device.device_id.as_str()).ok_or_else(|| {
        Error::from(crate::messaging::MessagingError::TooManyStreams(crate::messaging::delivery::MAX_STREAMS))
    })?;
    let receiver = state.messaging.delivery.subscribe();
    let backlog = backlog(state, &auth.device, since)?;
    Ok(Stream {
        state: state.clone(),
        device: auth.device,
        receiver,
        queued: backlog.into(),
        newest: None,
        done: false,
        recheck: tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK),
        _slot: slot,
    })
}

async fn events(query: EventsQuery, state: Arc<State>, ctx: Ctx) -> Response {
    let first = match open(&state, &ctx, query.since.as_deref()) {
        Ok(first) => first,
        Err(e) => return reply_error(&e),
    };
    let keep_alive = warp::sse::keep_alive().interval(Duration::from_secs(20));
    warp::sse::reply(keep_alive.stream(stream(first))).into_response()
}
