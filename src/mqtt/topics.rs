//! The topics every message travels on, and the nine message types that
//! name their last level: `/tenants/{tenant}/topdog/{user_id}/{device_id}/{type}`,
//! each device its own tenant. A leaf: the broker, the gateway and
//! messaging all read it, and it reads none of them.

use serde::{Deserialize, Serialize};

/// A message's type, the last level of its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Phone → appliance: a spoken or typed command.
    VoiceCommand,
    /// Appliance → phone: what became of a command.
    CommandResult,
    /// Appliance → phone: a build notification.
    Notification,
    /// Appliance → phone: please approve (number matching).
    ApprovalRequest,
    /// Phone → appliance: the answer to an approval request.
    ApprovalResponse,
    /// Appliance → phone: an action's run started or finished.
    BuildStatus,
    /// Phone → appliance: online, or offline (the phone's last will).
    Presence,
    /// Appliance → phone: revoked, suspended, or refresh your token.
    Control,
    /// Phone → appliance: items it showed its person (receipts).
    Seen,
}

/// Every kind, in the order of DESIGN.md.
pub const KINDS: [Kind; 9] = [
    Kind::VoiceCommand,
    Kind::CommandResult,
    Kind::Notification,
    Kind::ApprovalRequest,
    Kind::ApprovalResponse,
    Kind::BuildStatus,
    Kind::Presence,
    Kind::Control,
    Kind::Seen,
];

impl Kind {
    /// The topic level.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VoiceCommand => "voice_command",
            Kind::CommandResult => "command_result",
            Kind::Notification => "notification",
            Kind::ApprovalRequest => "approval_request",
            Kind::ApprovalResponse => "approval_response",
            Kind::BuildStatus => "build_status",
            Kind::Presence => "presence",
            Kind::Control => "control",
            Kind::Seen => "seen",
        }
    }

    /// Parses a topic level.
    pub fn parse(level: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.as_str() == level)
    }

    /// Whether phones send it (the appliance subscribes to these).
    pub fn from_phone(self) -> bool {
        matches!(self, Kind::VoiceCommand | Kind::ApprovalResponse | Kind::Presence | Kind::Seen)
    }
}

/// A device's tenant: rumqttd confines a connection to
/// `/tenants/{tenant}/…`, so each phone gets a tenant of its own and can
/// reach nothing outside its own topics. Letters and digits only.
pub fn tenant_of(device_id: &str) -> String {
    use sha2::Digest;
    format!("t{}", &hex::encode(sha2::Sha256::digest(device_id.as_bytes()))[..24])
}

/// A device's topic prefix.
pub fn topic_prefix(user_id: &str, device_id: &str) -> String {
    format!("/tenants/{}/topdog/{user_id}/{device_id}", tenant_of(device_id))
}

/// The topic of one message type for a device.
pub fn topic(user_id: &str, device_id: &str, kind: Kind) -> String {
    format!("{}/{}", topic_prefix(user_id, device_id), kind.as_str())
}

/// The filter the appliance subscribes to for one phone → appliance type.
pub fn inbound_filter(kind: Kind) -> String {
    format!("/tenants/+/topdog/+/+/{}", kind.as_str())
}

/// Where an inbound message came from, read from its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The user level of the topic.
    pub user_id: String,
    /// The device level of the topic.
    pub device_id: String,
    /// The message type.
    pub kind: Kind,
}

/// Parses a topic; `None` unless it is well formed and its tenant is the
/// device's own (rumqttd only checks the tenant, so a phone could otherwise
/// write into another device's levels under its own tenant).
pub fn parse_topic(topic: &str) -> Option<Origin> {
    let mut levels = topic.strip_prefix("/tenants/")?.split('/');
    let (tenant, app, user, device, kind) =
        (levels.next()?, levels.next()?, levels.next()?, levels.next()?, levels.next()?);
    if levels.next().is_some() || app != "topdog" || tenant != tenant_of(device) {
        return None;
    }
    Some(Origin { user_id: user.to_owned(), device_id: device.to_owned(), kind: Kind::parse(kind)? })
}
