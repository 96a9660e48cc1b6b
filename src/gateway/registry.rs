//! The gateway's live connections by device id, so that revoking or
//! suspending a device closes every connection it has at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Live connections by device id.
#[derive(Default)]
pub(super) struct Registry {
    next: AtomicU64,
    /// The live connections' cancel tokens, by device.
    live: Mutex<HashMap<String, Vec<(u64, CancellationToken)>>>,
}

impl Registry {
    pub(super) fn add(&self, device: &str) -> (u64, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.entry(device.to_owned()).or_default().push((id, token.clone()));
        (id, token)
    }

    pub(super) fn remove(&self, device: &str, id: u64) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conns) = live.get_mut(device) {
            conns.retain(|(i, _)| *i != id);
            if conns.is_empty() {
                live.remove(device);
            }
        }
    }

    pub(super) fn kick(&self, device: &str) -> usize {
        let conns = self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(device).unwrap_or_default();
        conns.iter().for_each(|(_, token)| token.cancel());
        conns.len()
    }

    /// Whether `device` has a live connection.
    pub(super) fn contains(&self, device: &str) -> bool {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).contains_key(device)
    }

    /// Closes every connection (at shutdown).
    pub(super) fn close_all(&self) {
        let all = std::mem::take(&mut *self.live.lock().unwrap_or_else(|p| p.into_inner()));
        all.into_values().flatten().for_each(|(_, token)| token.cancel());
    }

    pub(super) fn count(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kick_closes_every_connection_of_a_device() {
        let registry = Registry::default();
        let (_, a) = registry.add("p1");
        let (_, b) = registry.add("p1");
        let (id, c) = registry.add("p2");
        assert_eq!(registry.kick("p1"), 2);
        assert!(a.is_cancelled() && b.is_cancelled() && !c.is_cancelled());
        registry.remove("p2", id);
        assert_eq!(registry.count(), 0);
    }
}
