//! One approval: the request that asks for it, its states, the action it
//! may carry, its 2-digit number-matching code among three choices, and the
//! rule of answering it inside a store transaction (`apply`): the right
//! phone, still pending, the right code. The first wrong number rejects it
//! (reason `wrong_number`), so trying the choices in turn never approves.
//! An approval asked for by a phone's own command is a plain confirm (no
//! code, no choices): the requester is the approving phone, so there is no
//! number to carry from one to the other.

use crate::clock::Timestamp;
use crate::devices::Device;
use crate::messaging::error::MessagingError;
use crate::messaging::wire::{self, Outbound};
use crate::store::{Table, TxAbort};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
/// `POST /phone/approvals`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApprovalRequest {
    /// Whose phones are asked.
    pub user_id: String,
    /// Headline (1–200 characters).
    pub title: String,
    /// What is to be approved (up to 4,000 characters).
    #[serde(default)]
    pub detail: String,
    /// Seconds until it expires (10 to 86,400; default 300).
    #[serde(default, deserialize_with = "crate::messaging::wire::whole_number")]
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
pub(crate) enum Status {
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
    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) struct Planned {
    /// The command (voice_command id) that asked for it.
    pub command_id: String,
    /// The action.
    pub action: String,
    /// Its parameters.
    pub params: BTreeMap<String, String>,
}

/// A stored approval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Approval {
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
    /// Wrong codes so far (the first one rejects).
    #[serde(default)]
    pub wrong_codes: u8,
    /// Why it was rejected: `declined` (a phone said no) or `wrong_number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
pub(crate) struct Answer {
    /// `approve` or `reject`.
    pub decision: String,
    /// The number the requester showed (not needed to reject, nor for a
    /// plain confirm).
    #[serde(default)]
    pub code: String,
}

pub(super) fn code_and_choices() -> (String, Vec<String>) {
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
    pub(crate) fn effective_status(&self, now: Timestamp) -> Status {
        if self.status == Status::Pending && now >= self.expires_at {
            Status::Expired
        } else {
            self.status
        }
    }

    /// Whether the phone must match a number (false: a plain confirm).
    pub(crate) fn matches_number(&self) -> bool {
        !self.code.is_empty()
    }

    /// Whether `device` may answer.
    pub(super) fn may_answer(&self, device: &Device) -> bool {
        device.user_id.as_str() == self.user_id
            && (self.approvers.is_empty() || self.approvers.iter().any(|a| a == device.device_id.as_str()))
    }

    pub(super) fn message(&self) -> Outbound {
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
pub(super) enum Applied {
    /// Approved or rejected by this answer.
    Decided(Approval),
    /// A wrong code (the approval may now be rejected).
    Wrong(Approval),
}

pub(super) fn load(tx: &crate::store::Tx<'_>, id: &str) -> Result<Approval, TxAbort<MessagingError>> {
    tx.get(Table::Approvals, id)?.ok_or(TxAbort::Domain(MessagingError::ApprovalNotFound))
}

pub(super) fn save(tx: &crate::store::Tx<'_>, approval: &Approval) -> Result<(), TxAbort<MessagingError>> {
    super::pending::file(tx, approval)?;
    tx.put(Table::Approvals, &approval.id, approval)
}

/// Checks a request's fields; the timeout.
pub(super) fn check(request: &ApprovalRequest) -> Result<Duration, MessagingError> {
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

pub(super) fn apply(
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
    (approval.decided_by, approval.decided_at) = (by, Some(now));
    if !approve {
        (approval.status, approval.reason) = (Status::Rejected, Some("declined".into()));
        save(tx, &approval)?;
        return Ok(Applied::Decided(approval));
    }
    let matched = bool::from(subtle::ConstantTimeEq::ct_eq(code.as_bytes(), approval.code.as_bytes()));
    if approval.matches_number() && !matched {
        approval.wrong_codes = approval.wrong_codes.saturating_add(1);
        (approval.status, approval.reason) = (Status::Rejected, Some("wrong_number".into()));
        save(tx, &approval)?;
        return Ok(Applied::Wrong(approval));
    }
    approval.status = Status::Approved;
    save(tx, &approval)?;
    Ok(Applied::Decided(approval))
}
