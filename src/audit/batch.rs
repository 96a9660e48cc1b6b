//! Group commit of the audit log: events recorded while an earlier write is
//! on its way wait in a queue and go to the log together in the next write
//! (one disk flush, or one transaction of the shared store, for the lot),
//! in the order they were queued. A burst of audited requests then costs
//! one write per turn instead of one each, queued behind one another.

use super::Event;
use crate::clock::Timestamp;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// An event waiting to be written, and who waits for it.
struct Queued {
    event: Event,
    time: Timestamp,
    written: oneshot::Sender<()>,
}

/// The queue and the writers' turn (cheap to clone).
#[derive(Clone, Default)]
pub(super) struct Batcher {
    queue: Arc<Mutex<Vec<Queued>>>,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Batcher {
    /// Queues `event`; the receiver hears when its write is over.
    pub(super) fn push(&self, event: Event, time: Timestamp) -> oneshot::Receiver<()> {
        let (written, wait) = oneshot::channel();
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(Queued { event, time, written });
        wait
    }

    /// Waits for the writers' turn, hands `write` everything queued by then
    /// (nothing to do when an earlier turn took it all), and tells those
    /// waiting for it once `write` is over.
    pub(super) async fn in_turn<F>(&self, write: impl FnOnce(Vec<(Event, Timestamp)>) -> F)
    where
        F: std::future::Future<Output = ()>,
    {
        let _turn = self.turn.lock().await;
        let queued = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        if queued.is_empty() {
            return;
        }
        let (entries, waiting): (Vec<_>, Vec<_>) = queued.into_iter().map(|q| ((q.event, q.time), q.written)).unzip();
        write(entries).await;
        for written in waiting {
            let _ = written.send(());
        }
    }
}
