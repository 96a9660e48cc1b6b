//! The gateway's side of a phone's link to the broker's router: packets
//! handed over with one wake-up per batch, the CONNACK passed to the phone,
//! and the link's end when the phone left without saying goodbye (with its
//! will).

use super::inspect::{encode, Connect};
use super::Phone;
use bytes::BytesMut;
use rumqttd::local::LinkTx;
use rumqttd::protocol::{Disconnect, DisconnectReasonCode, Packet, Publish};
use tokio::io::AsyncWriteExt;

/// Hands `packets` to the router with one wake-up (the router takes all a
/// link holds at each, so one per packet would find the link gone after a
/// DISCONNECT); false when the router is gone.
pub(super) async fn pass_on(tx: &mut LinkTx, mut packets: Vec<Packet>) -> bool {
    let Some(last) = packets.pop() else { return true };
    tx.buffer().extend(packets);
    tx.send(last).await.is_ok()
}

/// Writes the router's CONNACK to the phone.
pub(super) async fn write_connack(phone: &mut Phone, notification: rumqttd::Notification) -> Result<(), String> {
    let mut out = BytesMut::with_capacity(8);
    if let Some(packet) = Option::<Packet>::from(notification) {
        encode(packet, &mut out).map_err(|e| e.to_string())?;
    }
    phone.write_all(&out).await.map_err(|e| e.to_string())?;
    phone.flush().await.map_err(|e| e.to_string())
}

/// Ends the link of a connection that went without the phone's DISCONNECT
/// (one that said goodbye passed its own to the router): its will
/// published first, as the broker would for a client of its own.
pub(super) async fn leave(tx: &mut LinkTx, connect: Connect) {
    if let Some(will) = connect.will {
        let _ = tx.send(Packet::Publish(Publish::new(will.topic, will.message, false), None)).await;
    }
    let goodbye = Disconnect { reason_code: DisconnectReasonCode::NormalDisconnection };
    let _ = tx.send(Packet::Disconnect(goodbye, None)).await;
}
