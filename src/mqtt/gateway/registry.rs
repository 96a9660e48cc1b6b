//! The gateway's live connections by device id, so that revoking or
//! suspending a device closes every connection it has at once, and whether
//! each one's subscription to the device's notifications is in force (its
//! SUBACK has passed), so a replay can leave out what it already got.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Live connections by device id.
#[derive(Default)]
pub(super) struct Registry {
    next: AtomicU64,
    /// The live connections, by device.
    live: Mutex<HashMap<String, Vec<Live>>>,
}

/// One live connection.
struct Live {
    id: u64,
    token: CancellationToken,
    /// Its notification subscription is in force.
    subscribed: bool,
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
        let entry = Live { id, token: token.clone(), subscribed: false, closing: closing.clone() };
        live.entry(device.to_owned()).or_default().push(entry);
        (id, token, closing)
    }

    /// Asks every connection of `device` to close once a `control` message
    /// has passed to the phone; how many there are.
    pub(super) fn close_after_control(&self, device: &str) -> usize {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let conns = live.get(device).map(Vec::as_slice).unwrap_or_default();
        conns.iter().for_each(|c| c.closing.store(true, Ordering::Relaxed));
        conns.len()
    }

    /// Marks whether connection `id`'s notification subscription is in force.
    pub(super) fn set_subscribed(&self, device: &str, id: u64, subscribed: bool) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let conns = live.get_mut(device).into_iter().flatten();
        conns.filter(|c| c.id == id).for_each(|c| c.subscribed = subscribed);
    }

    /// The newest connection of `device` whose notification subscription is
    /// in force.
    pub(super) fn subscribed(&self, device: &str) -> Option<u64> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(device)?.iter().rev().find(|c| c.subscribed).map(|c| c.id)
    }

    pub(super) fn remove(&self, device: &str, id: u64) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conns) = live.get_mut(device) {
            conns.retain(|c| c.id != id);
            if conns.is_empty() {
                live.remove(device);
            }
        }
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
    fn the_newest_subscribed_connection_is_named() {
        let registry = Registry::default();
        let (a, ..) = registry.add("p1");
        let (b, ..) = registry.add("p1");
        assert_eq!(registry.subscribed("p1"), None);
        registry.set_subscribed("p1", a, true);
        assert_eq!(registry.subscribed("p1"), Some(a));
        registry.set_subscribed("p1", b, true);
        assert_eq!(registry.subscribed("p1"), Some(b));
        registry.set_subscribed("p1", b, false);
        registry.remove("p1", a);
        assert_eq!(registry.subscribed("p1"), None);
    }
}
