//! Phones' messages as the broker link hands them on, handled per device in
//! the order the device sent them (a presence before the answer that
//! follows it), one worker task per device with messages waiting. Each
//! device's queue is bounded: the gateway already holds a phone to its
//! publish budget, so a full queue means the appliance is behind, and the
//! message is dropped rather than held without limit (logged at the first
//! drop, then at most once a minute per device with the count since, so a
//! flood cannot flood the log). A
//! worker ends once its queue stays empty; all run under the appliance's
//! task tracker, so shutdown waits for them.

use super::Messaging;
use crate::mqtt::broker::{Inbox, Received};
use crate::mqtt::topics::parse_topic;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Messages one device may have waiting.
const PER_DEVICE: usize = 64;
/// How long a worker waits for its device's next message before ending.
const IDLE: Duration = Duration::from_secs(30);
/// The least time between two warnings of one device's dropped messages.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// A device's queue, and its messages dropped.
struct Queue {
    sender: mpsc::Sender<Received>,
    drops: Drops,
}

type Queues = Arc<Mutex<HashMap<String, Queue>>>;

/// One device's dropped messages, for a log that says each at most once a
/// [`WARN_EVERY`].
#[derive(Default)]
struct Drops {
    since_warning: u64,
    warned_at: Option<Instant>,
}

impl Drops {
    /// Counts a drop at `now`; how many to warn of, when it is time to.
    fn count(&mut self, now: Instant) -> Option<u64> {
        self.since_warning += 1;
        if self.warned_at.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            return None;
        }
        self.warned_at = Some(now);
        Some(std::mem::take(&mut self.since_warning))
    }
}

/// Hands every message from `inbox` to its device's worker until the link
/// closes or `stop` is cancelled; then the workers finish what they hold.
pub(crate) async fn serve(messaging: Messaging, mut inbox: Inbox, tasks: TaskTracker, stop: CancellationToken) {
    let queues: Queues = Arc::default();
    loop {
        let message = tokio::select! {
            message = inbox.recv() => message,
            _ = stop.cancelled() => None,
        };
        let Some(message) = message else { break };
        let Some(origin) = parse_topic(&message.topic) else {
            tracing::debug!(topic = %message.topic, "ignored a message on an unexpected topic");
            continue;
        };
        dispatch(&queues, &messaging, &tasks, origin.device_id, message);
    }
    queues.lock().unwrap_or_else(|p| p.into_inner()).clear();
}

/// Queues `message` for `device`, starting its worker if it has none.
fn dispatch(queues: &Queues, messaging: &Messaging, tasks: &TaskTracker, device: String, message: Received) {
    let mut all = queues.lock().unwrap_or_else(|p| p.into_inner());
    let message = match all.get_mut(&device) {
        None => message,
        Some(queue) => match queue.sender.try_send(message) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if let Some(dropped) = queue.drops.count(Instant::now()) {
                    tracing::warn!(device = %device, dropped, "a phone's messages were dropped: its queue is full (said at most once a minute)");
                }
                return;
            }
            // Its worker is gone (it panicked): start another.
            Err(mpsc::error::TrySendError::Closed(message)) => message,
        },
    };
    let (sender, received) = mpsc::channel(PER_DEVICE);
    let _ = sender.try_send(message);
    all.insert(device.clone(), Queue { sender, drops: Drops::default() });
    tasks.spawn(work(queues.clone(), messaging.clone(), device, received));
}

/// Handles one device's messages in order; ends (leaving the map) once its
/// queue has stayed empty for [`IDLE`].
async fn work(queues: Queues, messaging: Messaging, device: String, mut received: mpsc::Receiver<Received>) {
    loop {
        match tokio::time::timeout(IDLE, received.recv()).await {
            Ok(Some(message)) => messaging.received(message).await,
            Ok(None) => return,
            Err(_) => {
                let mut all = queues.lock().unwrap_or_else(|p| p.into_inner());
                if received.is_empty() {
                    all.remove(&device);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_messages_are_told_at_the_first_then_once_a_minute_with_the_count() {
        let mut drops = Drops::default();
        let start = Instant::now();
        assert_eq!(drops.count(start), Some(1), "the first drop is told at once");
        let quiet: Vec<Option<u64>> = (1..=99).map(|s| drops.count(start + Duration::from_millis(500 * s))).collect();
        assert!(quiet.iter().all(Option::is_none), "then nothing for a minute");
        assert_eq!(drops.count(start + WARN_EVERY), Some(100), "then the count since");
        assert_eq!(drops.count(start + WARN_EVERY + Duration::from_secs(1)), None);
    }
}
