//! `POST /phone/notify`'s request and its checks: title and body lengths,
//! no control characters, a priority of 1 to 5, a known or plain
//! lower_snake_case kind, an http(s) link; the message it describes.

use super::error::MessagingError;
use super::wire;
use crate::clock::Timestamp;
use serde::Deserialize;

/// `POST /phone/notify`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NotifyRequest {
    /// Every active phone of this user…
    #[serde(default)]
    pub user_id: Option<String>,
    /// …or this one phone.
    #[serde(default)]
    pub device_id: Option<String>,
    /// Headline (1–200 characters).
    pub title: String,
    /// Text (up to 4,000 characters).
    #[serde(default)]
    pub body: String,
    /// 1–5 (default 3).
    #[serde(default, deserialize_with = "wire::whole_number")]
    pub priority: Option<u64>,
    /// `build_started`, `build_success`, `build_failure`, `test_results`, …
    #[serde(default)]
    pub kind: Option<String>,
    /// An http(s) link to open.
    #[serde(default)]
    pub link: Option<String>,
}

const KINDS: [&str; 6] = ["build_started", "build_success", "build_failure", "test_results", "deploy", "info"];

fn check_text(field: &'static str, value: &str, max: usize, required: bool) -> Result<String, MessagingError> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(MessagingError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(MessagingError::invalid(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(MessagingError::invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

fn check_kind(kind: Option<&str>) -> Result<String, MessagingError> {
    let kind = kind.unwrap_or("info");
    let plain = !kind.is_empty() && kind.len() <= 32 && kind.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    if KINDS.contains(&kind) || plain {
        Ok(kind.to_owned())
    } else {
        Err(MessagingError::invalid("kind", format!("use one of {KINDS:?} or another lower_snake_case word")))
    }
}

fn check_link(link: Option<&str>) -> Result<Option<String>, MessagingError> {
    let Some(link) = link else { return Ok(None) };
    match url::Url::parse(link) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && link.len() <= 2048 => Ok(Some(link.to_owned())),
        _ => Err(MessagingError::invalid("link", "must be an http or https URL of at most 2,048 characters")),
    }
}

impl NotifyRequest {
    /// The message this request describes (id and time to be filled).
    pub(super) fn message(&self, now: Timestamp) -> Result<wire::Notification, MessagingError> {
        let priority = match self.priority.unwrap_or(3) {
            p @ 1..=5 => p as u8,
            _ => return Err(MessagingError::invalid("priority", "must be 1 to 5")),
        };
        Ok(wire::Notification {
            id: String::new(),
            time: now,
            title: check_text("title", &self.title, 200, true)?,
            body: check_text("body", &self.body, 4000, false)?,
            priority,
            kind: check_kind(self.kind.as_deref())?,
            link: check_link(self.link.as_deref())?,
            device: None,
        })
    }
}
