//! Follows one connection's packets for what the rest of the appliance needs
//! to know: when its subscription to the phone's notifications is in force
//! (the phone's SUBSCRIBE covering them is remembered, and the broker's
//! SUBACK granting it marks the connection: the broker sends it after the
//! subscription is in its router, so anything published later reaches the
//! phone; an UNSUBSCRIBE unmarks it), and, when the connection is to close
//! after telling the phone why, when the phone has that `control` message:
//! it acknowledged it (QoS 1 or 2), or, at QoS 0, it was written.

use super::inspect::{grants, publish_topic, Subscription, Violation};
use super::registry::Registry;
use crate::mqtt::topics::Kind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Largest packet the broker sends a phone.
const MAX_BROKER_PACKET: usize = 1024 * 1024;

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

/// What the broker's bytes held.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Passed {
    /// Length of the whole packets at the front.
    pub whole: usize,
    /// A `control` message was among them while the connection is closing.
    pub last: bool,
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

    /// Reads the broker's bytes in `buf`: how much of it is whole packets
    /// (having marked the connection if one grants the awaited SUBSCRIBE),
    /// and whether they end the connection.
    pub(super) fn broker_sent(&self, buf: &[u8]) -> Result<Passed, Violation> {
        let closing = self.closing.load(Ordering::Relaxed);
        let mut passed = Passed { whole: 0, last: false };
        loop {
            let rest = &buf[passed.whole..];
            let length = match rumqttd::protocol::v4::check(rest.iter(), MAX_BROKER_PACKET) {
                Ok(header) => header.frame_length(),
                Err(rumqttd::protocol::Error::InsufficientBytes(_)) => return Ok(passed),
                Err(e) => return Err(Violation::Malformed(format!("from the broker: {e:?}"))),
            };
            let frame = &rest[..length];
            self.granted(frame);
            passed.whole += length;
            match control_pkid(frame).filter(|_| closing) {
                Some(0) => {
                    passed.last = true;
                    return Ok(passed);
                }
                Some(pkid) => *self.control.lock().unwrap_or_else(|p| p.into_inner()) = Some(pkid),
                None => {}
            }
        }
    }

    fn granted(&self, frame: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(granted) = pending.and_then(|(pkid, index)| grants(frame, pkid, index)) {
            *pending = None;
            self.registry.set_subscribed(&self.device, self.id, granted);
        }
    }
}

/// The packet id of `frame` when it is a PUBLISH of a `control` message.
fn control_pkid(frame: &[u8]) -> Option<u16> {
    let (topic, pkid) = publish_topic(frame)?;
    (topic.rsplit('/').next() == Some(Kind::Control.as_str())).then_some(pkid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rumqttd::protocol::v4::V4;
    use rumqttd::protocol::{Packet, PingResp, Protocol, SubAck, SubscribeReasonCode};
    use std::time::Duration;

    fn frame(packet: Packet) -> Vec<u8> {
        let mut out = BytesMut::new();
        V4.write(packet, &mut out).unwrap();
        out.to_vec()
    }

    #[tokio::test]
    async fn the_granting_suback_marks_the_connection_even_split_across_reads() {
        let registry = Arc::new(Registry::default());
        let (id, _, closing) = registry.add("p1");
        let tracker = Tracker::new(registry.clone(), "p1", id, closing);
        tracker.phone_sent(Subscription::Requested { pkid: 3, index: 0 }).await;
        let ping = frame(Packet::PingResp(PingResp));
        let ack = frame(Packet::SubAck(SubAck { pkid: 3, return_codes: vec![SubscribeReasonCode::QoS1] }, None));
        let stream = [ping.clone(), ack.clone()].concat();
        let cut = ping.len() + 1;
        assert_eq!(tracker.broker_sent(&stream[..cut]).unwrap(), Passed { whole: ping.len(), last: false });
        assert_eq!(tracker.broker_sent(&stream[ping.len()..]).unwrap(), Passed { whole: ack.len(), last: false });
        assert_eq!(registry.settled("p1").await.connection, Some(id));
        tracker.phone_sent(Subscription::Dropped).await;
        assert_eq!(registry.settled("p1").await.connection, None);
    }

    #[tokio::test]
    async fn a_closing_connection_ends_when_the_phone_acknowledges_its_control_message() {
        let registry = Arc::new(Registry::default());
        let (id, _, closing) = registry.add("p1");
        let tracker = Tracker::new(registry.clone(), "p1", id, closing);
        registry.close_after_control("p1");
        // A QoS 1 PUBLISH of packet 9 (rumqttd's constructor makes QoS 0 only).
        let topic = b"/tenants/t/topdog/u/p1/control";
        let mut control = vec![0x32, (2 + topic.len() + 2 + 2) as u8, 0, topic.len() as u8];
        control.extend_from_slice(topic);
        control.extend_from_slice(&[0, 9, b'{', b'}']);
        assert_eq!(tracker.broker_sent(&control).unwrap(), Passed { whole: control.len(), last: false });
        tracker.phone_sent(Subscription::Acked(8)).await;
        tracker.phone_sent(Subscription::Acked(9)).await;
        tokio::time::timeout(Duration::from_secs(5), tracker.control_acknowledged()).await.expect("acknowledged");
    }

    #[test]
    fn at_qos_0_a_closing_connection_ends_right_after_its_control_message() {
        let registry = Arc::new(Registry::default());
        let (id, _, closing) = registry.add("p1");
        let tracker = Tracker::new(registry.clone(), "p1", id, closing);
        let publish = |kind: &str| {
            let topic = format!("/tenants/t/topdog/u/p1/{kind}");
            frame(Packet::Publish(rumqttd::protocol::Publish::new(topic, "{}".to_owned(), false), None))
        };
        let (note, control) = (publish("notification"), publish("control"));
        let stream = [note.clone(), control.clone(), note.clone()].concat();
        assert_eq!(tracker.broker_sent(&stream).unwrap(), Passed { whole: stream.len(), last: false });
        assert_eq!(registry.close_after_control("p1"), 1);
        let passed = tracker.broker_sent(&stream).unwrap();
        assert_eq!(passed, Passed { whole: note.len() + control.len(), last: true }, "nothing after the control");
    }
}
