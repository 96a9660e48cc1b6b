//! The nine MQTT message types and their topics. Every message is one JSON
//! object carrying `type`, `id` and `time` besides its own fields; the same
//! objects travel on the live event stream. Topics are
//! `/tenants/{tenant}/topdog/{user_id}/{device_id}/{type}`.

use crate::clock::Timestamp;
use serde::{Deserialize, Serialize};

pub use crate::mqtt::topics::{inbound_filter, parse_topic, tenant_of, topic, topic_prefix, Kind, Origin, KINDS};

/// `notification`: the appliance tells a phone about a build.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Notification {
    /// The notification's id (time-ordered; use it as `since`).
    pub(crate) id: String,
    /// When it was posted.
    pub(crate) time: Timestamp,
    /// Headline.
    pub(crate) title: String,
    /// Text.
    pub(crate) body: String,
    /// 1 (lowest) to 5 (urgent).
    pub(crate) priority: u8,
    /// `build_started`, `build_success`, `build_failure`, `test_results`, …
    pub(crate) kind: String,
    /// A link to open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) link: Option<String>,
    /// The phone a `new_device` alert is about (its "This wasn't me" is
    /// `POST /phone/notifications/{id}/not-me`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) device: Option<AboutDevice>,
}

/// The phone an alert is about.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct AboutDevice {
    /// Its id.
    pub(crate) device_id: String,
    /// Its user.
    pub(crate) user_id: String,
    /// Its name.
    pub(crate) device_name: String,
    /// `ios`, `android`, `web`, …
    pub(crate) device_type: String,
    /// When it was paired.
    pub(crate) paired_at: Timestamp,
    /// The address it was paired from, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<String>,
}

/// `approval_request`: approve or reject, by matching the requester's number.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ApprovalRequest {
    /// The approval's id (answer with it).
    pub(crate) id: String,
    /// When it was requested.
    pub(crate) time: Timestamp,
    /// Headline.
    pub(crate) title: String,
    /// What is to be approved.
    pub(crate) detail: String,
    /// Three two-digit numbers; the requester sees the right one.
    pub(crate) choices: Vec<String>,
    /// When it stops being answerable.
    pub(crate) expires_at: Timestamp,
}

/// `approval_response`: the phone's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApprovalResponse {
    /// The message's own id.
    #[serde(default)]
    pub(crate) id: Option<String>,
    /// The approval answered.
    pub(crate) approval_id: String,
    /// `approve` or `reject`.
    pub(crate) decision: String,
    /// The number the requester showed (not needed to reject, nor for a
    /// plain confirm).
    #[serde(default)]
    pub(crate) code: String,
}

/// `voice_command`: text the phone heard or the user typed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VoiceCommand {
    /// The message's id: a command is run at most once per id.
    pub(crate) id: String,
    /// The words.
    pub(crate) text: String,
}

/// What became of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CommandStatus {
    /// Nothing matched; `message` lists what the phone can say.
    Unknown,
    /// An action matched but a parameter is missing or unclear.
    NeedsParameter,
    /// A risky action waits for the phone's approval.
    AwaitingApproval,
    /// The approval was refused or expired; nothing ran.
    Rejected,
    /// The action is running.
    Started,
    /// It exited with status 0.
    Succeeded,
    /// It exited otherwise, or could not start.
    Failed,
    /// It ran too long and was stopped.
    TimedOut,
}

/// `command_result`: the appliance's answer to a command.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct CommandResult {
    /// This message's id.
    pub(crate) id: String,
    /// When.
    pub(crate) time: Timestamp,
    /// The command answered (the voice_command's id).
    pub(crate) command_id: String,
    /// What became of it.
    pub(crate) status: CommandStatus,
    /// The matched action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) action: Option<String>,
    /// Its parameters.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) params: std::collections::BTreeMap<String, String>,
    /// The approval to answer, when awaiting one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) approval_id: Option<String>,
    /// The exit code, when finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) exit_code: Option<i32>,
    /// The end of the output, when finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) output_tail: Option<String>,
    /// A sentence for the user.
    pub(crate) message: String,
}

/// `build_status`: an action's run, for build dashboards on the phone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct BuildStatus {
    /// This message's id.
    pub(crate) id: String,
    /// When.
    pub(crate) time: Timestamp,
    /// The action.
    pub(crate) action: String,
    /// Its parameters.
    pub(crate) params: std::collections::BTreeMap<String, String>,
    /// `started`, `succeeded`, `failed` or `timed_out`.
    pub(crate) state: CommandStatus,
    /// The exit code, when finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) exit_code: Option<i32>,
}

/// `seen`: the items (notification or approval ids) the phone showed its
/// person, in the open app or by a tap on their notification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Seen {
    /// The items.
    pub(crate) ids: Vec<String>,
}

/// `presence`: the phone is online (after subscribing) or offline (its
/// last will).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Presence {
    /// `online` or `offline`.
    pub(crate) state: String,
    /// The last notification id the phone has; everything after it is
    /// replayed (everything unacknowledged when absent).
    #[serde(default)]
    pub(crate) since: Option<String>,
}

/// What a `control` message tells the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ControlAction {
    /// The phone was revoked; it must pair again.
    Revoked,
    /// The phone was suspended; an admin can reactivate it.
    Suspended,
    /// The token expires soon: call `POST /phone/token/refresh`.
    TokenRefresh,
}

/// `control`: the appliance tells the phone about its standing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Control {
    /// This message's id.
    pub(crate) id: String,
    /// When.
    pub(crate) time: Timestamp,
    /// What happened.
    pub(crate) action: ControlAction,
    /// A sentence for the user.
    pub(crate) detail: String,
}

/// An appliance → phone message, ready to send.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Outbound {
    /// See [`Notification`].
    Notification(Notification),
    /// See [`ApprovalRequest`].
    ApprovalRequest(ApprovalRequest),
    /// See [`CommandResult`].
    CommandResult(CommandResult),
    /// See [`BuildStatus`].
    BuildStatus(BuildStatus),
    /// See [`Control`].
    Control(Control),
}

impl Outbound {
    /// The message's type.
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Outbound::Notification(_) => Kind::Notification,
            Outbound::ApprovalRequest(_) => Kind::ApprovalRequest,
            Outbound::CommandResult(_) => Kind::CommandResult,
            Outbound::BuildStatus(_) => Kind::BuildStatus,
            Outbound::Control(_) => Kind::Control,
        }
    }

    /// The message's id.
    pub(crate) fn id(&self) -> &str {
        match self {
            Outbound::Notification(m) => &m.id,
            Outbound::ApprovalRequest(m) => &m.id,
            Outbound::CommandResult(m) => &m.id,
            Outbound::BuildStatus(m) => &m.id,
            Outbound::Control(m) => &m.id,
        }
    }
}

/// A phone → appliance message, as parsed from its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// See [`VoiceCommand`].
    VoiceCommand(VoiceCommand),
    /// See [`ApprovalResponse`].
    ApprovalResponse(ApprovalResponse),
    /// See [`Presence`].
    Presence(Presence),
    /// See [`Seen`].
    Seen(Seen),
}

/// Why a phone's message was not understood.
#[derive(Debug, thiserror::Error)]
#[error("{kind} message not understood: {reason}")]
pub struct BadMessage {
    /// The type it claimed.
    pub(crate) kind: &'static str,
    /// What was wrong.
    pub(crate) reason: String,
}

/// Reads an optional whole number that JSON may write as `2` or `2.0` (both
/// are integers to JSON Schema); a fraction or a negative is refused.
pub(crate) fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else { return Ok(None) };
    if let Some(n) = number.as_u64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(Some(f as u64)),
        _ => Err(serde::de::Error::custom(format!("{number} is not a whole number"))),
    }
}

/// Largest phone message the appliance reads.
pub(crate) const MAX_INBOUND: usize = 16 * 1024;

/// Parses a phone's message of type `kind`.
pub fn parse_inbound(kind: Kind, payload: &[u8]) -> Result<Inbound, BadMessage> {
    let bad = |reason: String| BadMessage { kind: kind.as_str(), reason };
    if payload.len() > MAX_INBOUND {
        return Err(bad(format!("larger than {MAX_INBOUND} bytes")));
    }
    let parsed = match kind {
        Kind::VoiceCommand => serde_json::from_slice(payload).map(Inbound::VoiceCommand),
        Kind::ApprovalResponse => serde_json::from_slice(payload).map(Inbound::ApprovalResponse),
        Kind::Presence => serde_json::from_slice(payload).map(Inbound::Presence),
        Kind::Seen => serde_json::from_slice(payload).map(Inbound::Seen),
        _ => return Err(bad("the appliance does not accept this type from phones".into())),
    };
    parsed.map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_and_foreign_levels_are_refused() {
        let t = topic("alice", "phone-a", Kind::VoiceCommand);
        let origin = parse_topic(&t).unwrap();
        assert_eq!((origin.user_id.as_str(), origin.device_id.as_str()), ("alice", "phone-a"));
        assert_eq!(origin.kind, Kind::VoiceCommand);
        let spoofed = format!("/tenants/{}/topdog/bob/phone-b/voice_command", tenant_of("phone-a"));
        assert_eq!(parse_topic(&spoofed), None);
        assert_eq!(parse_topic(&format!("{t}/extra")), None);
        assert_eq!(parse_topic("/tenants/x"), None);
    }

    #[test]
    fn outbound_messages_carry_type_id_and_time() {
        let now = crate::clock::Clock::system().now();
        let control = Outbound::Control(Control {
            id: "c1".into(),
            time: now,
            action: ControlAction::Revoked,
            detail: "gone".into(),
        });
        let json = serde_json::to_value(&control).unwrap();
        assert_eq!(json["type"], "control");
        assert_eq!(json["id"], "c1");
        assert_eq!(json["action"], "revoked");
        assert!(json["time"].is_string());
    }

    #[test]
    fn inbound_messages_are_checked() {
        let ok = parse_inbound(Kind::VoiceCommand, br#"{"id":"m1","text":"run tests"}"#).unwrap();
        assert_eq!(ok, Inbound::VoiceCommand(VoiceCommand { id: "m1".into(), text: "run tests".into() }));
        assert!(parse_inbound(Kind::VoiceCommand, br#"{"text":"no id"}"#).is_err());
        assert!(parse_inbound(Kind::Notification, b"{}").is_err());
        assert!(parse_inbound(Kind::Presence, &vec![b' '; MAX_INBOUND + 1]).is_err());
    }
}
