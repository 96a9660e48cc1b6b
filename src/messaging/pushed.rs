//! What a message to a phone looks like as a Web Push: its JSON (cut to
//! fit a push service's 4 KiB, marked `"truncated": true`, when a long
//! text would not fit; the app then reads the whole item from the API),
//! how long the push service keeps it, how urgent it is, and the topic
//! under which a newer message replaces an older one not yet delivered.

use super::wire::{CommandStatus, Outbound};
use crate::clock::Timestamp;
use crate::push::sender::{Message, Urgency};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Largest plaintext sent: the push services take 4,096 bytes of body,
/// less the `aes128gcm` header (86), delimiter (1) and tag (16), with room
/// to spare.
pub(crate) const MAX_PLAINTEXT: usize = 3_900;

/// The longest a push service keeps a message (4 weeks).
const MAX_TTL: Duration = Duration::from_secs(28 * 24 * 3600);

/// The fields cut, in order, when a message is too long.
const LONG_FIELDS: [&str; 4] = ["body", "output_tail", "detail", "message"];

/// `message` (its JSON `json`) as a push, at `now`; notifications are kept
/// for `retention`.
pub(crate) fn push_of(message: &Outbound, json: &str, now: Timestamp, retention: Duration) -> Message {
    let (ttl, urgency, topic) = match message {
        Outbound::Notification(n) => (retention, urgency_of(n.priority), None),
        Outbound::ApprovalRequest(a) => {
            ((a.expires_at - now).to_std().unwrap_or_default(), Urgency::High, Some(topic_of("approval", &a.id)))
        }
        Outbound::CommandResult(c) => (hours(1), result_urgency(c.status), Some(topic_of("command", &c.command_id))),
        Outbound::BuildStatus(b) => (hours(1), Urgency::Low, Some(topic_of("build", &b.action))),
        Outbound::Control(_) => (hours(24), Urgency::High, None),
    };
    let receipt = match message {
        Outbound::Notification(_) | Outbound::ApprovalRequest(_) => Some(message.id().to_owned()),
        _ => None,
    };
    Message { body: fitted(json).into_bytes().into(), ttl: ttl.min(MAX_TTL), urgency, topic, receipt }
}

fn hours(n: u64) -> Duration {
    Duration::from_secs(n * 3600)
}

/// Priority 5 wakes the phone; 1 and 2 may wait.
fn urgency_of(priority: u8) -> Urgency {
    match priority {
        5 => Urgency::High,
        1 | 2 => Urgency::Low,
        _ => Urgency::Normal,
    }
}

fn result_urgency(status: CommandStatus) -> Urgency {
    match status {
        CommandStatus::Started => Urgency::Low,
        _ => Urgency::Normal,
    }
}

/// A topic (at most 32 base64url characters, RFC 8030 §5.4) per item.
fn topic_of(kind: &str, id: &str) -> String {
    hex::encode(&Sha256::digest(format!("{kind}/{id}").as_bytes())[..16])
}

/// `json`, or a copy with its long texts cut until it fits.
fn fitted(json: &str) -> String {
    if json.len() <= MAX_PLAINTEXT {
        return json.to_owned();
    }
    let Ok(serde_json::Value::Object(mut object)) = serde_json::from_str::<serde_json::Value>(json) else {
        return json.to_owned();
    };
    object.insert("truncated".into(), true.into());
    for field in LONG_FIELDS {
        let size = serde_json::to_string(&object).map_or(0, |s| s.len());
        if size <= MAX_PLAINTEXT {
            break;
        }
        if let Some(serde_json::Value::String(text)) = object.get_mut(field) {
            let excess = size - MAX_PLAINTEXT;
            let keep = text.len().saturating_sub(excess + 16);
            let cut = (0..=keep).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            text.truncate(cut);
            text.push('…');
        }
    }
    serde_json::to_string(&object).unwrap_or_else(|_| json.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messaging::wire::{ApprovalRequest, Notification};

    fn note(priority: u8, body: String) -> Outbound {
        Outbound::Notification(Notification {
            id: "n1".into(),
            time: chrono::Utc::now(),
            title: "Build #42 failed".into(),
            body,
            priority,
            kind: "build_failure".into(),
            link: None,
            device: None,
        })
    }

    #[test]
    fn urgency_ttl_and_topic_follow_the_message() {
        let now = chrono::Utc::now();
        let retention = Duration::from_secs(30 * 24 * 3600);
        let urgent = push_of(&note(5, "x".into()), "{}", now, retention);
        assert_eq!((urgent.urgency, urgent.ttl, urgent.topic), (Urgency::High, MAX_TTL, None));
        assert_eq!(push_of(&note(1, "x".into()), "{}", now, retention).urgency, Urgency::Low);
        assert_eq!(push_of(&note(3, "x".into()), "{}", now, Duration::from_secs(60)).ttl, Duration::from_secs(60));
        let approval = Outbound::ApprovalRequest(ApprovalRequest {
            id: "a1".into(),
            time: now,
            title: "Deploy".into(),
            detail: String::new(),
            choices: vec![],
            expires_at: now + chrono::TimeDelta::seconds(90),
        });
        let pushed = push_of(&approval, "{}", now, retention);
        assert_eq!((pushed.urgency, pushed.ttl), (Urgency::High, Duration::from_secs(90)));
        assert!(pushed.topic.is_some_and(|t| t.len() <= 32));
    }

    #[test]
    fn a_long_body_is_cut_to_fit_and_marked() {
        let long = note(3, "é".repeat(3000));
        let json = serde_json::to_string(&long).unwrap();
        assert!(json.len() > MAX_PLAINTEXT);
        let pushed = push_of(&long, &json, chrono::Utc::now(), Duration::from_secs(60));
        assert!(pushed.body.len() <= MAX_PLAINTEXT, "{}", pushed.body.len());
        let value: serde_json::Value = serde_json::from_slice(&pushed.body).unwrap();
        assert_eq!(value["truncated"], true);
        assert_eq!(value["title"], "Build #42 failed");
        assert!(value["body"].as_str().unwrap().ends_with('…'));
        let short = serde_json::to_string(&note(3, "ok".into())).unwrap();
        assert_eq!(&*push_of(&note(3, "ok".into()), &short, chrono::Utc::now(), Duration::ZERO).body, short.as_bytes());
    }
}
