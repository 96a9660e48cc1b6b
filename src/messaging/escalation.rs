//! Escalation: an approval request, or a priority-5 notification, that no
//! phone of its user has seen within `--escalate-after` is texted to the
//! numbers those phones were paired with, through the configured SMS
//! provider: the kind and title and a link to the item in the app, never
//! the approval's number or the notification's body. An approval is texted
//! once; a priority-5 notification again every `--escalate-repeat` until it
//! is seen (Pushover's emergency priority), at most `max_per_item` times,
//! and a user gets at most `max_per_user_hour` texts an hour. Every text is
//! audited and counted.

use super::approvals::{Approvals, Status};
use super::notifications::Notifications;
use super::receipts::Receipts;
use super::MessagingError;
use crate::audit::{Actor, AuditLog, Event};
use crate::clock::{span, Clock, Timestamp};
use crate::devices::{DeviceState, Devices};
use crate::ids::UserId;
use crate::metrics::Metrics;
use crate::sms::number::PhoneNumber;
use crate::sms::templates::Templates;
use crate::sms::Sms;
use crate::store::{Store, Table};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The operator's escalation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscalationConfig {
    /// Unseen this long: texted (zero: off).
    pub after: Duration,
    /// A priority-5 notification is texted again this often.
    pub repeat: Duration,
    /// Most texts for one item.
    pub max_per_item: u32,
    /// Most texts to one user in an hour.
    pub max_per_user_hour: u32,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            after: Duration::from_secs(120),
            repeat: Duration::from_secs(300),
            max_per_item: 3,
            max_per_user_hour: 10,
        }
    }
}

/// An item that may escalate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Item {
    /// An approval request, by id.
    Approval(String),
    /// A priority-5 notification, by id.
    Notification(String),
}

/// Texts sent for one item, kept in the store.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Texted {
    count: u32,
    last_at: Option<Timestamp>,
}

/// What one item is, as an escalation needs it.
struct Subject {
    id: String,
    user: String,
    kind: &'static str,
    title: String,
    devices: Vec<String>,
    link: String,
    repeats: bool,
}

/// What escalation needs.
pub struct Parts {
    /// Settings.
    pub config: EscalationConfig,
    /// The store (texts sent, numbers).
    pub store: Store,
    /// Approvals.
    pub approvals: Approvals,
    /// Notifications.
    pub notifications: Notifications,
    /// Who saw what.
    pub receipts: Receipts,
    /// The user's phones.
    pub devices: Devices,
    /// The SMS provider.
    pub sms: Arc<dyn Sms>,
    /// The texts.
    pub templates: Arc<Templates>,
    /// The audit log.
    pub audit: AuditLog,
    /// Counts texts.
    pub metrics: Metrics,
    /// The clock.
    pub clock: Clock,
    /// Base URL of links into the app.
    pub base_url: String,
}

/// Escalation (cheap to clone).
#[derive(Clone)]
pub struct Escalation {
    parts: Arc<Parts>,
    /// Items by when they are next due.
    due: Arc<Mutex<BTreeSet<(Timestamp, Item)>>>,
}

impl Escalation {
    /// Escalation from its parts.
    pub fn new(parts: Parts) -> Escalation {
        Escalation { parts: Arc::new(parts), due: Arc::default() }
    }

    /// Whether escalation is on.
    pub fn on(&self) -> bool {
        !self.parts.config.after.is_zero()
    }

    /// Watches `item`, made at `at`: it escalates `after` that if unseen.
    pub fn watch(&self, item: Item, at: Timestamp) {
        if self.on() {
            let due = at + span(self.parts.config.after);
            self.due.lock().unwrap_or_else(|p| p.into_inner()).insert((due, item));
        }
    }

    /// Watches again what was waiting before a restart: pending approvals
    /// and recent priority-5 notifications.
    pub fn resume(&self) -> Result<(), MessagingError> {
        if !self.on() {
            return Ok(());
        }
        let now = self.parts.clock.now();
        for approval in self.parts.approvals.recent(1000)? {
            if approval.effective_status(now) == Status::Pending {
                self.watch(Item::Approval(approval.id), approval.created_at);
            }
        }
        for recent in self.parts.notifications.recent(1000)? {
            if recent.message.priority == 5 {
                self.watch(Item::Notification(recent.message.id), recent.message.time);
            }
        }
        Ok(())
    }

    /// Texts what is due, once a second, until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            for item in self.take_due() {
                match self.escalate(&item).await {
                    Ok(Some(next)) => _ = self.due.lock().unwrap_or_else(|p| p.into_inner()).insert((next, item)),
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, ?item, "escalation failed"),
                }
            }
        }
    }

    fn take_due(&self) -> Vec<Item> {
        let now = self.parts.clock.now();
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        let mut ready = Vec::new();
        while let Some(first) = due.first() {
            if first.0 > now {
                break;
            }
            if let Some((_, item)) = due.pop_first() {
                ready.push(item);
            }
        }
        ready
    }

    /// What `item` is, unless it no longer needs anyone.
    fn subject(&self, item: &Item) -> Result<Option<Subject>, MessagingError> {
        let base = self.parts.base_url.trim_end_matches('/');
        Ok(match item {
            Item::Approval(id) => {
                let approval = match self.parts.approvals.get(id) {
                    Ok(a) if a.status == Status::Pending => a,
                    Ok(_) | Err(MessagingError::ApprovalNotFound) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let devices = self.active_devices(&approval.user_id, |d| {
                    approval.approvers.is_empty() || approval.approvers.iter().any(|a| a == d)
                })?;
                Some(Subject {
                    link: format!("{base}/app#approval-{id}"),
                    id: id.clone(),
                    user: approval.user_id,
                    kind: "Approval",
                    title: approval.title,
                    devices,
                    repeats: false,
                })
            }
            Item::Notification(id) => {
                let Some(recent) = self.parts.notifications.get(id)? else { return Ok(None) };
                let devices = self.active_devices(&recent.user_id, |d| recent.recipients.iter().any(|r| r == d))?;
                Some(Subject {
                    link: format!("{base}/app#notification-{id}"),
                    id: id.clone(),
                    user: recent.user_id,
                    kind: "Urgent notification",
                    title: recent.message.title,
                    devices,
                    repeats: true,
                })
            }
        })
    }

    fn active_devices(&self, user: &str, asked: impl Fn(&str) -> bool) -> Result<Vec<String>, MessagingError> {
        let user = UserId::parse(user).map_err(|e| MessagingError::invalid("user_id", e.to_string()))?;
        Ok(self
            .parts
            .devices
            .list(Some(&user))?
            .into_iter()
            .filter(|d| d.status == DeviceState::Active && asked(d.device_id.as_str()))
            .map(|d| d.device_id.to_string())
            .collect())
    }

    /// Texts `item` if nobody saw it and its budgets allow; when it is due
    /// again.
    async fn escalate(&self, item: &Item) -> Result<Option<Timestamp>, MessagingError> {
        let Some(subject) = self.subject(item)? else { return Ok(None) };
        if self.parts.receipts.seen_by_any(&subject.id, &subject.devices)? {
            return Ok(None);
        }
        let config = self.parts.config;
        let texted: Texted = self.parts.store.get(Table::Escalations, &subject.id)?.unwrap_or_default();
        if texted.count >= config.max_per_item || (!subject.repeats && texted.count > 0) {
            return Ok(None);
        }
        let now = self.parts.clock.now();
        let next = subject.repeats.then(|| now + span(config.repeat));
        let numbers = self.numbers(&subject.devices)?;
        if numbers.is_empty() {
            self.parts.metrics.escalation("no_number");
            return Ok(None);
        }
        if !self.within_hourly_budget(&subject.user, now).await? {
            self.parts.metrics.escalation("over_budget");
            return Ok(next);
        }
        let text = self.parts.templates.escalation(&subject.user, subject.kind, &subject.title, &subject.link);
        for number in &numbers {
            let result = self.parts.sms.send(number, &text).await;
            if let Err(e) = &result {
                tracing::warn!(error = %e, to = %number, "escalation SMS failed");
            }
            let outcome = if result.is_ok() { "ok" } else { "sms_failed" };
            self.parts.metrics.escalation(if result.is_ok() { "sent" } else { "failed" });
            let event =
                Event::new(&Actor::System, "escalation.sms", format!("{} {}", subject.id, number.masked()), outcome);
            self.parts.audit.record(event).await;
        }
        let texted = Texted { count: texted.count + 1, last_at: Some(now) };
        self.parts.store.insert(Table::Escalations, &subject.id, &texted).await?;
        Ok(next)
    }

    /// The distinct numbers `devices` were paired with.
    fn numbers(&self, devices: &[String]) -> Result<Vec<PhoneNumber>, MessagingError> {
        let mut numbers: Vec<PhoneNumber> = Vec::new();
        for device in devices {
            if let Some(number) = crate::devices::numbers::of(&self.parts.store, device)? {
                if !numbers.iter().any(|n| n.e164() == number.e164()) {
                    numbers.push(number);
                }
            }
        }
        Ok(numbers)
    }

    /// Counts a text to `user` in this hour; false when the hour's budget
    /// is spent.
    async fn within_hourly_budget(&self, user: &str, now: Timestamp) -> Result<bool, MessagingError> {
        let key = format!("hour/{user}/{}", now.timestamp() / 3600);
        let used: u32 = self.parts.store.get(Table::Escalations, &key)?.unwrap_or(0);
        if used >= self.parts.config.max_per_user_hour {
            return Ok(false);
        }
        self.parts.store.insert(Table::Escalations, &key, &(used + 1)).await?;
        Ok(true)
    }
}
