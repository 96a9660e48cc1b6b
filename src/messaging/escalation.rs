//! Escalation: an approval request, or a priority-5 notification, that no
//! phone of its user has seen within `--escalate-after` is texted to the
//! numbers those phones were paired with, through the configured SMS
//! provider: the kind and title and a link to the item in the app, never
//! the approval's number or the notification's body. An approval is texted
//! once; a priority-5 notification again every `--escalate-repeat` until it
//! is seen (Pushover's emergency priority), at most `max_per_item` times,
//! and a user gets at most `max_per_user_hour` texts an hour. Every text is
//! audited and counted.
//!
//! Where several nodes share the store, the node leading the background
//! work escalates: the others tell it of the items they make, a node that
//! takes the lead picks up what is waiting from the store, and each text is
//! claimed in the store before it is sent, so a change of leader never
//! texts twice.

use super::approvals::{Approvals, Status};
use super::notifications::Notifications;
use super::receipts::Receipts;
use super::MessagingError;
use crate::audit::{Actor, AuditLog, Event};
use crate::clock::{span, Clock, Timestamp};
pub(crate) use crate::cluster::relay::Item;
use crate::cluster::{Cluster, Relay};
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
pub(crate) struct EscalationConfig {
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
pub(crate) struct Parts {
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
    /// Whether this node escalates (it leads), and how to tell the one
    /// that does.
    pub cluster: Cluster,
}

/// What the store says of texting an item now.
enum Claim {
    /// Texted now (counted before sending).
    Granted,
    /// Texted as often as it may be, or it does not repeat.
    Done,
    /// Texted by another node lately: not before then.
    NotYet(Timestamp),
    /// The user's texts this hour are spent.
    OverBudget,
}

/// Escalation (cheap to clone).
#[derive(Clone)]
pub(crate) struct Escalation {
    parts: Arc<Parts>,
    /// Items by when they are next due.
    due: Arc<Mutex<BTreeSet<(Timestamp, Item)>>>,
}

impl Escalation {
    /// Escalation from its parts.
    pub(crate) fn new(parts: Parts) -> Escalation {
        Escalation { parts: Arc::new(parts), due: Arc::default() }
    }

    /// Whether escalation is on.
    pub(crate) fn on(&self) -> bool {
        !self.parts.config.after.is_zero()
    }

    /// Watches `item`, made at `at`: it escalates `after` that if unseen
    /// (here when this node leads, otherwise on the node that does).
    pub(crate) async fn watch(&self, item: Item, at: Timestamp) {
        if !self.on() {
            return;
        }
        if self.parts.cluster.leading() {
            self.watch_here(item, at);
        } else {
            self.parts.cluster.tell(Relay::Watch { item, at }).await;
        }
    }

    /// Watches `item` on this node, when it leads (another node made it).
    pub(crate) fn watch_here(&self, item: Item, at: Timestamp) {
        if self.on() && self.parts.cluster.leading() {
            let due = at + span(self.parts.config.after);
            self.lock_due().insert((due, item));
        }
    }

    fn lock_due(&self) -> std::sync::MutexGuard<'_, BTreeSet<(Timestamp, Item)>> {
        self.due.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watches again what is waiting in the store, when this node leads (it
    /// may have missed what other nodes told it).
    pub(crate) fn pick_up(&self) -> Result<(), MessagingError> {
        match self.on() && self.parts.cluster.leading() {
            true => self.resume(),
            false => Ok(()),
        }
    }

    /// Watches what is waiting in the store (after a start, or when this
    /// node takes the lead): pending approvals and recent priority-5
    /// notifications.
    fn resume(&self) -> Result<(), MessagingError> {
        let now = self.parts.clock.now();
        for approval in self.parts.approvals.recent(1000)? {
            if approval.effective_status(now) == Status::Pending {
                self.watch_here(Item::Approval(approval.id), approval.created_at);
            }
        }
        for recent in self.parts.notifications.recent(1000)? {
            if recent.message.priority == 5 {
                self.watch_here(Item::Notification(recent.message.id), recent.message.time);
            }
        }
        Ok(())
    }

    /// Texts what is due, once a second while this node leads, until
    /// `stop` turns true.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        if !self.on() {
            return;
        }
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        let mut leading = false;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            if !self.parts.cluster.leading() {
                if std::mem::take(&mut leading) {
                    self.lock_due().clear();
                }
                continue;
            }
            if !std::mem::replace(&mut leading, true) {
                if let Err(e) = self.resume() {
                    tracing::error!(error = %e, "could not pick up the items waiting to escalate");
                }
            }
            for item in self.take_due() {
                match self.escalate(&item).await {
                    Ok(Some(next)) => _ = self.lock_due().insert((next, item)),
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, ?item, "escalation failed"),
                }
            }
        }
    }

    fn take_due(&self) -> Vec<Item> {
        let now = self.parts.clock.now();
        let mut due = self.lock_due();
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
        let now = self.parts.clock.now();
        let next = subject.repeats.then(|| now + span(self.parts.config.repeat));
        let numbers = self.numbers(&subject.devices)?;
        if numbers.is_empty() {
            self.parts.metrics.escalation("no_number");
            return Ok(None);
        }
        match self.claim(&subject, now).await? {
            Claim::Granted => {}
            Claim::Done => return Ok(None),
            Claim::NotYet(at) => return Ok(Some(at)),
            Claim::OverBudget => {
                self.parts.metrics.escalation("over_budget");
                return Ok(next);
            }
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
        Ok(next)
    }

    /// Claims a text of `subject` now, within its own budget and its
    /// user's for this hour, in one transaction (so that two nodes never
    /// both send it).
    async fn claim(&self, subject: &Subject, now: Timestamp) -> Result<Claim, MessagingError> {
        let config = self.parts.config;
        let hour = format!("hour/{}/{}", subject.user, now.timestamp() / 3600);
        let claim = self.parts.store.commit::<_, MessagingError>(|tx| {
            let texted: Texted = tx.get(Table::Escalations, &subject.id)?.unwrap_or_default();
            if texted.count >= config.max_per_item || (!subject.repeats && texted.count > 0) {
                return Ok(Claim::Done);
            }
            if let Some(again) = texted.last_at.map(|last| last + span(config.repeat)).filter(|at| *at > now) {
                return Ok(Claim::NotYet(again));
            }
            let used: u32 = tx.get(Table::Escalations, &hour)?.unwrap_or(0);
            if used >= config.max_per_user_hour {
                return Ok(Claim::OverBudget);
            }
            tx.put(Table::Escalations, &hour, &(used + 1))?;
            tx.put(Table::Escalations, &subject.id, &Texted { count: texted.count + 1, last_at: Some(now) })?;
            Ok(Claim::Granted)
        });
        Ok(claim.await?)
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
}
