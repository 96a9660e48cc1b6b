//! Generic hooks (`POST /hooks/generic/{name}`, for Jenkins, Buildkite and
//! scripts): a JSON body naming the user and the words, signed with
//! HMAC-SHA256 over `{timestamp}.{body}` (the `X-Topdog-Timestamp` and
//! `X-Topdog-Signature-256` headers), as Stripe and Slack sign theirs, so a
//! captured delivery cannot be sent again later.

use super::HookError;
use serde::Deserialize;

/// How far a signed timestamp may be from the appliance's clock.
pub(super) const TOLERANCE_S: i64 = 300;

/// What a generic hook's body holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GenericBody {
    /// The user to notify.
    pub user: String,
    /// Headline.
    pub title: String,
    /// Text.
    #[serde(default)]
    pub body: String,
    /// 1–5 (default 3).
    #[serde(default)]
    pub priority: Option<u64>,
    /// The notification kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Where the phone goes to look.
    #[serde(default)]
    pub link: Option<String>,
}

/// Parses the body.
pub(super) fn parse(body: &[u8]) -> Result<GenericBody, HookError> {
    serde_json::from_slice(body).map_err(|e| HookError::Payload("generic", e.to_string()))
}

/// Checks the signed timestamp (Unix seconds) against `now`.
pub(super) fn check_time(timestamp: &str, now: i64) -> Result<(), HookError> {
    let at: i64 = timestamp.trim().parse().map_err(|_| HookError::BadSignature)?;
    if (now - at).abs() > TOLERANCE_S {
        return Err(HookError::Stale(TOLERANCE_S));
    }
    Ok(())
}
