//! The approval service: approvals created (stored, then sent to the user's
//! phones or the named approvers), answered exactly once (MQTT or HTTP,
//! whichever commits first; the rule is `record::apply`), expired by
//! time, listed and pruned. Waiters (long polls) are woken on a decision; a
//! requester's webhook is called with the outcome; every outcome is audited.

pub(crate) mod pending;
mod record;

pub(crate) use record::{Answer, Approval, ApprovalRequest, Planned, Status};

use crate::audit::{Actor, AuditLog, Event};
use crate::clock::{self, Clock, Timestamp};
use crate::devices::Device;
use crate::error::Coded;
use crate::messaging::delivery::Delivery;
use crate::messaging::error::MessagingError;
use crate::store::{Store, Table, TxAbort};
use record::{apply, check, code_and_choices, load, save, Applied};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;

const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The approval service (cheap to clone).
#[derive(Clone)]
pub(crate) struct Approvals {
    store: Store,
    delivery: Delivery,
    audit: AuditLog,
    decided: broadcast::Sender<String>,
    http: reqwest::Client,
    /// Webhook calls run here, so shutdown waits for them.
    tasks: TaskTracker,
    clock: Clock,
}

impl Approvals {
    /// A service over `store`.
    pub(crate) fn new(
        store: Store,
        delivery: Delivery,
        audit: AuditLog,
        tasks: TaskTracker,
        clock: Clock,
    ) -> Approvals {
        let http = reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build().unwrap_or_default();
        Approvals { store, delivery, audit, decided: broadcast::channel(1024).0, http, tasks, clock }
    }

    /// Creates an approval for `recipients` (stored before it is sent).
    pub(crate) async fn create(
        &self,
        actor: &Actor,
        request: &ApprovalRequest,
        recipients: &[Device],
        planned: Option<Planned>,
    ) -> Result<Approval, MessagingError> {
        let timeout = check(request)?;
        // A phone's own command asks that phone: a plain confirm.
        let (code, choices) = if planned.is_some() { (String::new(), Vec::new()) } else { code_and_choices() };
        let now = self.clock.now();
        let approval = Approval {
            id: format!("a{:016x}", self.store.next_id()?),
            user_id: request.user_id.clone(),
            title: request.title.trim().to_owned(),
            detail: request.detail.clone(),
            code,
            choices,
            status: Status::Pending,
            created_at: now,
            expires_at: now + clock::span(timeout),
            approvers: recipients.iter().map(|d| d.device_id.to_string()).collect(),
            decided_by: None,
            decided_at: None,
            wrong_codes: 0,
            reason: None,
            webhook_url: request.webhook_url.clone(),
            planned,
        };
        self.store.commit(|tx| save(tx, &approval)).await?;
        self.audit.record(Event::new(actor, "approval.request", &approval.id, "ok")).await;
        for d in recipients {
            self.delivery.send(d.user_id.as_str(), d.device_id.as_str(), &approval.message()).await;
        }
        Ok(approval)
    }

    /// Wakes every waiter to look at the clock again (the test clock moved,
    /// which may have expired what they wait on).
    #[cfg(feature = "dev-license-key")]
    pub(crate) fn time_moved(&self) {
        let _ = self.decided.send(String::new());
    }

    /// Wakes whoever waits on approval `id` (another node decided it).
    pub(crate) fn decided_elsewhere(&self, id: &str) {
        let _ = self.decided.send(id.to_owned());
    }

    /// An approval by id.
    pub(crate) fn get(&self, id: &str) -> Result<Approval, MessagingError> {
        let mut approval: Approval = self.store.get(Table::Approvals, id)?.ok_or(MessagingError::ApprovalNotFound)?;
        approval.status = approval.effective_status(self.clock.now());
        Ok(approval)
    }

    /// An approval, waiting up to `wait` while it is pending.
    pub(crate) async fn wait(&self, id: &str, wait: Duration) -> Result<Approval, MessagingError> {
        let mut decided = self.decided.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let approval = self.get(id)?;
            let until = deadline.min(
                tokio::time::Instant::now() + (approval.expires_at - self.clock.now()).to_std().unwrap_or_default(),
            );
            if approval.status != Status::Pending || tokio::time::Instant::now() >= deadline {
                return Ok(approval);
            }
            match tokio::time::timeout_at(until, decided.recv()).await {
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => return self.get(id),
            }
        }
    }

    /// The newest `n` approvals, newest first.
    pub(crate) fn recent(&self, n: usize) -> Result<Vec<Approval>, MessagingError> {
        let now = self.clock.now();
        let mut approvals: Vec<Approval> = self.store.last(Table::Approvals, n)?;
        approvals.iter_mut().for_each(|a| a.status = a.effective_status(now));
        Ok(approvals)
    }

    /// Pending approvals `device` may answer.
    pub(crate) fn pending_for(&self, device: &Device) -> Result<Vec<Approval>, MessagingError> {
        let now = self.clock.now();
        let approvals = self.load_all(pending::of(&self.store, device.user_id.as_str())?)?;
        Ok(approvals
            .into_iter()
            .filter(|a| a.effective_status(now) == Status::Pending && a.may_answer(device))
            .collect())
    }

    /// The approvals `ids` that are still kept.
    fn load_all(&self, ids: Vec<String>) -> Result<Vec<Approval>, MessagingError> {
        let mut approvals = Vec::with_capacity(ids.len());
        for id in ids {
            approvals.extend(self.store.get::<Approval>(Table::Approvals, &id)?);
        }
        Ok(approvals)
    }

    /// Whether approval `id` asks `device`.
    pub(crate) fn asks(&self, device: &Device, id: &str) -> Result<bool, MessagingError> {
        match self.get(id) {
            Ok(approval) => Ok(approval.may_answer(device) && device.paired_at <= approval.created_at),
            Err(MessagingError::ApprovalNotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sends `device` the approvals still waiting for it (after a reconnect).
    pub(crate) async fn resend(&self, device: &Device) -> Result<(), MessagingError> {
        for approval in self.pending_for(device)? {
            self.delivery.send_live(device.user_id.as_str(), device.device_id.as_str(), &approval.message()).await;
        }
        Ok(())
    }

    /// Applies a phone's answer: exactly one answer decides.
    pub(crate) async fn answer(&self, device: &Device, id: &str, answer: &Answer) -> Result<Approval, MessagingError> {
        let approve = match answer.decision.as_str() {
            "approve" => true,
            "reject" => false,
            _ => return Err(MessagingError::invalid("decision", "must be approve or reject")),
        };
        let now = self.clock.now();
        let applied = self.store.commit(|tx| apply(tx, id, device, approve, &answer.code, now)).await;
        let actor = Actor::Device(device.device_id.to_string());
        match applied {
            Ok(Applied::Decided(approval)) => {
                self.finish(&actor, &approval).await;
                Ok(approval)
            }
            Ok(Applied::Wrong(approval)) => {
                self.audit.record(Event::new(&actor, "approval.answer", id, "approval_code_mismatch")).await;
                self.finish(&actor, &approval).await;
                Err(MessagingError::WrongCode)
            }
            Err(e) => {
                let e = MessagingError::from(e);
                self.audit.record(Event::new(&actor, "approval.answer", id, e.code())).await;
                Err(e)
            }
        }
    }

    /// Marks overdue approvals expired; the ones it marked.
    pub(crate) async fn expire_overdue(&self) -> Result<Vec<Approval>, MessagingError> {
        let now = self.clock.now();
        let approvals = self.load_all(pending::all(&self.store)?)?;
        let mut expired = Vec::new();
        for overdue in
            approvals.into_iter().filter(|a| a.status == Status::Pending && a.effective_status(now) == Status::Expired)
        {
            let id = overdue.id;
            let marked = self
                .store
                .commit(|tx| {
                    let mut approval = load(tx, &id)?;
                    if approval.status != Status::Pending {
                        return Err(TxAbort::Domain(MessagingError::AlreadyDecided(approval.status.as_str())));
                    }
                    approval.status = Status::Expired;
                    approval.decided_at = Some(now);
                    save(tx, &approval)?;
                    Ok(approval)
                })
                .await;
            if let Ok(approval) = marked {
                self.finish(&Actor::System, &approval).await;
                expired.push(approval);
            }
        }
        Ok(expired)
    }

    /// Removes decided approvals created before `cutoff`; how many.
    pub(crate) fn prune(&self, cutoff: Timestamp) -> Result<usize, MessagingError> {
        let approvals: Vec<Approval> = self.store.scan(Table::Approvals)?;
        let old: Vec<&Approval> =
            approvals.iter().filter(|a| a.status != Status::Pending && a.created_at < cutoff).collect();
        self.store
            .commit_unflushed(|tx| old.iter().try_for_each(|a| tx.remove::<MessagingError>(Table::Approvals, &a.id)))
            .map_err(MessagingError::from)?;
        Ok(old.len())
    }

    /// After a decision: audit, wake waiters, call the webhook.
    async fn finish(&self, actor: &Actor, approval: &Approval) {
        let action = format!("approval.{}", approval.status.as_str());
        let outcome = approval.reason.as_deref().unwrap_or("ok");
        self.audit.record(Event::new(actor, &action, &approval.id, outcome)).await;
        let _ = self.decided.send(approval.id.clone());
        self.delivery.cluster().tell(crate::cluster::Relay::Decided { id: approval.id.clone() }).await;
        if let Some(url) = approval.webhook_url.clone() {
            let body = serde_json::json!({
                "id": approval.id,
                "status": approval.status,
                "decided_by": approval.decided_by,
                "decided_at": approval.decided_at,
                "reason": approval.reason,
                "title": approval.title,
            });
            let http = self.http.clone();
            self.tasks.spawn(async move {
                match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::warn!(status = r.status().as_u16(), "the approval webhook refused the outcome"),
                    Err(e) => tracing::warn!(error = %e, "could not call the approval webhook"),
                }
            });
        }
    }
}
