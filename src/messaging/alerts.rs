//! Alerts about phones themselves: when a phone is paired to a user who
//! already has active phones, each of those is told (`new_device`, with a
//! one-tap "This wasn't me" that revokes the new one); admins' own phones
//! are told of a phone that waits for their approval (`device_pending`)
//! and of one a user disowned (`device_disowned`).

use super::wire::{AboutDevice, ControlAction, Notification};
use super::{Messaging, MessagingError};
use crate::audit::Actor;
use crate::devices::{Change, Device, DeviceState};
use crate::ids::UserId;

/// The kind of the alert a user's other phones get.
pub(crate) const NEW_DEVICE: &str = "new_device";

/// Most of a user's phones read to find the ones to tell of a new one: a
/// person has a handful; an account with thousands (a test rig, a shared
/// kiosk account) must not make every pairing read them all.
const PHONES_READ: usize = 100;

/// What an alert says about `device`.
fn about(device: &Device, from: Option<String>) -> AboutDevice {
    AboutDevice {
        device_id: device.device_id.to_string(),
        user_id: device.user_id.to_string(),
        device_name: device.device_name.to_string(),
        device_type: device.device_type.clone(),
        paired_at: device.paired_at,
        from,
    }
}

impl Messaging {
    /// A phone was paired (from address `from`; the user had `unrevoked`
    /// other phones not revoked, as its seat counted them): the user's other
    /// active phones (among the first [`PHONES_READ`]) get a `new_device`
    /// alert, and where it waits for approval the admins' phones are told.
    /// Failures are logged: the pairing stands.
    pub(crate) async fn paired(&self, device: &Device, unrevoked: u32, from: Option<String>, admins: &[UserId]) {
        let about = about(device, from);
        let others = match unrevoked {
            // A user's first phone: no other to read.
            0 => Vec::new(),
            _ => match self.devices.some_active(&device.user_id, Some(&device.device_id), PHONES_READ) {
                Ok(others) => others,
                Err(e) => return tracing::warn!(error = %e, "could not list a user's phones to tell them of a new one"),
            },
        };
        if !others.is_empty() {
            let title = format!("New phone paired: {}", device.device_name);
            let body = format!(
                "A {} phone named “{}” was paired to your account{}. If this wasn't you, tap “This wasn't me”.",
                device.device_type,
                device.device_name,
                about.from.as_deref().map(|a| format!(" from {a}")).unwrap_or_default()
            );
            self.alert(&others, NEW_DEVICE, title, body, &about).await;
        }
        if device.status == DeviceState::PendingApproval {
            let title = format!("Phone waiting for approval: {}", device.device_name);
            let body =
                format!("{} paired “{}”; approve or reject it in the console.", device.user_id, device.device_name);
            self.tell_admins(admins, "device_pending", title, body, &about).await;
        }
    }

    /// "This wasn't me" from `reporter` on its `new_device` alert `id`: the
    /// phone the alert is about is revoked (told so, its connections
    /// closed) and the admins' phones are told. The revoked phone.
    pub(crate) async fn disown(
        &self,
        reporter: &Device,
        id: &str,
        admins: &[UserId],
    ) -> Result<Device, MessagingError> {
        if !self.notifications.holds(reporter, id)? {
            return Err(MessagingError::NotificationNotFound);
        }
        let message = self.notifications.get(id)?.ok_or(MessagingError::NotificationNotFound)?.message;
        let about = match message.device {
            Some(about) if message.kind == NEW_DEVICE && about.user_id == reporter.user_id.as_str() => about,
            _ => return Err(MessagingError::invalid("id", "only a new_device alert can be answered “This wasn't me”")),
        };
        let current = self.devices.get(&about.device_id)?;
        if current.paired_at != about.paired_at || current.user_id != reporter.user_id {
            return Err(MessagingError::PairingEnded);
        }
        let actor = Actor::Device(reporter.device_id.to_string());
        let revoked = self.devices.change(&actor, &about.device_id, Change::Disown).await?;
        let detail = "Another phone of this account said this pairing was not theirs; it has been revoked.";
        self.control(&revoked, ControlAction::Revoked, detail).await;
        let title = format!("Phone disowned: {}", about.device_name);
        let body = format!(
            "{} said “This wasn't me” about “{}”, paired to them at {}; it has been revoked.",
            about.user_id, about.device_name, about.paired_at
        );
        self.tell_admins(admins, "device_disowned", title, body, &about).await;
        Ok(revoked)
    }

    /// Sends each admin's active phones (among their first [`PHONES_READ`])
    /// an alert.
    async fn tell_admins(&self, admins: &[UserId], kind: &str, title: String, body: String, about: &AboutDevice) {
        for admin in admins {
            let phones = match self.devices.some_active(admin, None, PHONES_READ) {
                Ok(phones) => phones,
                Err(e) => return tracing::warn!(error = %e, "could not list an admin's phones"),
            };
            if !phones.is_empty() {
                self.alert(&phones, kind, title.clone(), body.clone(), about).await;
            }
        }
    }

    /// Stores and sends one alert to `phones` (all of one user).
    async fn alert(&self, phones: &[Device], kind: &str, title: String, body: String, about: &AboutDevice) {
        let message = Notification {
            id: String::new(),
            time: self.clock.now(),
            title,
            body,
            priority: 4,
            kind: kind.to_owned(),
            link: None,
            device: Some(about.clone()),
        };
        if let Err(e) = self.notifications.send(message, phones).await {
            tracing::warn!(kind, error = %e, "an alert about a phone was not stored");
        }
    }
}
