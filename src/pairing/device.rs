//! The device a pairing creates: the phone's fields checked, and its MQTT
//! client certificate (its own request signed, or a key pair made here).

use super::{AcceptRequest, PairingError};
use crate::clock::Timestamp;
use crate::devices::{Device, DeviceState};
use crate::ids::{self, DeviceId, DisplayName, UserId};
use crate::pki::Ca;

/// The phone's MQTT certificate from `ca`: its CSR signed, or a new key
/// pair; (certificate, key if made here, public-key fingerprint).
pub(super) fn client_cert(
    ca: &Ca,
    req: &AcceptRequest,
    device: &str,
    tenant: &str,
) -> Result<(String, Option<String>, String), PairingError> {
    match &req.mqtt_csr {
        Some(csr) if csr.len() > 16 * 1024 => Err(PairingError::BadCsr),
        Some(csr) => {
            let (cert, fp) = ca.sign_client_csr(csr, device, tenant)?.ok_or(PairingError::BadCsr)?;
            Ok((cert, None, fp))
        }
        None => {
            let (pair, fp) = ca.issue_client(device, tenant)?;
            Ok((pair.chain_pem, Some(pair.key_pem), fp))
        }
    }
}

/// The device an accept asks for, its fields checked (user and token are
/// filled in by the accept); it waits for approval when the policy says so.
pub(super) fn from_request(req: &AcceptRequest, now: Timestamp, approval: bool) -> Result<Device, PairingError> {
    let status = if approval { DeviceState::PendingApproval } else { DeviceState::Active };
    Ok(Device {
        device_id: DeviceId::parse(&req.device_id)?,
        user_id: UserId::parse("pending")?,
        user_name: DisplayName::parse("user_name", "pending")?,
        device_name: DisplayName::parse("device_name", &req.device_name)?,
        device_type: ids::short_text("device_type", &req.device_type)?,
        os_version: ids::short_text("os_version", &req.os_version)?,
        app_version: ids::short_text("app_version", &req.app_version)?,
        status,
        paired_at: now,
        last_seen_at: Some(now),
        suspended_at: None,
        revoked_at: None,
        fingerprint: String::new(),
        token_jti: String::new(),
        token_expires_at: now,
        inbox_floor: None,
    })
}
