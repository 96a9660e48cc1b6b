//! Twilio: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json` with HTTP
//! basic auth and a form body (`To`, `From`, `Body`).

use super::{http_client, unreachable, Sms, SmsError};
use crate::sms::number::PhoneNumber;

/// The Twilio REST API.
pub(super) struct Twilio {
    client: reqwest::Client,
    account_sid: String,
    auth_token: String,
    from: String,
    api_base: String,
}

impl Twilio {
    /// A client for one Twilio account.
    pub(super) fn new(account_sid: String, auth_token: String, from: String, api_base: String) -> Twilio {
        Twilio {
            client: http_client(),
            account_sid,
            auth_token,
            from,
            api_base: api_base.trim_end_matches('/').to_owned(),
        }
    }
}

#[async_trait::async_trait]
impl Sms for Twilio {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, to: &PhoneNumber, body: &str) -> Result<(), SmsError> {
        let url = format!("{}/2010-04-01/Accounts/{}/Messages.json", self.api_base, self.account_sid);
        let form = [("To", to.e164()), ("From", self.from.as_str()), ("Body", body)];
        let response = self
            .client
            .post(url)
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| unreachable("twilio", e))?;
        if response.status().is_success() {
            tracing::info!(to = %to, "SMS sent through Twilio");
            return Ok(());
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| format!("HTTP {status}"));
        Err(SmsError::Provider { provider: "twilio", message })
    }
}
