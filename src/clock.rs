//! Time for the domain modules: one `Clock` handle, made at start-up and
//! passed to every part that reads the time, so that every timestamp the
//! appliance writes has the same type and format, and so that tests move
//! time instead of waiting for it. In test builds (the development key) the
//! admin API can shift it (`POST /admin/test/clock`); in release builds
//! nothing can.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A point in time, UTC, serialised as RFC 3339.
pub(crate) type Timestamp = DateTime<Utc>;

/// The appliance's clock (cheap to clone; clones share the shift).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Milliseconds added to the system clock (tests only).
    shift_ms: Arc<AtomicI64>,
    /// Wakes those sleeping on this clock when it is moved.
    moved: Arc<tokio::sync::Notify>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The current time.
    pub(crate) fn now(&self) -> Timestamp {
        Utc::now() + chrono::Duration::milliseconds(self.shift_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and its clones) by `by`, forward or back (tests and
    /// the test builds' clock route only).
    #[cfg(any(test, feature = "dev-license-key"))]
    pub(crate) fn shift(&self, by: chrono::Duration) {
        self.shift_ms.fetch_add(by.num_milliseconds(), Ordering::Relaxed);
        self.moved.notify_waiters();
    }

    /// Sleeps until this clock reads `deadline` or later, waking early to
    /// look again when the clock is moved.
    pub(crate) async fn sleep_until(&self, deadline: Timestamp) {
        loop {
            let moved = self.moved.notified();
            let left = (deadline - self.now()).to_std().unwrap_or_default();
            if left.is_zero() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(left) => {}
                _ = moved => {}
            }
        }
    }
}

/// Converts a `std::time::Duration` into a chrono duration, saturating.
pub(crate) fn span(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_a_shift() {
        let clock = Clock::system();
        let other = clock.clone();
        let before = other.now();
        clock.shift(chrono::Duration::days(3));
        assert!(other.now() - before >= chrono::Duration::days(3));
    }

    #[tokio::test]
    async fn a_sleeper_wakes_when_the_clock_is_moved_past_its_deadline() {
        let clock = Clock::system();
        let deadline = clock.now() + chrono::Duration::days(30);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(deadline).await }
        });
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.shift(chrono::Duration::days(31));
        tokio::time::timeout(std::time::Duration::from_secs(5), sleeper).await.unwrap().unwrap();
    }
}
