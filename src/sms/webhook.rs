//! Webhook: each message is POSTed as JSON `{"to", "message"}` to a URL the
//! operator runs (a gateway, a chat bridge); any 2xx counts as sent.

use super::{http_client, unreachable, Sms, SmsError};
use crate::sms::number::PhoneNumber;

/// POSTs messages to a URL.
pub(super) struct Webhook {
    client: reqwest::Client,
    url: String,
}

impl Webhook {
    /// A webhook at `url`.
    pub(super) fn new(url: String) -> Webhook {
        Webhook { client: http_client(), url }
    }
}

#[async_trait::async_trait]
impl Sms for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, to: &PhoneNumber, body: &str) -> Result<(), SmsError> {
        let payload = serde_json::json!({ "to": to.e164(), "message": body });
        let response =
            self.client.post(&self.url).json(&payload).send().await.map_err(|e| unreachable("webhook", e))?;
        if response.status().is_success() {
            tracing::info!(to = %to, "SMS handed to the webhook");
            return Ok(());
        }
        Err(SmsError::Provider { provider: "webhook", message: format!("HTTP {}", response.status()) })
    }
}
