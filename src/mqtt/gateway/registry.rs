//! The gateway's live connections by device id, so that revoking or
//! suspending a device closes every connection it has at once, and whether
//! each one's subscription to the device's notifications is in force (its
//! SUBACK has passed), so a replay can leave out what it already got.
//!
//! A message published while a phone's SUBSCRIBE is on its way may or may
//! not reach it, so that window is closed: a SUBSCRIBE is marked (under the
//! gate's write side) before it is passed on, and a publisher holds the
//! gate's read side from reading the state until its message is in the
//! broker, waiting out a marked SUBSCRIBE until its SUBACK.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, RwLock, RwLockReadGuard};
use tokio_util::sync::CancellationToken;

/// How long a publisher waits for a SUBACK before publishing anyway (the
/// message then counts as not known to have reached that connection).
const SETTLE_DEADLINE: Duration = Duration::from_secs(2);

/// Live connections by device id.
pub(super) struct Registry {
    next: AtomicU64,
    /// The live connections, by device.
    live: Mutex<HashMap<String, Vec<Live>>>,
    /// Orders publishes against SUBSCRIBEs being passed on.
    gate: RwLock<()>,
    /// Bumped whenever a SUBSCRIBE is answered or a connection leaves.
    settled: watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Registry {
        let (next, live, gate) = (AtomicU64::default(), Mutex::default(), RwLock::default());
        Registry { next, live, gate, settled: watch::Sender::new(0) }
    }
}

/// A device's subscription state for one publish: the connection a message
/// published while this is held reaches, if any.
pub(crate) struct Settled<'a> {
    /// The newest connection whose notification subscription is in force.
    pub connection: Option<u64>,
    _gate: RwLockReadGuard<'a, ()>,
}

/// One live connection.
struct Live {
    id: u64,
    token: CancellationToken,
    /// Its notification subscription is in force.
    subscribed: bool,
    /// A SUBSCRIBE covering its notifications was passed on, not yet
    /// answered.
    subscribing: bool,
    /// Close it once a `control` message has passed to the phone.
    closing: Arc<AtomicBool>,
}

impl Registry {
    /// Registers a connection of `device`: its id, the token that closes
    /// it, and the flag asking it to close after the next `control` message.
    pub(super) fn add(&self, device: &str) -> (u64, CancellationToken, Arc<AtomicBool>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (token, closing) = (CancellationToken::new(), Arc::new(AtomicBool::new(false)));
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let entry = Live { id, token: token.clone(), subscribed: false, subscribing: false, closing: closing.clone() };
        live.entry(device.to_owned()).or_default().push(entry);
        (id, token, closing)
    }

    /// Whether `device` has a live connection.
    pub(super) fn holds(&self, device: &str) -> bool {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).get(device).is_some_and(|c| !c.is_empty())
    }

    /// Asks every connection of `device` to close once a `control` message
    /// has passed to the phone; how many there are.
    pub(super) fn close_after_control(&self, device: &str) -> usize {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let conns = live.get(device).map(Vec::as_slice).unwrap_or_default();
        conns.iter().for_each(|c| c.closing.store(true, Ordering::Relaxed));
        conns.len()
    }

    /// Marks connection `id`'s SUBSCRIBE covering its notifications as on
    /// its way (call before passing it on).
    pub(super) async fn subscribing(&self, device: &str, id: u64) {
        let _no_publish_in_flight = self.gate.write().await;
        self.update(device, id, |c| c.subscribing = true);
    }

    /// Records the broker's answer to that SUBSCRIBE, or an UNSUBSCRIBE
    /// (`false`).
    pub(super) fn set_subscribed(&self, device: &str, id: u64, subscribed: bool) {
        self.update(device, id, |c| {
            c.subscribed = subscribed;
            c.subscribing = false;
        });
        self.settled.send_modify(|n| *n += 1);
    }

    fn update(&self, device: &str, id: u64, change: impl Fn(&mut Live)) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get_mut(device).into_iter().flatten().filter(|c| c.id == id).for_each(change);
    }

    /// The newest connection of `device` whose notification subscription is
    /// in force, once no SUBSCRIBE of it is on its way (or after
    /// [`SETTLE_DEADLINE`]); a message published while the answer is held
    /// reaches that connection, and no other of the device.
    pub(super) async fn settled(&self, device: &str) -> Settled<'_> {
        let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
        loop {
            let mut changed = self.settled.subscribe();
            let gate = self.gate.read().await;
            let (connection, waiting) = self.state(device);
            if !waiting || tokio::time::Instant::now() >= deadline {
                return Settled { connection: connection.filter(|_| !waiting), _gate: gate };
            }
            drop(gate);
            let _ = tokio::time::timeout_at(deadline, changed.changed()).await;
        }
    }

    /// The newest subscribed connection of `device`, and whether one of its
    /// SUBSCRIBEs is unanswered.
    fn state(&self, device: &str) -> (Option<u64>, bool) {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let conns = live.get(device).map(Vec::as_slice).unwrap_or_default();
        (conns.iter().rev().find(|c| c.subscribed).map(|c| c.id), conns.iter().any(|c| c.subscribing))
    }

    pub(super) fn remove(&self, device: &str, id: u64) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conns) = live.get_mut(device) {
            conns.retain(|c| c.id != id);
            if conns.is_empty() {
                live.remove(device);
            }
        }
        drop(live);
        self.settled.send_modify(|n| *n += 1);
    }

    /// Closes the connections of `device` still waiting to close after a
    /// `control` message (newer ones stay); how many there were.
    pub(super) fn kick_closing(&self, device: &str) -> usize {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let conns = live.get(device).map(Vec::as_slice).unwrap_or_default();
        let closing: Vec<_> = conns.iter().filter(|c| c.closing.load(Ordering::Relaxed)).collect();
        closing.iter().for_each(|c| c.token.cancel());
        closing.len()
    }

    /// Closes every connection of `device` but `id` (a newer connection
    /// takes over, MQTT 3.1.1 §3.1.4); how many there were.
    pub(super) fn take_over(&self, device: &str, id: u64) -> usize {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let conns = live.get(device).map(Vec::as_slice).unwrap_or_default();
        let older: Vec<_> = conns.iter().filter(|c| c.id != id).collect();
        older.iter().for_each(|c| c.token.cancel());
        older.len()
    }

    /// Closes every connection (at shutdown).
    pub(super) fn close_all(&self) {
        let all = std::mem::take(&mut *self.live.lock().unwrap_or_else(|p| p.into_inner()));
        all.into_values().flatten().for_each(|c| c.token.cancel());
    }

    pub(super) fn count(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_being_cut_off_closes_its_connections_and_no_newer_one() {
        let registry = Registry::default();
        let (_, a, _) = registry.add("p1");
        let (_, b, _) = registry.add("p1");
        let (id, c, _) = registry.add("p2");
        assert_eq!(registry.close_after_control("p1"), 2);
        let (_, newer, _) = registry.add("p1");
        assert_eq!(registry.kick_closing("p1"), 2);
        assert!(a.is_cancelled() && b.is_cancelled() && !c.is_cancelled() && !newer.is_cancelled());
        registry.remove("p2", id);
        assert_eq!(registry.count(), 3, "a closed connection leaves when its task ends");
    }

    #[test]
    fn a_new_connection_takes_over_from_the_devices_older_ones() {
        let registry = Registry::default();
        let (_, old, _) = registry.add("p1");
        let (_, other, _) = registry.add("p2");
        let (id, new, _) = registry.add("p1");
        assert_eq!(registry.take_over("p1", id), 1);
        assert!(old.is_cancelled() && !new.is_cancelled() && !other.is_cancelled());
    }

    #[tokio::test]
    async fn the_newest_subscribed_connection_is_named() {
        let registry = Registry::default();
        let (a, ..) = registry.add("p1");
        let (b, ..) = registry.add("p1");
        assert_eq!(registry.settled("p1").await.connection, None);
        registry.set_subscribed("p1", a, true);
        assert_eq!(registry.settled("p1").await.connection, Some(a));
        registry.set_subscribed("p1", b, true);
        assert_eq!(registry.settled("p1").await.connection, Some(b));
        registry.set_subscribed("p1", b, false);
        registry.remove("p1", a);
        assert_eq!(registry.settled("p1").await.connection, None);
    }

    #[tokio::test]
    async fn a_publish_waits_out_a_subscribe_on_its_way_and_a_subscribe_waits_for_a_publish_in_flight() {
        let registry = Arc::new(Registry::default());
        let (a, ..) = registry.add("p1");
        registry.subscribing("p1", a).await;
        let publisher = tokio::spawn({
            let registry = registry.clone();
            async move { registry.settled("p1").await.connection }
        });
        tokio::task::yield_now().await;
        assert!(!publisher.is_finished(), "the SUBACK is not in");
        registry.set_subscribed("p1", a, true);
        assert_eq!(publisher.await.unwrap(), Some(a));

        let in_flight = registry.settled("p1").await;
        let subscriber = tokio::spawn({
            let registry = registry.clone();
            async move { registry.subscribing("p1", a).await }
        });
        tokio::task::yield_now().await;
        assert!(!subscriber.is_finished(), "a publish holds the gate");
        drop(in_flight);
        subscriber.await.unwrap();
    }

    #[tokio::test]
    async fn a_subscribe_never_answered_holds_a_publish_only_until_the_deadline() {
        let registry = Registry::default();
        let (a, ..) = registry.add("p1");
        registry.set_subscribed("p1", a, true);
        registry.subscribing("p1", a).await;
        let started = std::time::Instant::now();
        assert_eq!(registry.settled("p1").await.connection, None, "not known to reach it");
        assert!(started.elapsed() >= SETTLE_DEADLINE);
    }
}
