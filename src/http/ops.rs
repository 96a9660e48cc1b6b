//! Operational routes: `/healthz`, `/metrics` (Prometheus text), the JWKS
//! (`/.well-known/jwks.json`), and the admin's `/admin/status` and
//! `/admin/audit`.

use super::context::{ctx, Ctx};
use super::errors::respond;
use super::{with_state, Routes, State};
use crate::auth::api_tokens::Scope;
use crate::error::Error;
use serde::Deserialize;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

#[derive(Debug, Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

/// The operational routes.
pub(super) fn routes(state: Arc<State>) -> Routes {
    let health = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response());
    let metrics = warp::path!("metrics").and(warp::get()).and(with_state(state.clone())).and(ctx()).then(metrics);
    let jwks = warp::path!(".well-known" / "jwks.json")
        .and(warp::get())
        .and(with_state(state.clone()))
        .map(|s: Arc<State>| warp::reply::json(&s.tokens.jwks()).into_response());
    let status =
        warp::path!("admin" / "status").and(warp::get()).and(with_state(state.clone())).and(ctx()).then(status);
    let audit = warp::path!("admin" / "audit").and(warp::get()).and(warp::query::<AuditQuery>());
    let audit = audit.and(with_state(state.clone())).and(ctx()).then(audit_log);
    let backup =
        warp::path!("admin" / "backup").and(warp::get()).and(with_state(state.clone())).and(ctx()).then(backup);
    let activity = warp::path!("admin" / "activity").and(warp::get()).and(with_state(state)).and(ctx()).then(activity);
    let ops = health.or(metrics).unify().or(jwks).unify().or(status).unify().or(audit).unify();
    ops.or(backup).unify().or(activity).unify().boxed()
}

/// Who may scrape: the holder of `--metrics-token`, an admin, or (without a
/// metrics token) any loopback client such as a local Prometheus agent.
async fn may_scrape(state: &State, ctx: &Ctx) -> Result<(), Error> {
    if let Some(expected) = &state.metrics_token {
        let given = ctx.bearer().unwrap_or_default();
        if bool::from(subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes())) {
            return Ok(());
        }
    } else if ctx.is_loopback() {
        return Ok(());
    }
    ctx.authorize(state, Scope::Admin).await.map(|_| ())
}

async fn metrics(state: Arc<State>, ctx: Ctx) -> Response {
    if let Err(e) = may_scrape(&state, &ctx).await {
        return super::errors::reply_error(&e);
    }
    let license = state.licensing.status().ok();
    let snapshot = crate::metrics::Snapshot {
        devices_by_state: state.devices.count_by_state().unwrap_or_default(),
        seats_licensed: license.as_ref().map_or(0, |l| i64::from(l.seats)),
        seats_used: license.as_ref().map_or(0, |l| i64::from(l.seats_used)),
        license_days_left: license.and_then(|l| l.days_left).unwrap_or(-1),
        certificate_days_left: state.server_cert.facts(state.clock.now()).map_or(-1, |c| c.days_left),
        phones_connected: state.gateway.connected() as i64,
        acme_failures: state.acme.as_ref().map_or(0, |a| i64::from(a.report().failures)),
    };
    let text = state.metrics.render(&snapshot);
    warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4; charset=utf-8").into_response()
}

async fn status(state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        ctx.authorize(&state, Scope::Admin).await?;
        let counts = state.devices.count_by_state()?;
        let devices: serde_json::Map<String, serde_json::Value> =
            counts.into_iter().map(|(k, v)| (k.to_owned(), v.into())).collect();
        Ok::<_, Error>(serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": state.started_at.elapsed().as_secs(),
            "sms_provider": state.pairing.sms_provider(),
            "ca_fingerprint": super::ca::ca_fingerprint(&state),
            "certificate": state.server_cert.facts(state.clock.now()),
            "acme": state.acme.as_ref().map(|a| a.report()),
            "devices": devices,
            "node": state.cluster.node(),
            "store": if state.store.is_shared() { "postgres" } else { "sled" },
            "nodes": state.nodes.list().map_err(Error::internal)?,
        }))
    };
    respond(StatusCode::OK, result.await)
}

async fn backup(state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        let actor = ctx.admin(&state).await?;
        let taken =
            crate::store::backup::take(&state.store, &state.data_dir, state.clock.now()).await.map_err(Error::internal);
        let outcome = if taken.is_ok() { "ok" } else { "internal" };
        state.audit.record(crate::audit::Event::new(&actor, "backup.take", "data directory", outcome)).await;
        taken
    };
    respond(StatusCode::OK, result.await)
}

/// How many of each kind the activity view shows.
const ACTIVITY: usize = 20;

async fn activity(state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        ctx.authorize(&state, Scope::Admin).await?;
        let messaging = &state.messaging;
        Ok::<_, Error>(serde_json::json!({
            "notifications": messaging.recent_tracked(ACTIVITY)?,
            "approvals": messaging.approvals.recent(ACTIVITY)?,
            "commands": messaging.commands.recent(ACTIVITY)?,
        }))
    };
    respond(StatusCode::OK, result.await)
}

async fn audit_log(query: AuditQuery, state: Arc<State>, ctx: Ctx) -> Response {
    let result = async {
        ctx.authorize(&state, Scope::Admin).await?;
        let limit = query.limit.unwrap_or(100).min(1000);
        state.audit.recent(limit).map_err(Error::internal)
    };
    respond(StatusCode::OK, result.await)
}
