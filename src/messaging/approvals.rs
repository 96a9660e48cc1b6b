//! Approval requests: created with a 2-digit number-matching code shown to
//! the requester, sent to the user's phones (or the named approvers),
//! answered exactly once (MQTT or HTTP, whichever commits first, in one
//! store transaction), refused on a wrong code (three wrong codes reject
//! it), expired by time. Waiters (long polls) are woken on a decision; a
//! requester's webhook is called with the outcome; every outcome is audited.

use super::delivery::Delivery;
use super::error::MessagingError;
use super::wire::{self, Outbound};
use crate::audit::{Actor, AuditLog, Event};
use crate::clock::{self, Timestamp};
use crate::devices::Device;
use crate::store::{Store, Table, TxAbort};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::broadcast;

/// `POST /phone/approvals`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// Whose phones are asked.
    pub user_id: String,
    /// Headline (1–200 characters).
    pub title: String,
    /// What is to be approved (up to 4,000 characters).
    #[serde(default)]
    pub detail: String,
    /// Seconds until it expires (10 to 86,400; default 300).
    #[serde(default, deserialize_with = "super::wire::whole_number")]
    pub timeout_s: Option<u64>,
    /// Only these devices may answer (default: any active phone of the user).
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Called with the outcome (POST, JSON).
    #[serde(default)]
    pub webhook_url: Option<String>,
}

/// An approval's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for an answer.
    Pending,
    /// Approved.
    Approved,
    /// Rejected (or too many wrong codes).
    Rejected,
    /// Nobody answered in time.
    Expired,
}

impl Status {
    /// The state's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
        }
    }
}

/// An action a phone asked for that waits for this approval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Planned {
    /// The command (voice_command id) that asked for it.
    pub command_id: String,
    /// The action.
    pub action: String,
    /// Its parameters.
    pub params: BTreeMap<String, String>,
}

/// A stored approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    /// Its id.
    pub id: String,
    /// Whose phones are asked.
    pub user_id: String,
    /// Headline.
    pub title: String,
    /// Detail.
    pub detail: String,
    /// The number shown to the requester.
    pub code: String,
    /// The numbers the phone may pick from.
    pub choices: Vec<String>,
    /// Its state.
    pub status: Status,
    /// When it was asked.
    pub created_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
    /// Who may answer (empty: any active phone of the user).
    pub approvers: Vec<String>,
    /// The device that decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// Wrong codes so far.
    #[serde(default)]
    pub wrong_codes: u8,
    /// Called with the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// The action run when approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<Planned>,
}

/// A phone's answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// `approve` or `reject`.
    pub decision: String,
    /// The number the requester showed.
    pub code: String,
}

const MAX_WRONG_CODES: u8 = 3;
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

fn code_and_choices() -> (String, Vec<String>) {
    let mut rng = rand::thread_rng();
    let mut choices: Vec<String> = Vec::new();
    while choices.len() < 3 {
        let n = format!("{:02}", rng.gen_range(10..100));
        if !choices.contains(&n) {
            choices.push(n);
        }
    }
    (choices[rng.gen_range(0..3)].clone(), choices)
}

impl Approval {
    /// The state, counting a pending approval past its time as expired.
    pub fn effective_status(&self, now: Timestamp) -> Status {
        if self.status == Status::Pending && now >= self.expires_at {
            Status::Expired
        } else {
            self.status
        }
    }

    /// Whether `device` may answer.
    fn may_answer(&self, device: &Device) -> bool {
        device.user_id.as_str() == self.user_id
            && (self.approvers.is_empty() || self.approvers.iter().any(|a| a == device.device_id.as_str()))
    }

    fn message(&self) -> Outbound {
        Outbound::ApprovalRequest(wire::ApprovalRequest {
            id: self.id.clone(),
            time: self.created_at,
            title: self.title.clone(),
            detail: self.detail.clone(),
            choices: self.choices.clone(),
            expires_at: self.expires_at,
        })
    }
}

/// What an answer did.
enum Applied {
    Decided(Approval),
    Wrong(Approval),
}

/// The approval service (cheap to clone).
#[derive(Clone)]
pub struct Approvals {
    store: Store,
    delivery: Delivery,
    audit: AuditLog,
    decided: broadcast::Sender<String>,
    http: reqwest::Client,
}

fn load(tx: &crate::store::Tx<'_>, id: &str) -> Result<Approval, TxAbort<MessagingError>> {
    tx.get(Table::Approvals, id)?.ok_or(TxAbort::Domain(MessagingError::ApprovalNotFound))
}

fn save(tx: &crate::store::Tx<'_>, approval: &Approval) -> Result<(), TxAbort<MessagingError>> {
    tx.put(Table::Approvals, &approval.id, approval)
}

/// Checks a request's fields; the timeout.
fn check(request: &ApprovalRequest) -> Result<Duration, MessagingError> {
    let timeout = request.timeout_s.unwrap_or(300);
    if !(10..=86_400).contains(&timeout) {
        return Err(MessagingError::invalid("timeout_s", "must be 10 to 86400 seconds"));
    }
    if request.title.trim().is_empty() || request.title.chars().count() > 200 {
        return Err(MessagingError::invalid("title", "must be 1 to 200 characters"));
    }
    if request.detail.chars().count() > 4000 {
        return Err(MessagingError::invalid("detail", "must be at most 4000 characters"));
    }
    if let Some(url) = &request.webhook_url {
        if !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            return Err(MessagingError::invalid("webhook_url", "must be an http or https URL"));
        }
    }
    Ok(Duration::from_secs(timeout))
}

impl Approvals {
    /// A service over `store`.
    pub fn new(store: Store, delivery: Delivery, audit: AuditLog) -> Approvals {
        let http = reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build().unwrap_or_default();
        Approvals { store, delivery, audit, decided: broadcast::channel(1024).0, http }
    }

    /// Creates an approval for `recipients` (stored before it is sent).
    pub async fn create(
        &self,
        actor: &Actor,
        request: &ApprovalRequest,
        recipients: &[Device],
        planned: Option<Planned>,
    ) -> Result<Approval, MessagingError> {
        let timeout = check(request)?;
        let (code, choices) = code_and_choices();
        let now = clock::now();
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

    /// An approval by id.
    pub fn get(&self, id: &str) -> Result<Approval, MessagingError> {
        let mut approval: Approval = self.store.get(Table::Approvals, id)?.ok_or(MessagingError::ApprovalNotFound)?;
        approval.status = approval.effective_status(clock::now());
        Ok(approval)
    }

    /// An approval, waiting up to `wait` while it is pending.
    pub async fn wait(&self, id: &str, wait: Duration) -> Result<Approval, MessagingError> {
        let mut decided = self.decided.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let approval = self.get(id)?;
            let until = deadline
                .min(tokio::time::Instant::now() + (approval.expires_at - clock::now()).to_std().unwrap_or_default());
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
    pub fn recent(&self, n: usize) -> Result<Vec<Approval>, MessagingError> {
        let now = clock::now();
        let mut approvals: Vec<Approval> = self.store.last(Table::Approvals, n)?;
        approvals.iter_mut().for_each(|a| a.status = a.effective_status(now));
        Ok(approvals)
    }

    /// Pending approvals `device` may answer.
    pub fn pending_for(&self, device: &Device) -> Result<Vec<Approval>, MessagingError> {
        let now = clock::now();
        let approvals: Vec<Approval> = self.store.scan(Table::Approvals)?;
        Ok(approvals
            .into_iter()
            .filter(|a| a.effective_status(now) == Status::Pending && a.may_answer(device))
            .collect())
    }

    /// Sends `device` the approvals still waiting for it (after a reconnect).
    pub async fn resend(&self, device: &Device) -> Result<(), MessagingError> {
        for approval in self.pending_for(device)? {
            self.delivery.send(device.user_id.as_str(), device.device_id.as_str(), &approval.message()).await;
        }
        Ok(())
    }

    /// Applies a phone's answer: exactly one answer decides.
    pub async fn answer(&self, device: &Device, id: &str, answer: &Answer) -> Result<Approval, MessagingError> {
        let approve = match answer.decision.as_str() {
            "approve" => true,
            "reject" => false,
            _ => return Err(MessagingError::invalid("decision", "must be approve or reject")),
        };
        let now = clock::now();
        let applied = self.store.commit(|tx| apply(tx, id, device, approve, &answer.code, now)).await;
        let actor = Actor::Device(device.device_id.to_string());
        match applied {
            Ok(Applied::Decided(approval)) => {
                self.finish(&actor, &approval).await;
                Ok(approval)
            }
            Ok(Applied::Wrong(approval)) => {
                self.audit.record(Event::new(&actor, "approval.answer", id, "approval_code_mismatch")).await;
                if approval.status == Status::Rejected {
                    self.finish(&crate::audit::Actor::System, &approval).await;
                }
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
    pub async fn expire_overdue(&self) -> Result<Vec<Approval>, MessagingError> {
        let now = clock::now();
        let approvals: Vec<Approval> = self.store.scan(Table::Approvals)?;
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
    pub fn prune(&self, cutoff: Timestamp) -> Result<usize, MessagingError> {
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
        self.audit.record(Event::new(actor, &action, &approval.id, "ok")).await;
        let _ = self.decided.send(approval.id.clone());
        if let Some(url) = approval.webhook_url.clone() {
            let body = serde_json::json!({
                "id": approval.id,
                "status": approval.status,
                "decided_by": approval.decided_by,
                "decided_at": approval.decided_at,
                "title": approval.title,
            });
            let http = self.http.clone();
            tokio::spawn(async move {
                match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::warn!(status = r.status().as_u16(), "the approval webhook refused the outcome"),
                    Err(e) => tracing::warn!(error = %e, "could not call the approval webhook"),
                }
            });
        }
    }
}

fn apply(
    tx: &crate::store::Tx<'_>,
    id: &str,
    device: &Device,
    approve: bool,
    code: &str,
    now: Timestamp,
) -> Result<Applied, TxAbort<MessagingError>> {
    let mut approval = load(tx, id)?;
    if approval.user_id != device.user_id.as_str() {
        return Err(TxAbort::Domain(MessagingError::ApprovalNotFound));
    }
    if !approval.may_answer(device) {
        return Err(TxAbort::Domain(MessagingError::NotApprover));
    }
    match approval.effective_status(now) {
        Status::Pending => {}
        Status::Expired => return Err(TxAbort::Domain(MessagingError::ApprovalExpired)),
        decided => return Err(TxAbort::Domain(MessagingError::AlreadyDecided(decided.as_str()))),
    }
    let by = Some(device.device_id.to_string());
    if !bool::from(subtle::ConstantTimeEq::ct_eq(code.as_bytes(), approval.code.as_bytes())) {
        approval.wrong_codes += 1;
        if approval.wrong_codes >= MAX_WRONG_CODES {
            (approval.status, approval.decided_by, approval.decided_at) = (Status::Rejected, by, Some(now));
        }
        save(tx, &approval)?;
        return Ok(Applied::Wrong(approval));
    }
    approval.status = if approve { Status::Approved } else { Status::Rejected };
    (approval.decided_by, approval.decided_at) = (by, Some(now));
    save(tx, &approval)?;
    Ok(Applied::Decided(approval))
}
