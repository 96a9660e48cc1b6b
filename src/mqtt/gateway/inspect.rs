//! The rules a phone's MQTT packets must keep before the gateway passes them
//! to the broker, read with rumqttd's own MQTT 3.1.1 codec: the CONNECT's
//! client id is the certificate's device and its will stays on the phone's
//! `presence` topic; every PUBLISH goes to one of the phone's own
//! phone → appliance topics, never retained, within the size and rate
//! bounds; every SUBSCRIBE stays inside the phone's own prefix. Anything
//! else closes the connection. This bounds what one phone can make the
//! broker keep (topics, retained messages, filters) to a fixed handful.

use crate::mqtt::topics::{topic_prefix, Kind, KINDS};
use bytes::{Bytes, BytesMut};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rumqttd::protocol::v4::{self, V4};
use rumqttd::protocol::{ConnAck, ConnectReturnCode, LastWill, Packet, Protocol, SubAck, SubscribeReasonCode};
use std::num::NonZeroU32;

/// Largest packet a phone may send (a 64 KiB payload and its topic).
pub(super) const MAX_PACKET: usize = 64 * 1024 + 1024;
/// A phone's publish burst, in seconds of its sustained rate.
const BURST_SECONDS: u32 = 5;

/// Why a phone's packet was refused (the connection is closed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum Violation {
    /// Not an MQTT 3.1.1 packet, or over [`MAX_PACKET`].
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// A packet a client may not send here (a second CONNECT, a CONNACK…).
    #[error("unexpected {0} packet")]
    Unexpected(&'static str),
    /// The CONNECT's client id is not the certificate's device.
    #[error("client id {0:?} does not match the certificate")]
    ClientId(String),
    /// A publish or will outside the phone's own phone → appliance topics.
    #[error("publish to {0:?} is outside this phone's topics")]
    Topic(String),
    /// A subscription outside the phone's own prefix.
    #[error("subscription to {0:?} is outside this phone's prefix")]
    Filter(String),
    /// Phones may not leave retained messages.
    #[error("retained messages are not accepted from phones")]
    Retained,
    /// More publishes than the phone's budget.
    #[error("publish flood")]
    Flood,
}

impl Violation {
    /// The metric label.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            Violation::Malformed(_) | Violation::Unexpected(_) => "malformed",
            Violation::ClientId(_) => "connect",
            Violation::Topic(_) | Violation::Filter(_) => "topic_rule",
            Violation::Retained => "retained",
            Violation::Flood => "flood",
        }
    }
}

/// Takes the next whole packet off `buf` (None: more bytes are needed).
pub(super) fn next_frame(buf: &mut BytesMut) -> Result<Option<Bytes>, Violation> {
    match v4::check(buf.iter(), MAX_PACKET) {
        Ok(header) => Ok(Some(buf.split_to(header.frame_length()).freeze())),
        Err(rumqttd::protocol::Error::InsufficientBytes(_)) => Ok(None),
        Err(e) => Err(Violation::Malformed(format!("{e:?}"))),
    }
}

/// The packet in `frame`, read with rumqttd's codec.
pub(super) fn decode(frame: &Bytes) -> Result<Packet, Violation> {
    let mut copy = BytesMut::from(&frame[..]);
    V4.read_mut(&mut copy, MAX_PACKET).map_err(|e| Violation::Malformed(format!("{e:?}")))
}

/// When `ack` (from the broker) is the SUBACK of SUBSCRIBE `pkid`:
/// whether it grants its filter number `index`.
pub(super) fn grants(ack: &SubAck, pkid: u16, index: usize) -> Option<bool> {
    let granted = |c: &SubscribeReasonCode| !matches!(c, SubscribeReasonCode::Failure);
    (ack.pkid == pkid).then(|| ack.return_codes.get(index).is_some_and(granted))
}

/// The packet id (0 at QoS 0) of `frame`, a PUBLISH the gateway encoded.
/// rumqttd keeps it private: it follows the topic (MQTT 3.1.1 §3.3.2)
/// when the QoS in the first byte is above 0.
pub(super) fn publish_pkid(frame: &[u8]) -> u16 {
    let qos = frame.first().map_or(0, |b| (b >> 1) & 3);
    let length_bytes = frame.iter().skip(1).position(|b| b & 0x80 == 0).unwrap_or(0) + 1;
    let at = 1 + length_bytes;
    let field = |i: usize| frame.get(i..i + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    match qos {
        0 => 0,
        _ => field(at + 2 + usize::from(field(at))),
    }
}

/// A phone's CONNECT, as the gateway checks and keeps it.
pub(super) struct Connect {
    /// The client id (the certificate's device: [`Rules::connect`]).
    pub client_id: String,
    /// Seconds the phone may stay silent (its keep-alive).
    pub keep_alive: u16,
    /// What to publish for the phone when it goes without a DISCONNECT.
    pub will: Option<LastWill>,
    /// The password: the device token, which the gateway checks.
    pub token: Option<String>,
}

/// Reads a CONNECT frame (refused when it is anything else).
pub(super) fn connect(frame: &Bytes) -> Result<Connect, Violation> {
    let Packet::Connect(connect, _, will, _, login) = decode(frame)? else {
        return Err(Violation::Unexpected("non-CONNECT first"));
    };
    let token = login.map(|l| l.password);
    Ok(Connect { client_id: connect.client_id, keep_alive: connect.keep_alive, will, token })
}

/// Writes `packet` (from the broker) to `out`.
pub(super) fn encode(packet: Packet, out: &mut BytesMut) -> Result<(), Violation> {
    V4.write(packet, out).map(|_| ()).map_err(|e| Violation::Malformed(format!("from the broker: {e:?}")))
}

/// The CONNACK that refuses a phone whose token is not accepted.
pub(super) fn not_authorized() -> Bytes {
    let mut out = BytesMut::with_capacity(4);
    let refused = ConnAck { session_present: false, code: ConnectReturnCode::NotAuthorized };
    // Writing a CONNACK into a buffer cannot fail.
    let _ = V4.write(Packet::ConnAck(refused, None), &mut out);
    out.freeze()
}

/// What a packet the phone sent does to its subscription to its own
/// notifications (so the gateway can tell when that subscription is in
/// force: see `subscribed`).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Subscription {
    /// Nothing.
    Unchanged,
    /// A SUBSCRIBE whose filter number `index` covers the notifications.
    Requested {
        /// The SUBSCRIBE's packet id (its SUBACK carries the same).
        pkid: u16,
        /// Which of its filters.
        index: usize,
    },
    /// An UNSUBSCRIBE that may drop it.
    Dropped,
    /// The phone acknowledged the broker's PUBLISH `pkid` (PUBACK/PUBREC).
    Acked(u16),
}

/// One phone connection's rules.
pub(super) struct Rules {
    device: String,
    prefix: String,
    publishes: DefaultDirectRateLimiter,
}

impl Rules {
    /// The rules for `device` of `user`, who may publish `rate` times a
    /// second.
    pub(super) fn new(user: &str, device: &str, rate: u32) -> Rules {
        let burst = NonZeroU32::new(rate.saturating_mul(BURST_SECONDS)).unwrap_or(NonZeroU32::MIN);
        let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
        Rules {
            device: device.to_owned(),
            prefix: topic_prefix(user, device),
            publishes: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// Checks the CONNECT: client id and will.
    pub(super) fn connect(&self, connect: &Connect) -> Result<(), Violation> {
        if connect.client_id != self.device {
            return Err(Violation::ClientId(connect.client_id.clone()));
        }
        match &connect.will {
            Some(will) if will.retain => Err(Violation::Retained),
            Some(will) => self.own_topic(&String::from_utf8_lossy(&will.topic), |k| *k == Kind::Presence),
            None => Ok(()),
        }
    }

    /// Checks one packet after the CONNECT.
    pub(super) fn check(&self, packet: &Packet) -> Result<Subscription, Violation> {
        match packet {
            Packet::Publish(publish, _) => {
                if publish.retain {
                    return Err(Violation::Retained);
                }
                self.own_topic(&String::from_utf8_lossy(&publish.topic), |k| k.from_phone())?;
                self.publishes.check().map_err(|_| Violation::Flood)?;
                Ok(Subscription::Unchanged)
            }
            Packet::Subscribe(subscribe, _) => {
                subscribe.filters.iter().try_for_each(|f| self.own_filter(&f.path))?;
                Ok(match subscribe.filters.iter().position(|f| self.covers_notifications(&f.path)) {
                    Some(index) => Subscription::Requested { pkid: subscribe.pkid, index },
                    None => Subscription::Unchanged,
                })
            }
            Packet::Unsubscribe(..) => Ok(Subscription::Dropped),
            Packet::PubAck(ack, _) => Ok(Subscription::Acked(ack.pkid)),
            Packet::PubRec(rec, _) => Ok(Subscription::Acked(rec.pkid)),
            Packet::PingReq(_) | Packet::PubRel(..) | Packet::PubComp(..) | Packet::Disconnect(..) => {
                Ok(Subscription::Unchanged)
            }
            Packet::Connect(..) => Err(Violation::Unexpected("second CONNECT")),
            _ => Err(Violation::Unexpected("server-only")),
        }
    }

    /// Whether `filter` (already inside the prefix) matches the phone's
    /// notification topic.
    fn covers_notifications(&self, filter: &str) -> bool {
        let rest = filter.strip_prefix(self.prefix.as_str()).and_then(|rest| rest.strip_prefix('/'));
        matches!(rest, Some("#" | "+")) || rest == Some(Kind::Notification.as_str())
    }

    /// Whether `topic` is one of the phone's own, of a kind `allowed`.
    fn own_topic(&self, topic: &str, allowed: impl Fn(&Kind) -> bool) -> Result<(), Violation> {
        let kind = topic.strip_prefix(self.prefix.as_str()).and_then(|rest| rest.strip_prefix('/'));
        if kind.is_some_and(|k| KINDS.iter().any(|known| known.as_str() == k && allowed(known))) {
            Ok(())
        } else {
            Err(Violation::Topic(topic.chars().take(200).collect()))
        }
    }

    fn own_filter(&self, filter: &str) -> Result<(), Violation> {
        let rest = filter.strip_prefix(self.prefix.as_str()).and_then(|rest| rest.strip_prefix('/'));
        let known = |r: &str| r == "#" || r == "+" || KINDS.iter().any(|k| k.as_str() == r);
        if rest.is_some_and(known) {
            Ok(())
        } else {
            Err(Violation::Filter(filter.chars().take(200).collect()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttd::protocol::{Filter, Login, Publish, QoS, RetainForwardRule, Subscribe};

    fn check(rules: &Rules, frame: &Bytes) -> Result<Subscription, Violation> {
        rules.check(&decode(frame)?)
    }

    fn frame(packet: Packet) -> Bytes {
        let mut out = BytesMut::new();
        V4.write(packet, &mut out).unwrap();
        out.freeze()
    }

    fn publish(topic: &str, retain: bool) -> Bytes {
        frame(Packet::Publish(Publish::new(topic.to_owned(), "{}".to_owned(), retain), None))
    }

    fn subscribe(path: &str) -> Bytes {
        let filter = Filter {
            path: path.into(),
            qos: QoS::AtLeastOnce,
            nolocal: false,
            preserve_retain: false,
            retain_forward_rule: RetainForwardRule::Never,
        };
        frame(Packet::Subscribe(Subscribe { pkid: 1, filters: vec![filter] }, None))
    }

    #[test]
    fn a_phone_publishes_only_its_own_inbound_types_and_never_retains() {
        let rules = Rules::new("alice", "pixel-8", 20);
        let own = topic_prefix("alice", "pixel-8");
        assert_eq!(check(&rules, &publish(&format!("{own}/presence"), false)), Ok(Subscription::Unchanged));
        assert_eq!(check(&rules, &publish(&format!("{own}/voice_command"), false)), Ok(Subscription::Unchanged));
        assert_eq!(check(&rules, &publish(&format!("{own}/presence"), true)), Err(Violation::Retained));
        for bad in [format!("{own}/notification"), format!("{own}/x1"), format!("{own}x/presence"), "#".into()] {
            assert!(matches!(check(&rules, &publish(&bad, false)), Err(Violation::Topic(_))), "{bad}");
        }
        let other = topic_prefix("bob", "pixel-9");
        assert!(check(&rules, &publish(&format!("{other}/presence"), false)).is_err());
    }

    #[test]
    fn a_phone_subscribes_only_inside_its_prefix() {
        let rules = Rules::new("alice", "pixel-8", 20);
        let own = topic_prefix("alice", "pixel-8");
        for good in [format!("{own}/#"), format!("{own}/+"), format!("{own}/notification")] {
            assert_eq!(check(&rules, &subscribe(&good)), Ok(Subscription::Requested { pkid: 1, index: 0 }), "{good}");
        }
        assert_eq!(check(&rules, &subscribe(&format!("{own}/control"))), Ok(Subscription::Unchanged));
        let other = topic_prefix("bob", "pixel-9");
        for bad in ["#".to_owned(), "+/#".into(), "$SYS/#".into(), format!("{other}/#"), format!("{own}/x/#")] {
            assert!(matches!(check(&rules, &subscribe(&bad)), Err(Violation::Filter(_))), "{bad}");
        }
    }

    #[test]
    fn only_the_suback_of_the_awaited_subscribe_grants_it() {
        let ack =
            |pkid: u16, code: SubscribeReasonCode| SubAck { pkid, return_codes: vec![SubscribeReasonCode::QoS1, code] };
        assert_eq!(grants(&ack(7, SubscribeReasonCode::QoS1), 7, 1), Some(true));
        assert_eq!(grants(&ack(7, SubscribeReasonCode::Failure), 7, 1), Some(false));
        assert_eq!(grants(&ack(8, SubscribeReasonCode::QoS1), 7, 1), None);
        assert_eq!(grants(&ack(7, SubscribeReasonCode::QoS1), 7, 2), Some(false));
    }

    #[test]
    fn the_packet_id_of_an_encoded_publish_is_read_after_its_topic() {
        assert_eq!(publish_pkid(&publish("/t/a", false)), 0, "QoS 0 has none");
        let topic = "/t/".to_owned() + &"x".repeat(200);
        let mut body = (topic.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(topic.as_bytes());
        body.extend_from_slice(&[0x01, 0x02, b'{', b'}']);
        let header = [0x32, (body.len() as u8 & 0x7f) | 0x80, (body.len() >> 7) as u8];
        let frame = [&header[..], &body].concat();
        assert!(V4.read_mut(&mut BytesMut::from(&frame[..]), frame.len()).is_ok(), "well formed");
        assert_eq!(publish_pkid(&frame), 0x0102, "after a two-byte remaining length");
    }

    #[test]
    fn a_publish_flood_is_cut() {
        let rules = Rules::new("alice", "pixel-8", 20);
        let topic = format!("{}/presence", topic_prefix("alice", "pixel-8"));
        let refused = (0..20 * BURST_SECONDS + 10).filter(|_| check(&rules, &publish(&topic, false)).is_err()).count();
        assert!(refused >= 10, "{refused}");
    }

    #[test]
    fn the_connect_names_the_device_and_wills_only_presence() {
        let rules = Rules::new("alice", "pixel-8", 20);
        let connect = |id: &str, will_topic: Option<&str>, retain: bool| {
            let connect = rumqttd::protocol::Connect { keep_alive: 60, client_id: id.into(), clean_session: true };
            let will = will_topic.map(|t| LastWill {
                topic: Bytes::copy_from_slice(t.as_bytes()),
                message: Bytes::from_static(b"{}"),
                qos: QoS::AtMostOnce,
                retain,
            });
            let login = Some(Login { username: id.into(), password: "t".into() });
            frame(Packet::Connect(connect, None, will, None, login))
        };
        let presence = format!("{}/presence", topic_prefix("alice", "pixel-8"));
        let check = |frame: Bytes| rules.connect(&super::connect(&frame)?);
        assert_eq!(check(connect("pixel-8", Some(&presence), false)), Ok(()));
        assert_eq!(check(connect("pixel-8", None, false)), Ok(()));
        assert_eq!(check(connect("pixel-8", Some(&presence), true)), Err(Violation::Retained));
        assert!(matches!(check(connect("pixel-8", Some("/elsewhere"), false)), Err(Violation::Topic(_))));
        assert!(matches!(check(connect("pixel-9", None, false)), Err(Violation::ClientId(_))));
        assert!(matches!(super::connect(&publish("/t/a", false)), Err(Violation::Unexpected(_))));
    }

    #[test]
    fn frames_are_cut_from_a_stream_and_oversized_ones_refused() {
        let one = publish("/t/a", false);
        let mut buf = BytesMut::from(&one[..one.len() - 1]);
        assert_eq!(next_frame(&mut buf), Ok(None));
        buf.extend_from_slice(&one[one.len() - 1..]);
        buf.extend_from_slice(&one[..2]);
        assert_eq!(next_frame(&mut buf), Ok(Some(one.clone())));
        assert_eq!(buf.len(), 2);
        let mut huge = BytesMut::from(&[0x30u8, 0xff, 0xff, 0x7f][..]);
        assert!(matches!(next_frame(&mut huge), Err(Violation::Malformed(_))));
    }
}
