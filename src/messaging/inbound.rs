//! Phones' messages as the broker link hands them on, handled per device in
//! the order the device sent them (a presence before the answer that
//! follows it), one worker task per device with messages waiting. Each
//! device's queue is bounded: the gateway already holds a phone to its
//! publish budget, so a full queue means the appliance is behind, and the
//! message is dropped (and logged) rather than held without limit. A
//! worker ends once its queue stays empty; all run under the appliance's
//! task tracker, so shutdown waits for them.

use super::Messaging;
use crate::mqtt::broker::{Inbox, Received};
use crate::mqtt::topics::parse_topic;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Messages one device may have waiting.
const PER_DEVICE: usize = 64;
/// How long a worker waits for its device's next message before ending.
const IDLE: Duration = Duration::from_secs(30);

type Queues = Arc<Mutex<HashMap<String, mpsc::Sender<Received>>>>;

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
    let message = match all.get(&device) {
        None => message,
        Some(queue) => match queue.try_send(message) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(device = %device, "a phone's message was dropped: its queue is full");
                return;
            }
            // Its worker is gone (it panicked): start another.
            Err(mpsc::error::TrySendError::Closed(message)) => message,
        },
    };
    let (queue, received) = mpsc::channel(PER_DEVICE);
    let _ = queue.try_send(message);
    all.insert(device.clone(), queue);
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
