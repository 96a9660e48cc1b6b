//! Phone messaging, the part of the appliance behind the broker: it owns
//! who receives what (recipients of notifications and approvals), the
//! phone → appliance messages arriving on the broker link (presence,
//! approval answers, voice commands), the `control` messages that tell a
//! phone it was suspended or revoked before its connection is closed, and
//! the periodic expiry and pruning. The parts live in the submodules.

pub(crate) mod alerts;
pub(crate) mod approvals;
pub(crate) mod commands;
pub(crate) mod delivery;
pub(crate) mod error;
pub(crate) mod escalation;
pub(crate) mod inbound;
pub(crate) mod notifications;
mod notify_request;
pub(crate) mod pushed;
pub(crate) mod receipts;
pub mod wire;

pub use error::MessagingError;

use crate::clock::{self, Clock};
use crate::devices::{Device, DeviceError, DeviceState, Devices};
use crate::ids::{DeviceId, UserId};
use crate::mqtt::broker::Received;
use approvals::{Answer, Approval, ApprovalRequest, Approvals};
use commands::Commands;
use delivery::Delivery;
use escalation::{Escalation, Item};
use notifications::{Notifications, Notified, NotifyRequest};
use receipts::{Receipt, Receipts};
use wire::{ControlAction, Inbound, Outbound};

/// How close to its expiry a token gets a refresh hint.
const REFRESH_HINT_BEFORE: chrono::TimeDelta = chrono::TimeDelta::days(3);

/// The messaging service (cheap to clone).
#[derive(Clone)]
pub(crate) struct Messaging {
    /// Notifications.
    pub(crate) notifications: Notifications,
    /// Approvals.
    pub(crate) approvals: Approvals,
    /// Commands.
    pub(crate) commands: Commands,
    /// The sender.
    pub(crate) delivery: Delivery,
    /// How far each item got on each device.
    pub(crate) receipts: Receipts,
    /// Texts what goes unseen.
    pub(crate) escalation: Escalation,
    /// The paired devices (recipients).
    pub(crate) devices: Devices,
    /// The clock.
    pub(crate) clock: Clock,
}

/// A notification as the requester sees it: where it went and how far it
/// got on each device.
#[derive(serde::Serialize)]
pub(crate) struct Tracked<T: serde::Serialize> {
    /// The item.
    #[serde(flatten)]
    pub(crate) item: T,
    /// Its receipt on each device.
    pub(crate) receipts: Vec<Receipt>,
}

impl Messaging {
    /// Items `device` showed its person (`POST /phone/seen`, MQTT `seen`):
    /// its own notifications and the approvals that ask it count; any other
    /// id is left out. How many counted.
    pub(crate) async fn seen(&self, device: &Device, ids: &[String]) -> Result<usize, MessagingError> {
        if ids.len() > receipts::MAX_SEEN {
            return Err(MessagingError::invalid("ids", format!("at most {} at once", receipts::MAX_SEEN)));
        }
        let mut own = Vec::with_capacity(ids.len());
        for id in ids {
            let valid = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid {
                return Err(MessagingError::invalid("ids", "notification or approval ids"));
            }
            if self.notifications.holds(device, id)? || self.approvals.asks(device, id)? {
                own.push(id.clone());
            }
        }
        self.receipts.seen(device.device_id.as_str(), &own).await?;
        Ok(own.len())
    }

    /// A notification with its receipts.
    pub(crate) fn tracked_notification(&self, id: &str) -> Result<Tracked<notifications::Recent>, MessagingError> {
        self.track(self.notifications.get(id)?.ok_or(MessagingError::NotificationNotFound)?)
    }

    fn track(&self, recent: notifications::Recent) -> Result<Tracked<notifications::Recent>, MessagingError> {
        let id = recent.message.id.as_str();
        let acknowledged = |device: &str| self.notifications.acknowledged(device, id);
        let receipts = self.receipts.of(id, recent.message.time, &recent.recipients, acknowledged)?;
        Ok(Tracked { item: recent, receipts })
    }

    /// An approval with its receipts on the phones it asks.
    pub(crate) fn tracked_approval(&self, approval: Approval) -> Result<Tracked<Approval>, MessagingError> {
        let user = UserId::parse(&approval.user_id).map_err(|e| MessagingError::invalid("user_id", e.to_string()))?;
        let asked: Vec<String> = self
            .devices
            .list(Some(&user))?
            .into_iter()
            .filter(|d| approval.approvers.is_empty() || approval.approvers.iter().any(|a| a == d.device_id.as_str()))
            .filter(|d| d.paired_at <= approval.created_at)
            .map(|d| d.device_id.to_string())
            .collect();
        let receipts = self.receipts.of(&approval.id, approval.created_at, &asked, |_| false)?;
        Ok(Tracked { item: approval, receipts })
    }

    /// The newest `n` notifications with their receipts.
    pub(crate) fn recent_tracked(&self, n: usize) -> Result<Vec<Tracked<notifications::Recent>>, MessagingError> {
        self.notifications.recent(n)?.into_iter().map(|r| self.track(r)).collect()
    }

    /// The active devices of `user`, or the one named device.
    fn recipients(&self, user_id: Option<&str>, device_id: Option<&str>) -> Result<Vec<Device>, MessagingError> {
        let bad = |field, e: crate::ids::InvalidId| MessagingError::invalid(field, e.reason);
        match (user_id, device_id) {
            (_, Some(device)) => {
                DeviceId::parse(device).map_err(|e| bad("device_id", e))?;
                let found = self.devices.get(device)?;
                match found.status {
                    DeviceState::Active if user_id.is_none_or(|u| u == found.user_id.as_str()) => Ok(vec![found]),
                    DeviceState::Active => Err(DeviceError::NotFound(device.to_owned()).into()),
                    DeviceState::Suspended => Err(DeviceError::Suspended.into()),
                    DeviceState::PendingApproval => Err(DeviceError::PendingApproval.into()),
                    DeviceState::Revoked => Err(DeviceError::Revoked.into()),
                }
            }
            (Some(user), None) => {
                let user = UserId::parse(user).map_err(|e| bad("user_id", e))?;
                let active: Vec<Device> =
                    self.devices.list(Some(&user))?.into_iter().filter(|d| d.status == DeviceState::Active).collect();
                if active.is_empty() {
                    return Err(MessagingError::NoActiveDevices(user.to_string()));
                }
                Ok(active)
            }
            (None, None) => Err(MessagingError::invalid("user_id", "give user_id or device_id")),
        }
    }

    /// `POST /phone/notify`.
    pub(crate) async fn notify(&self, request: &NotifyRequest) -> Result<Notified, MessagingError> {
        let recipients = self.recipients(request.user_id.as_deref(), request.device_id.as_deref())?;
        let notified = self.notifications.notify(request, &recipients).await?;
        if request.priority == Some(5) {
            self.escalation.watch(Item::Notification(notified.id.clone()), self.clock.now()).await;
        }
        Ok(notified)
    }

    /// `POST /phone/approvals`.
    pub(crate) async fn request_approval(
        &self,
        actor: &crate::audit::Actor,
        request: &ApprovalRequest,
    ) -> Result<Approval, MessagingError> {
        let mut recipients = self.recipients(Some(&request.user_id), None)?;
        if !request.approvers.is_empty() {
            recipients.retain(|d| request.approvers.iter().any(|a| a == d.device_id.as_str()));
            if recipients.len() != request.approvers.len() {
                return Err(MessagingError::invalid("approvers", "every approver must be an active phone of the user"));
            }
        }
        let approval = self.approvals.create(actor, request, &recipients, None).await?;
        self.escalation.watch(Item::Approval(approval.id.clone()), approval.created_at).await;
        Ok(approval)
    }

    /// A phone's answer to an approval (MQTT or HTTP).
    pub(crate) async fn answer(&self, device: &Device, id: &str, answer: &Answer) -> Result<Approval, MessagingError> {
        match self.approvals.answer(device, id, answer).await {
            Ok(approval) => {
                self.after_decision(&approval).await;
                Ok(approval)
            }
            Err(MessagingError::WrongCode) => {
                if let Ok(approval) = self.approvals.get(id) {
                    if approval.status == approvals::Status::Rejected {
                        self.after_decision(&approval).await;
                    }
                }
                Err(MessagingError::WrongCode)
            }
            Err(e) => Err(e),
        }
    }

    async fn after_decision(&self, approval: &Approval) {
        let Some(planned) = &approval.planned else { return };
        let Some(device_id) = approval.approvers.first() else { return };
        if let Ok(device) = self.devices.get(device_id) {
            self.commands.on_decision(&device, planned, approval.status).await;
        }
    }

    /// A phone came online (or went offline): last seen, and what it missed.
    pub(crate) async fn presence(
        &self,
        device: &Device,
        online: bool,
        since: Option<&str>,
    ) -> Result<usize, MessagingError> {
        self.devices.seen(device.device_id.as_str());
        if !online {
            return Ok(0);
        }
        let replayed = self.notifications.replay(device, since).await?;
        self.approvals.resend(device).await?;
        if device.token_expires_at - self.clock.now() < REFRESH_HINT_BEFORE {
            let detail = "Your token expires soon: call POST /phone/token/refresh.";
            self.control(device, ControlAction::TokenRefresh, detail).await;
        }
        Ok(replayed)
    }

    /// Sends a `control` message; for suspend and revoke, then closes the
    /// device's MQTT connections (a revoked device's push subscriptions go
    /// once the message is on its way).
    pub(crate) async fn control(&self, device: &Device, action: ControlAction, detail: &str) {
        let message = Outbound::Control(wire::Control {
            id: uuid::Uuid::new_v4().simple().to_string(),
            time: self.clock.now(),
            action,
            detail: detail.to_owned(),
        });
        let (user, device) = (device.user_id.as_str(), device.device_id.as_str());
        match action {
            ControlAction::TokenRefresh => _ = self.delivery.send_live(user, device, &message).await,
            ControlAction::Suspended => self.delivery.send_then_cut_off(user, device, &message).await,
            ControlAction::Revoked => {
                self.delivery.send_then_cut_off(user, device, &message).await;
                self.delivery.push().forget(device).await;
            }
        }
    }

    /// Handles one message a phone published.
    pub(crate) async fn received(&self, message: Received) {
        let Some(origin) = wire::parse_topic(&message.topic) else {
            tracing::debug!(topic = %message.topic, "ignored a message on an unexpected topic");
            return;
        };
        self.delivery.metrics().message(true, origin.kind.as_str());
        let device = match self.devices.get(&origin.device_id) {
            Ok(d) if d.status == DeviceState::Active && d.user_id.as_str() == origin.user_id => d,
            _ => return,
        };
        let outcome = match wire::parse_inbound(origin.kind, &message.payload) {
            Ok(Inbound::Presence(p)) => {
                self.presence(&device, p.state == "online", p.since.as_deref()).await.map(|_| ())
            }
            Ok(Inbound::ApprovalResponse(r)) => {
                let answer = Answer { decision: r.decision, code: r.code };
                self.answer(&device, &r.approval_id, &answer).await.map(|_| ())
            }
            Ok(Inbound::Seen(seen)) => self.seen(&device, &seen.ids).await.map(|_| ()),
            Ok(Inbound::VoiceCommand(c)) => match self.commands.handle(&device, &c.id, &c.text).await {
                Err(e @ (MessagingError::RateLimited(_) | MessagingError::QueueFull(_))) => {
                    self.commands.refuse(&device, &c.id, &e).await;
                    Err(e)
                }
                other => other.map(|_| ()),
            },
            Err(e) => {
                tracing::info!(device = %device.device_id, error = %e, "a phone's message was not understood");
                Ok(())
            }
        };
        if let Err(e) = outcome {
            tracing::info!(device = %device.device_id, kind = origin.kind.as_str(), error = %e, "a phone's message was refused");
        }
    }

    /// Expires overdue approvals (telling waiting commands) and prunes
    /// notifications, decided approvals and commands older than `retention`.
    pub(crate) async fn sweep(&self, retention: std::time::Duration) -> Result<(), MessagingError> {
        for approval in self.approvals.expire_overdue().await? {
            self.after_decision(&approval).await;
        }
        let cutoff = self.clock.now() - clock::span(retention);
        self.notifications.prune(cutoff)?;
        self.approvals.prune(cutoff)?;
        self.commands.prune(cutoff)?;
        self.receipts.prune(cutoff)?;
        Ok(())
    }
}
