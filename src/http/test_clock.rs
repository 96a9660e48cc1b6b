//! Test builds only (the development key): `POST /admin/test/clock
//! {"shift_s": N}` moves the appliance's clock by N seconds (forward or
//! back), so tests of expiry and licensing move time instead of waiting for
//! it. Admin only; absent from release builds and from the API document.

use super::context::{ctx, Ctx};
use super::errors::{parse_json, respond};
use super::{json_body, with_state, Routes, State};
use crate::error::Error;
use bytes::Bytes;
use serde::Deserialize;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Shift {
    shift_s: i64,
}

/// The test clock route.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let path = warp::path!("admin" / "test" / "clock");
    path.and(warp::post()).and(with_state(state)).and(ctx()).and(json_body()).then(shift).boxed()
}

async fn shift(state: Arc<State>, ctx: Ctx, body: Bytes) -> Response {
    let result = async {
        ctx.authorize(&state, crate::auth::api_tokens::Scope::Admin).await?;
        let shift: Shift = parse_json(&body)?;
        state.clock.shift(chrono::Duration::seconds(shift.shift_s));
        state.messaging.approvals.time_moved();
        Ok::<_, Error>(serde_json::json!({ "now": state.clock.now() }))
    };
    respond(StatusCode::OK, result.await)
}
