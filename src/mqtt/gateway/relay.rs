//! One phone connection's two directions once it is let in: the broker's
//! packets to the phone as they come (read by the `subscribed` tracker),
//! the phone's packets to the broker once each has passed its rules; and
//! the short linger that lets a phone read why it is being cut off.

use super::inspect::{next_frame, Rules, Violation};
use super::subscribed::Tracker;
use super::{Phone, Upstream, SPLICE_BUFFER};
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Passes the broker's packets to the phone as they come (noting the SUBACK
/// that puts its notification subscription in force) and the phone's
/// packets to the broker once each has passed the rules; ends when either
/// side closes or a packet breaks a rule.
pub(super) async fn relay(phone: Phone, broker: Upstream, rules: &Rules, tracker: &Tracker) -> Result<(), Violation> {
    let (mut phone_in, mut phone_out) = tokio::io::split(phone);
    let (mut broker_in, mut broker_out) = tokio::io::split(broker);
    let down = async {
        let mut buf = BytesMut::with_capacity(SPLICE_BUFFER);
        let outcome = loop {
            match broker_in.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break Ok(false),
                Ok(_) => {}
            }
            let passed = match tracker.broker_sent(&buf) {
                Ok(passed) => passed,
                Err(v) => break Err(v),
            };
            if passed.whole == 0 {
                continue;
            }
            let packets = buf.split_to(passed.whole);
            if phone_out.write_all(&packets).await.is_err() || phone_out.flush().await.is_err() {
                break Ok(false);
            }
            if passed.last {
                break Ok(true);
            }
        };
        let _ = phone_out.shutdown().await;
        outcome
    };
    let up = async {
        let mut buf = BytesMut::with_capacity(SPLICE_BUFFER);
        let outcome = loop {
            match phone_in.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break Ok(()),
                Ok(_) => {}
            }
            if let Err(v) = forward_frames(&mut buf, rules, tracker, &mut broker_out).await {
                break Err(v);
            }
        };
        let _ = broker_out.shutdown().await;
        outcome
    };
    tokio::pin!(down, up);
    tokio::select! {
        // Told why it is being cut off: the phone gets a moment to read it
        // and close its side, so the socket ends with a FIN, not a reset
        // that would throw away what it has not read yet.
        d = &mut down => match d {
            Ok(true) => tokio::time::timeout(LINGER, &mut up).await.unwrap_or(Ok(())),
            other => other.map(|_| ()),
        },
        u = &mut up => u,
        _ = tracker.control_acknowledged() => Ok(()),
    }
}

/// How long a connection closed after a `control` message waits for the
/// phone to close its side.
const LINGER: Duration = Duration::from_secs(2);

/// Checks and forwards every whole packet in `buf`.
async fn forward_frames<W: tokio::io::AsyncWrite + Unpin>(
    buf: &mut BytesMut,
    rules: &Rules,
    tracker: &Tracker,
    broker: &mut W,
) -> Result<(), Violation> {
    while let Some(frame) = next_frame(buf)? {
        tracker.phone_sent(rules.check(&frame)?).await;
        if broker.write_all(&frame).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}
