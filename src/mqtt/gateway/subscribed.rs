//! Tells the registry when a connection's subscription to the phone's
//! notifications is in force: the phone's SUBSCRIBE covering them is
//! remembered, and the broker's SUBACK granting it marks the connection
//! (the broker sends it after the subscription is in its router, so
//! anything published later reaches the phone). An UNSUBSCRIBE unmarks it.

use super::inspect::{grants, Subscription, Violation};
use super::registry::Registry;
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
}

impl Tracker {
    pub(super) fn new(registry: Arc<Registry>, device: &str, id: u64) -> Tracker {
        Tracker { registry, device: device.to_owned(), id, pending: Mutex::new(None) }
    }

    /// Notes a packet the phone sent (already checked by its rules).
    pub(super) fn phone_sent(&self, change: Subscription) {
        match change {
            Subscription::Unchanged => {}
            Subscription::Requested { pkid, index } => {
                *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some((pkid, index));
            }
            Subscription::Dropped => self.registry.set_subscribed(&self.device, self.id, false),
        }
    }

    /// Reads the broker's bytes in `buf`: the length of the whole packets at
    /// its front, having marked the connection if one grants the awaited
    /// SUBSCRIBE.
    pub(super) fn broker_sent(&self, buf: &[u8]) -> Result<usize, Violation> {
        let mut whole = 0;
        loop {
            let rest = &buf[whole..];
            let length = match rumqttd::protocol::v4::check(rest.iter(), MAX_BROKER_PACKET) {
                Ok(header) => header.frame_length(),
                Err(rumqttd::protocol::Error::InsufficientBytes(_)) => return Ok(whole),
                Err(e) => return Err(Violation::Malformed(format!("from the broker: {e:?}"))),
            };
            self.granted(&rest[..length]);
            whole += length;
        }
    }

    fn granted(&self, frame: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((pkid, index)) = *pending {
            if grants(frame, pkid, index) {
                *pending = None;
                self.registry.set_subscribed(&self.device, self.id, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rumqttd::protocol::v4::V4;
    use rumqttd::protocol::{Packet, PingResp, Protocol, SubAck, SubscribeReasonCode};

    fn frame(packet: Packet) -> Vec<u8> {
        let mut out = BytesMut::new();
        V4.write(packet, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn the_granting_suback_marks_the_connection_even_split_across_reads() {
        let registry = Arc::new(Registry::default());
        let (id, _) = registry.add("p1");
        let tracker = Tracker::new(registry.clone(), "p1", id);
        tracker.phone_sent(Subscription::Requested { pkid: 3, index: 0 });
        let ping = frame(Packet::PingResp(PingResp));
        let ack = frame(Packet::SubAck(SubAck { pkid: 3, return_codes: vec![SubscribeReasonCode::QoS1] }, None));
        let stream = [ping.clone(), ack.clone()].concat();
        let cut = ping.len() + 1;
        assert_eq!(tracker.broker_sent(&stream[..cut]).unwrap(), ping.len());
        assert_eq!(registry.subscribed("p1"), None);
        assert_eq!(tracker.broker_sent(&stream[ping.len()..]).unwrap(), ack.len());
        assert_eq!(registry.subscribed("p1"), Some(id));
        tracker.phone_sent(Subscription::Dropped);
        assert_eq!(registry.subscribed("p1"), None);
    }
}
