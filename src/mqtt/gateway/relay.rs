//! One phone connection's two directions once it is let in: the router's
//! packets to the phone as they come over the connection's link (read by
//! the `subscribed` tracker), the phone's packets to the router once each
//! has passed its rules; the phone's keep-alive; and the short linger that
//! lets a phone read why it is being cut off.

use super::inspect::{decode, encode, next_frame, Rules, Violation};
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
    let down = async {
        let outcome = down(rx, tracker, &mut phone_out).await;
        let _ = phone_out.shutdown().await;
        outcome
    };
    let up = up(&mut phone_in, tx, rules, tracker, keep_alive);
    tokio::pin!(down, up);
    tokio::select! {
        // Told why it is being cut off: the phone gets a moment to read it
        // and close its side, so the socket ends with a FIN, not a reset
        // that would throw away what it has not read yet.
        d = &mut down => match d {
            Ok(true) => tokio::time::timeout(LINGER, &mut up).await.unwrap_or(Ok(Ended::Dropped)),
            Ok(false) => Ok(Ended::Dropped),
            Err(v) => Err(v),
        },
        u = &mut up => u,
        _ = tracker.control_acknowledged() => Ok(Ended::Dropped),
    }
}

/// The router's packets to the phone; `Ok(true)` when the last one told it
/// why it is being cut off.
async fn down<W: tokio::io::AsyncWrite + Unpin>(
    rx: &mut LinkRx,
    tracker: &Tracker,
    phone: &mut W,
) -> Result<bool, Violation> {
    let mut buf = BytesMut::new();
    loop {
        let Ok(first) = rx.next().await else { return Ok(false) };
        let (ended, reschedule) = take_batch(rx, first, &mut buf)?;
        if reschedule && rx.wake().await.is_err() {
            return Ok(false);
        }
        let passed = tracker.broker_sent(&buf)?;
        if passed.whole == 0 && !ended {
            continue;
        }
        let packets = buf.split_to(passed.whole);
        if phone.write_all(&packets).await.is_err() || phone.flush().await.is_err() {
            return Ok(false);
        }
        if passed.last {
            return Ok(true);
        }
        if ended {
            return Ok(false);
        }
        if buf.is_empty() {
            // Let the idle connection's buffer go.
            buf = BytesMut::new();
        }
    }
}

/// Encodes `first` and whatever else the link holds already (up to
/// [`BATCH_BYTES`]) into `buf`: whether the router ended the connection, and
/// whether it asked to be told when the connection is ready again.
fn take_batch(
    rx: &mut LinkRx,
    first: Option<rumqttd::Notification>,
    buf: &mut BytesMut,
) -> Result<(bool, bool), Violation> {
    let (mut ended, mut reschedule) = (false, false);
    let mut next = first;
    while let Some(notification) = next.take() {
        match Option::<Packet>::from(notification) {
            // MQTT 3.1.1 has no DISCONNECT from the server: the router
            // ending the connection closes it.
            Some(Packet::Disconnect(..)) => {
                ended = true;
                break;
            }
            Some(packet) => encode(packet, buf)?,
            None => reschedule = true,
        }
        if buf.len() >= BATCH_BYTES {
            break;
        }
        next = rx.next().now_or_never().and_then(Result::ok).flatten();
    }
    Ok((ended, reschedule))
}

/// The phone's packets to the router, each checked; ends at the phone's
/// DISCONNECT, its end of the stream, or its silence past 1.5 × its
/// keep-alive (MQTT 3.1.1 §3.1.2.10).
async fn up<R: tokio::io::AsyncRead + Unpin>(
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

/// Hands `packets` to the router with one wake-up (the router takes all a
/// link holds at each, so one per packet would find the link gone after a
/// DISCONNECT); false when the router is gone.
pub(super) async fn pass_on(tx: &mut LinkTx, mut packets: Vec<Packet>) -> bool {
    let Some(last) = packets.pop() else { return true };
    tx.buffer().extend(packets);
    tx.send(last).await.is_ok()
}
