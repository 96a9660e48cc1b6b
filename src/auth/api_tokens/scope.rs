//! What an API token may do: its scopes, by the names the API, the
//! command line and the console use.

use super::ApiTokenError;
use serde::{Deserialize, Serialize};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Scope {
    /// Send notifications and read their receipts.
    #[serde(rename = "notify")]
    Notify,
    /// Ask for approvals and read them.
    #[serde(rename = "approvals")]
    Approvals,
    /// Invite phones (SMS, QR), resend, cancel.
    #[serde(rename = "pairing")]
    Pairing,
    /// List devices.
    #[serde(rename = "devices:read")]
    DevicesRead,
    /// Revoke, suspend, reactivate devices; set their numbers.
    #[serde(rename = "devices:write")]
    DevicesWrite,
    /// Everything the admin token can, except backups.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope.
    pub(crate) const ALL: [Scope; 6] =
        [Scope::Notify, Scope::Approvals, Scope::Pairing, Scope::DevicesRead, Scope::DevicesWrite, Scope::Admin];

    /// Its name (`notify`, `devices:read`, …).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::Notify => "notify",
            Scope::Approvals => "approvals",
            Scope::Pairing => "pairing",
            Scope::DevicesRead => "devices:read",
            Scope::DevicesWrite => "devices:write",
            Scope::Admin => "admin",
        }
    }

    /// The scope named `name`.
    pub(crate) fn parse(name: &str) -> Result<Scope, ApiTokenError> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name).ok_or_else(|| {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            ApiTokenError::Invalid(format!("scope `{name}` is not one of {}", known.join(", ")))
        })
    }

    /// Whether a token limited to some users may hold this scope (it can
    /// only notify and ask them).
    pub(super) fn fits_user_limit(self) -> bool {
        matches!(self, Scope::Notify | Scope::Approvals)
    }
}
