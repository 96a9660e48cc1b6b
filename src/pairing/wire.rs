//! The JSON shapes of the pairing routes, as the original design had them.

use super::InviteStatus;
use crate::clock::Timestamp;
use serde::{Deserialize, Serialize};

/// `POST /phone/pairing/send-sms`.
#[derive(Debug, Deserialize)]
pub(crate) struct SendSmsRequest {
    /// The phone's number, international form.
    pub phone_number: String,
    /// The IDE user.
    pub user_id: String,
    /// The user's name, shown on the phone.
    pub user_name: String,
}

/// The answer to send-sms and resend-sms.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SendSmsResponse {
    /// The one-time code.
    pub invite_code: String,
    /// The number, masked.
    pub phone_number: String,
    /// When the link stops working.
    pub expires_at: Timestamp,
    /// `pending`.
    pub status: InviteStatus,
    /// A sentence for the IDE.
    pub message: String,
}

/// `POST /phone/pairing/generate-qr`.
#[derive(Debug, Deserialize)]
pub(crate) struct QrRequest {
    /// The IDE user.
    pub user_id: String,
    /// The user's name (defaults to the id).
    pub user_name: Option<String>,
}

/// The answer to generate-qr.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct QrResponse {
    /// The one-time QR token.
    pub invite_code: String,
    /// The link inside the QR code.
    pub pairing_url: String,
    /// When the token stops working.
    pub expires_at: Timestamp,
    /// The QR code as SVG.
    pub qr_svg: String,
    /// The QR code as PNG, base64.
    pub qr_png_base64: String,
    /// The OTP to show beside the QR (only when required and not embedded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
}

/// `POST /phone/pairing/accept-invite`.
#[derive(Debug, Deserialize)]
pub(crate) struct AcceptRequest {
    /// The invite code or QR token.
    pub invite_code: String,
    /// The phone's id.
    pub device_id: String,
    /// The phone's name.
    pub device_name: String,
    /// `ios`, `android`, `web`, …
    pub device_type: String,
    /// OS version.
    pub os_version: String,
    /// App version.
    pub app_version: String,
    /// The OTP, for QR pairings that need one.
    pub otp: Option<String>,
    /// A PEM certificate request for the phone's MQTT key; when given, the
    /// appliance signs it and returns no private key.
    #[serde(default)]
    pub mqtt_csr: Option<String>,
}

/// The answer to accept-invite.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AcceptResponse {
    /// The new device's id.
    pub device_id: String,
    /// `active`, or `pending_approval` where new phones need an admin's
    /// approval (the token then shows only `GET /phone/me`).
    pub status: crate::devices::DeviceState,
    /// Its token.
    pub jwt_token: String,
    /// The token's expiry.
    pub expires_at: Timestamp,
    /// Where the phone's MQTT client connects (host:port).
    pub mqtt_broker: String,
    /// The user it was paired for.
    pub user_id: String,
    /// The phone's MQTT client certificate (PEM; CN = device id, O = tenant).
    pub mqtt_client_cert: String,
    /// Its private key (PEM); absent when the phone sent a CSR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt_client_key: Option<String>,
    /// The CA that signed the broker's certificate (PEM).
    pub mqtt_ca_cert: String,
    /// The phone's topic prefix.
    pub mqtt_topic_prefix: String,
}

/// `GET /phone/pairing/invite/{code}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InviteView {
    /// The code asked about.
    pub invite_code: String,
    /// Its status.
    pub status: InviteStatus,
    /// Its expiry.
    pub expires_at: Timestamp,
    /// Whether it has expired.
    pub is_expired: bool,
    /// Whether it can still be accepted.
    pub is_valid: bool,
}

/// What the pairing page shows before the phone accepts.
#[derive(Debug, Clone)]
pub(crate) struct PagePreview {
    /// The user's name.
    pub user_name: String,
    /// The invite's status.
    pub status: InviteStatus,
    /// Whether an OTP must be typed.
    pub needs_otp: bool,
}
