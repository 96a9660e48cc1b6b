//! One phone connection's two directions once it is let in: the router's
//! packets to the phone as they come over the connection's link (noted by
//! the `subscribed` tracker), the phone's packets to the router once each
//! has passed its rules; the phone's keep-alive; and the short linger that
//! lets a phone read why it is being cut off.

use super::inspect::{decode, encode, next_frame, publish_pkid, Rules, Violation};
use super::link::pass_on;
use super::subscribed::Tracker;
use super::Phone;
use bytes::BytesMut;
use futures_util::FutureExt;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::Packet;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a connection closed after a `control` message waits for the
/// phone to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// The most of the router's packets written to the phone at once.
const BATCH_BYTES: usize = 16 * 1024;

/// What a phone's read buffer starts at; it grows for larger packets and is
/// let go once they are passed on, so an idle phone holds this little.
const READ_START: usize = 512;

/// How a relay ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// The phone said goodbye (DISCONNECT): its will is not published.
    Goodbye,
    /// Any other way: the phone's will, if any, is published.
    Dropped,
}

/// Passes the router's packets to the phone as they come (noting the
/// SUBACK that puts its notification subscription in force) and the
/// phone's packets to the router once each has passed the rules; ends when
/// either side closes, the phone is silent past its keep-alive, or a packet
/// breaks a rule.
pub(super) async fn relay(
    phone: Phone,
    (tx, rx): (&mut LinkTx, &mut LinkRx),
    rules: &Rules,
    tracker: &Tracker,
    keep_alive: Duration,
) -> Result<Ended, Violation> {
    let (mut phone_in, mut phone_out) = tokio::io::split(phone);
    let to_phone = async {
        let outcome = to_phone(rx, tracker, &mut phone_out).await;
        let _ = phone_out.shutdown().await;
        outcome
    };
    let from_phone = from_phone(&mut phone_in, tx, rules, tracker, keep_alive);
    tokio::pin!(to_phone, from_phone);
    tokio::select! {
        // Told why it is being cut off: the phone gets a moment to read it
        // and close its side, so the socket ends with a FIN, not a reset
        // that would throw away what it has not read yet.
        d = &mut to_phone => match d {
            Ok(true) => tokio::time::timeout(LINGER, &mut from_phone).await.unwrap_or(Ok(Ended::Dropped)),
            Ok(false) => Ok(Ended::Dropped),
            Err(v) => Err(v),
        },
        u = &mut from_phone => u,
        _ = tracker.control_acknowledged() => Ok(Ended::Dropped),
    }
}

/// The router's packets to the phone; `Ok(true)` when the last one told it
/// why it is being cut off.
async fn to_phone<W: tokio::io::AsyncWrite + Unpin>(
    rx: &mut LinkRx,
    tracker: &Tracker,
    phone: &mut W,
) -> Result<bool, Violation> {
    loop {
        let Ok(first) = rx.next().await else { return Ok(false) };
        // A fresh buffer per batch: an idle connection holds none.
        let mut buf = BytesMut::new();
        let batch = take_batch(rx, first, tracker, &mut buf)?;
        if batch.reschedule && rx.wake().await.is_err() {
            return Ok(false);
        }
        if !buf.is_empty() && (phone.write_all(&buf).await.is_err() || phone.flush().await.is_err()) {
            return Ok(false);
        }
        if batch.last || batch.ended {
            return Ok(batch.last);
        }
    }
}

/// What one batch of the router's packets held besides the packets.
#[derive(Default)]
struct Batch {
    /// The router ended the connection.
    ended: bool,
    /// The router asked to be told when the connection is ready again.
    reschedule: bool,
    /// The batch ends with the message telling a closing connection why.
    last: bool,
}

/// Encodes `first` and whatever else the link holds already (up to
/// [`BATCH_BYTES`], and no further than the last message of a closing
/// connection) into `buf`, each packet noted by the tracker.
fn take_batch(
    rx: &mut LinkRx,
    first: Option<rumqttd::Notification>,
    tracker: &Tracker,
    buf: &mut BytesMut,
) -> Result<Batch, Violation> {
    let mut batch = Batch::default();
    let mut next = first;
    while let Some(notification) = next.take() {
        match Option::<Packet>::from(notification) {
            // MQTT 3.1.1 has no DISCONNECT from the server: the router
            // ending the connection closes it.
            Some(Packet::Disconnect(..)) => {
                batch.ended = true;
                break;
            }
            Some(packet) => {
                let control = tracker.broker_sends(&packet);
                let start = buf.len();
                encode(packet, buf)?;
                if control && tracker.control_written(publish_pkid(&buf[start..])) {
                    batch.last = true;
                    break;
                }
            }
            None => batch.reschedule = true,
        }
        if buf.len() >= BATCH_BYTES {
            break;
        }
        next = rx.next().now_or_never().and_then(Result::ok).flatten();
    }
    Ok(batch)
}

/// The phone's packets to the router, each checked; ends at the phone's
/// DISCONNECT, its end of the stream, or its silence past 1.5 × its
/// keep-alive (MQTT 3.1.1 §3.1.2.10).
async fn from_phone<R: tokio::io::AsyncRead + Unpin>(
    phone: &mut R,
    tx: &mut LinkTx,
    rules: &Rules,
    tracker: &Tracker,
    keep_alive: Duration,
) -> Result<Ended, Violation> {
    let mut buf = BytesMut::with_capacity(READ_START);
    loop {
        if buf.is_empty() && buf.capacity() > READ_START {
            buf = BytesMut::with_capacity(READ_START);
        }
        match tokio::time::timeout(keep_alive * 3 / 2, phone.read_buf(&mut buf)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return Ok(Ended::Dropped),
            Ok(Ok(_)) => {}
        }
        if let Some(ended) = forward_frames(&mut buf, rules, tracker, tx).await? {
            return Ok(ended);
        }
    }
}

/// Checks every whole packet in `buf` and passes them on together; how
/// the connection ended, if it did.
async fn forward_frames(
    buf: &mut BytesMut,
    rules: &Rules,
    tracker: &Tracker,
    tx: &mut LinkTx,
) -> Result<Option<Ended>, Violation> {
    let (mut packets, mut ended) = (Vec::new(), None);
    while let Some(frame) = next_frame(buf)? {
        let packet = decode(&frame)?;
        tracker.phone_sent(rules.check(&packet)?).await;
        let goodbye = matches!(packet, Packet::Disconnect(..));
        packets.push(packet);
        if goodbye {
            ended = Some(Ended::Goodbye);
            break;
        }
    }
    if !pass_on(tx, packets).await {
        return Ok(Some(Ended::Dropped));
    }
    Ok(ended)
}
