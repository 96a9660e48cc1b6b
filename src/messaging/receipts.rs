//! Receipts: for each device an item (a notification or an approval) was
//! sent to, how far it got: `stored` → `pushed` (a push service took it) →
//! `delivered` (published to the phone's subscribed MQTT connection or its
//! open event stream, or acknowledged by its `since`) → `seen` (shown in
//! the open app, or its notification tapped). Seen is on disk, since
//! escalation hangs on it; pushed and delivered are kept in memory for the
//! newest [`REMEMBERED`] receipts (lost on a restart, as the replay makes
//! delivery good again).

use super::MessagingError;
use crate::clock::{Clock, Timestamp};
use crate::store::{Store, Table};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Receipts kept in memory (the oldest are forgotten first).
pub(crate) const REMEMBERED: usize = 100_000;

/// Most ids one `seen` names.
pub(crate) const MAX_SEEN: usize = 100;

/// How far an item got on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Step {
    /// On disk, for the device.
    Stored,
    /// A push service took it.
    Pushed,
    /// The phone has it.
    Delivered,
    /// The phone showed it to its person.
    Seen,
}

/// One device's receipt for one item.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Receipt {
    /// The device.
    pub device_id: String,
    /// The furthest step.
    pub state: Step,
    /// When each step was reached (pushed and delivered only while
    /// remembered).
    pub stored_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Times {
    pushed: Option<Timestamp>,
    delivered: Option<Timestamp>,
}

/// Pushed and delivered times, newest [`REMEMBERED`].
#[derive(Default)]
struct Memory {
    times: HashMap<(String, String), Times>,
    order: VecDeque<(String, String)>,
}

/// The receipts (cheap to clone).
#[derive(Clone)]
pub(crate) struct Receipts {
    store: Store,
    memory: Arc<Mutex<Memory>>,
    clock: Clock,
}

fn seen_key(item: &str, device: &str) -> String {
    format!("{item}/{device}")
}

impl Receipts {
    /// Receipts over `store`.
    pub(crate) fn new(store: Store, clock: Clock) -> Receipts {
        Receipts { store, memory: Arc::default(), clock }
    }

    /// Notes that `item` was pushed to, or delivered to, `device` now
    /// (only the first time counts).
    pub(crate) fn reached(&self, device: &str, item: &str, step: Step) {
        let now = self.clock.now();
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let key = (device.to_owned(), item.to_owned());
        if !memory.times.contains_key(&key) {
            if memory.order.len() >= REMEMBERED {
                if let Some(oldest) = memory.order.pop_front() {
                    memory.times.remove(&oldest);
                }
            }
            memory.order.push_back(key.clone());
        }
        let times = memory.times.entry(key).or_default();
        match step {
            Step::Pushed => _ = times.pushed.get_or_insert(now),
            Step::Delivered => _ = times.delivered.get_or_insert(now),
            Step::Stored | Step::Seen => {}
        }
    }

    /// Records that `device` showed `items` (on disk when this returns;
    /// the first time counts).
    pub(crate) async fn seen(&self, device: &str, items: &[String]) -> Result<(), MessagingError> {
        if items.len() > MAX_SEEN {
            return Err(MessagingError::invalid("ids", format!("at most {MAX_SEEN} at once")));
        }
        let now = self.clock.now();
        self.store
            .commit(|tx| {
                for item in items {
                    let key = seen_key(item, device);
                    if tx.get::<Timestamp, MessagingError>(Table::Receipts, &key)?.is_none() {
                        tx.put(Table::Receipts, &key, &now)?;
                    }
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Whether any of `devices` has seen `item`.
    pub(crate) fn seen_by_any(&self, item: &str, devices: &[String]) -> Result<bool, MessagingError> {
        for device in devices {
            if self.store.contains(Table::Receipts, &seen_key(item, device))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The receipt of `item` (stored at `stored_at`) on each of
    /// `devices`; `acknowledged` says which devices' cursors are past it.
    pub(crate) fn of(
        &self,
        item: &str,
        stored_at: Timestamp,
        devices: &[String],
        acknowledged: impl Fn(&str) -> bool,
    ) -> Result<Vec<Receipt>, MessagingError> {
        let memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let mut receipts = Vec::with_capacity(devices.len());
        for device in devices {
            let times = memory.times.get(&(device.clone(), item.to_owned())).copied().unwrap_or_default();
            let seen_at: Option<Timestamp> = self.store.get(Table::Receipts, &seen_key(item, device))?;
            let state = match (seen_at, times.delivered, times.pushed) {
                (Some(_), ..) => Step::Seen,
                (None, Some(_), _) => Step::Delivered,
                _ if acknowledged(device) => Step::Delivered,
                (None, None, Some(_)) => Step::Pushed,
                _ => Step::Stored,
            };
            receipts.push(Receipt {
                device_id: device.clone(),
                state,
                stored_at,
                pushed_at: times.pushed,
                delivered_at: times.delivered,
                seen_at,
            });
        }
        Ok(receipts)
    }

    /// Removes seen marks older than `cutoff` (their items are pruned
    /// too); how many.
    pub(crate) fn prune(&self, cutoff: Timestamp) -> Result<usize, MessagingError> {
        let marks: Vec<(String, Timestamp)> = self.store.scan_keyed(Table::Receipts)?;
        let old: Vec<&String> = marks.iter().filter(|(_, at)| *at < cutoff).map(|(key, _)| key).collect();
        self.store
            .commit_unflushed(|tx| old.iter().try_for_each(|key| tx.remove::<MessagingError>(Table::Receipts, key)))?;
        Ok(old.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_device_moves_through_the_steps_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let receipts = Receipts::new(store, Clock::system());
        let devices = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let at = chrono::Utc::now();
        let states = |r: &Receipts| -> Vec<Step> {
            r.of("n1", at, &devices, |d| d == "c").unwrap().into_iter().map(|r| r.state).collect()
        };
        assert_eq!(states(&receipts), [Step::Stored, Step::Stored, Step::Delivered]);
        receipts.reached("a", "n1", Step::Pushed);
        assert_eq!(states(&receipts)[0], Step::Pushed);
        receipts.reached("a", "n1", Step::Delivered);
        assert_eq!(states(&receipts)[0], Step::Delivered);
        assert!(!receipts.seen_by_any("n1", &devices).unwrap());
        receipts.seen("b", &["n1".to_owned()]).await.unwrap();
        assert_eq!(states(&receipts), [Step::Delivered, Step::Seen, Step::Delivered]);
        assert!(receipts.seen_by_any("n1", &devices).unwrap());
        let first = receipts.of("n1", at, &devices, |_| false).unwrap()[1].seen_at;
        receipts.seen("b", &["n1".to_owned()]).await.unwrap();
        assert_eq!(receipts.of("n1", at, &devices, |_| false).unwrap()[1].seen_at, first, "the first time counts");
        assert!(receipts.seen("b", &vec!["x".to_owned(); MAX_SEEN + 1]).await.is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let receipts = Receipts::new(Store::open(&dir.path().join("db")).unwrap(), Clock::system());
        for i in 0..REMEMBERED + 10 {
            receipts.reached("a", &format!("n{i}"), Step::Delivered);
        }
        let memory = receipts.memory.lock().unwrap();
        assert_eq!((memory.times.len(), memory.order.len()), (REMEMBERED, REMEMBERED));
        assert!(!memory.times.contains_key(&("a".to_owned(), "n0".to_owned())), "the oldest went first");
    }
}
