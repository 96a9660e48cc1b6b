//! One command: its stored record (keyed by device and message id), the
//! checks of what a phone sent, the `command_result` answers built from it,
//! and the count of started runs. The service that handles commands is
//! `commands`.

use crate::actions::Action;
use crate::clock::Timestamp;
use crate::messaging::error::MessagingError;
use crate::messaging::wire::{self, CommandStatus};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A command as stored (and listed for the activity view).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CommandRecord {
    /// The phone's message id.
    pub id: String,
    /// The phone.
    pub device_id: String,
    /// Its user.
    pub user_id: String,
    /// What it said (at most 500 characters kept).
    pub text: String,
    /// When it arrived.
    pub received_at: Timestamp,
    /// The latest answer.
    pub result: wire::CommandResult,
}

const MAX_TEXT: usize = 500;

pub(super) fn key(device: &str, id: &str) -> String {
    format!("{device}/{id}")
}

pub(super) fn result(now: Timestamp, command_id: &str, status: CommandStatus, message: String) -> wire::CommandResult {
    wire::CommandResult {
        id: uuid::Uuid::new_v4().simple().to_string(),
        time: now,
        command_id: command_id.to_owned(),
        status,
        action: None,
        params: BTreeMap::new(),
        approval_id: None,
        exit_code: None,
        output_tail: None,
        message,
    }
}

/// Checks a phone's command id and text.
pub(super) fn check(id: &str, text: &str) -> Result<String, MessagingError> {
    if crate::ids::check_message_id("id", id).is_err() {
        return Err(MessagingError::invalid("id", "must be 1 to 64 letters, digits, '.', '_' or '-'"));
    }
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT {
        return Err(MessagingError::invalid("text", format!("must be 1 to {MAX_TEXT} characters")));
    }
    Ok(text.to_owned())
}

/// One started run, counted until it ends.
pub(super) struct Queued(pub(super) Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(super) fn describe(action: &Action, params: &BTreeMap<String, String>) -> String {
    if params.is_empty() {
        return action.name.clone();
    }
    let list: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{} ({})", action.name, list.join(", "))
}

pub(super) fn status_name(status: CommandStatus) -> &'static str {
    match status {
        CommandStatus::Unknown => "unknown",
        CommandStatus::NeedsParameter => "needs_parameter",
        CommandStatus::AwaitingApproval => "awaiting_approval",
        CommandStatus::Rejected => "rejected",
        CommandStatus::Started => "started",
        CommandStatus::Succeeded => "succeeded",
        CommandStatus::Failed => "failed",
        CommandStatus::TimedOut => "timed_out",
    }
}
