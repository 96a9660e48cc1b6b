//! The periodic sweep: every node forgets its idle rate limits and ended
//! in-memory sessions; the node running the background work (all of it on
//! one node's own store) expires invites and prunes old records.

use super::Sweep;
use crate::http::State;
use std::sync::Arc;
use tokio::sync::watch;

pub(super) async fn sweeper(state: Arc<State>, sweep: Sweep, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(sweep.every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        state.limits.forget_idle();
        state.sessions.forget_ended();
        if state.cluster.leading() {
            sweep_store(&state, &sweep).await;
        }
    }
}

/// The sweep of the shared records (one node at a time does it).
async fn sweep_store(state: &State, sweep: &Sweep) {
    match state.pairing.sweep().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(expired = n, "marked expired invites"),
        Err(e) => tracing::error!(error = %e, "invite sweep failed"),
    }
    if let Err(e) = state.messaging.sweep(sweep.retention).await {
        tracing::error!(error = %e, "messaging sweep failed");
    }
    if let Err(e) = state.hooks.prune().await {
        tracing::error!(error = %e, "could not prune webhook delivery ids");
    }
    if let Err(e) = state.devices.prune_revoked_tokens() {
        tracing::error!(error = %e, "could not prune revoked token ids");
    }
    if let Err(e) = state.licensing.observe_clock().await {
        tracing::error!(error = %e, "could not record the clock mark");
    }
    if let Err(e) = state.sessions.prune() {
        tracing::error!(error = %e, "could not prune ended console sessions");
    }
}
