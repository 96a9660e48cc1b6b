//! Follows one connection's packets for what the rest of the appliance needs
//! to know: when its subscription to the phone's notifications is in force
//! (the phone's SUBSCRIBE covering them is remembered, and the broker's
//! SUBACK granting it marks the connection: the broker sends it after the
//! subscription is in its router, so anything published later reaches the
//! phone; an UNSUBSCRIBE unmarks it), and, when the connection is to close
//! after telling the phone why, when the phone has that `control` message:
//! it acknowledged it (QoS 1 or 2), or, at QoS 0, it was written.

use super::inspect::{grants, Subscription};
use super::registry::Registry;
use crate::mqtt::topics::Kind;
use rumqttd::protocol::{Packet, SubAck};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One connection's view of its notification subscription.
pub(super) struct Tracker {
    registry: Arc<Registry>,
    device: String,
    id: u64,
    /// The SUBSCRIBE (packet id, filter index) awaiting its SUBACK.
    pending: Mutex<Option<(u16, usize)>>,
    /// Set when the connection is to close after the next `control`.
    closing: Arc<AtomicBool>,
    /// The packet id of the `control` message whose acknowledgement ends
    /// the connection.
    control: Mutex<Option<u16>>,
    /// Told when the phone acknowledged it.
    acked: tokio::sync::Notify,
}

impl Tracker {
    pub(super) fn new(registry: Arc<Registry>, device: &str, id: u64, closing: Arc<AtomicBool>) -> Tracker {
        let (pending, control, acked) = (Mutex::new(None), Mutex::new(None), tokio::sync::Notify::new());
        Tracker { registry, device: device.to_owned(), id, pending, closing, control, acked }
    }

    /// Notes a packet the phone sent (already checked by its rules), before
    /// it is passed on.
    pub(super) async fn phone_sent(&self, change: Subscription) {
        match change {
            Subscription::Unchanged => {}
            Subscription::Requested { pkid, index } => {
                *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some((pkid, index));
                self.registry.subscribing(&self.device, self.id).await;
            }
            Subscription::Dropped => self.registry.set_subscribed(&self.device, self.id, false),
            Subscription::Acked(pkid) => {
                if *self.control.lock().unwrap_or_else(|p| p.into_inner()) == Some(pkid) {
                    self.acked.notify_one();
                }
            }
        }
    }

    /// Resolves once the phone has acknowledged the `control` message that
    /// ends this connection.
    pub(super) async fn control_acknowledged(&self) {
        self.acked.notified().await
    }

    /// Notes a packet the router sends the phone, before it is encoded:
    /// marks the connection when it is the SUBACK granting the awaited
    /// SUBSCRIBE; whether it is a `control` message while the connection
    /// is closing (see [`Tracker::control_written`]).
    pub(super) fn broker_sends(&self, packet: &Packet) -> bool {
        match packet {
            Packet::SubAck(ack, _) => {
                self.granted(ack);
                false
            }
            Packet::Publish(publish, _) => {
                let kind = publish.topic.rsplit(|b| *b == b'/').next();
                kind == Some(Kind::Control.as_str().as_bytes()) && self.closing.load(Ordering::Relaxed)
            }
            _ => false,
        }
    }

    /// Notes that the `control` message of a closing connection, packet
    /// `pkid` (0 at QoS 0), is on its way to the phone: whether it is the
    /// last the phone gets (at QoS 0; otherwise the phone's acknowledgement
    /// ends the connection).
    pub(super) fn control_written(&self, pkid: u16) -> bool {
        if pkid == 0 {
            return true;
        }
        *self.control.lock().unwrap_or_else(|p| p.into_inner()) = Some(pkid);
        false
    }

    fn granted(&self, ack: &SubAck) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(granted) = pending.and_then(|(pkid, index)| grants(ack, pkid, index)) {
            *pending = None;
            self.registry.set_subscribed(&self.device, self.id, granted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttd::protocol::{PingResp, Publish, SubscribeReasonCode};
    use std::time::Duration;

    fn tracker(registry: &Arc<Registry>) -> (Tracker, u64) {
        let (id, _, closing) = registry.add("p1");
        (Tracker::new(registry.clone(), "p1", id, closing), id)
    }

    fn publish(kind: &str) -> Packet {
        Packet::Publish(Publish::new(format!("/tenants/t/topdog/u/p1/{kind}"), "{}".to_owned(), false), None)
    }

    #[tokio::test]
    async fn the_granting_suback_marks_the_connection_and_an_unsubscribe_unmarks_it() {
        let registry = Arc::new(Registry::default());
        let (tracker, id) = tracker(&registry);
        tracker.phone_sent(Subscription::Requested { pkid: 3, index: 0 }).await;
        let ack = |pkid| Packet::SubAck(SubAck { pkid, return_codes: vec![SubscribeReasonCode::QoS1] }, None);
        assert!(!tracker.broker_sends(&Packet::PingResp(PingResp)));
        assert!(!tracker.broker_sends(&ack(2)), "another SUBSCRIBE's SUBACK");
        assert!(!tracker.broker_sends(&ack(3)));
        assert_eq!(registry.settled("p1").await.connection, Some(id));
        tracker.phone_sent(Subscription::Dropped).await;
        assert_eq!(registry.settled("p1").await.connection, None);
    }

    #[tokio::test]
    async fn a_closing_connection_ends_when_the_phone_acknowledges_its_control_message() {
        let registry = Arc::new(Registry::default());
        let (tracker, _) = tracker(&registry);
        assert!(!tracker.broker_sends(&publish("control")), "not closing yet");
        registry.close_after_control("p1");
        assert!(tracker.broker_sends(&publish("control")));
        assert!(!tracker.control_written(9), "at QoS 1 the acknowledgement ends it");
        tracker.phone_sent(Subscription::Acked(8)).await;
        tracker.phone_sent(Subscription::Acked(9)).await;
        tokio::time::timeout(Duration::from_secs(5), tracker.control_acknowledged()).await.expect("acknowledged");
    }

    #[test]
    fn at_qos_0_a_closing_connection_ends_right_after_its_control_message() {
        let registry = Arc::new(Registry::default());
        let (tracker, _) = tracker(&registry);
        assert_eq!(registry.close_after_control("p1"), 1);
        assert!(!tracker.broker_sends(&publish("notification")));
        assert!(tracker.broker_sends(&publish("control")));
        assert!(tracker.control_written(0), "nothing after the control");
    }
}
