//! Outgoing SMS: the `Sms` trait, the provider chosen by configuration
//! (console, Twilio, AWS SNS, webhook or a local command) and the message
//! texts. Every provider call has a timeout; a provider's refusal comes back
//! as `SmsError::Provider` with the provider's own words.

mod command;
mod console;
pub use console::ConsoleOut;
pub mod number;
mod sns;
pub(crate) mod templates;
mod twilio;
mod webhook;

use crate::config::SmsConfig;
use crate::sms::number::PhoneNumber;
use std::sync::Arc;
use std::time::Duration;

/// How long any provider call may take.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SmsError {
    /// The provider refused or failed the request.
    #[error("the SMS provider {provider} refused the message: {message}")]
    Provider { provider: &'static str, message: String },
    /// The provider could not be reached in time.
    #[error("the SMS provider {provider} could not be reached: {message}")]
    Unreachable { provider: &'static str, message: String },
}

/// A way to send a text message.
#[async_trait::async_trait]
pub(crate) trait Sms: Send + Sync {
    /// The provider's name, for logs and status.
    fn name(&self) -> &'static str;
    /// Sends `body` to `to`.
    async fn send(&self, to: &PhoneNumber, body: &str) -> Result<(), SmsError>;
}

/// Builds the configured provider.
pub(crate) fn from_config(config: &SmsConfig, console: &ConsoleOut) -> Arc<dyn Sms> {
    match config {
        SmsConfig::Console { show_links } => Arc::new(console::Console::new(*show_links, console.clone())),
        SmsConfig::Twilio { account_sid, auth_token, from, api_base } => {
            Arc::new(twilio::Twilio::new(account_sid.clone(), auth_token.0.clone(), from.clone(), api_base.clone()))
        }
        SmsConfig::Sns { region, endpoint, access_key_id, secret_access_key, session_token } => {
            Arc::new(sns::Sns::new(
                region.clone(),
                endpoint.clone(),
                access_key_id.clone(),
                secret_access_key.0.clone(),
                session_token.as_ref().map(|s| s.0.clone()),
            ))
        }
        SmsConfig::Webhook { url } => Arc::new(webhook::Webhook::new(url.clone())),
        SmsConfig::Command { argv } => Arc::new(command::Command::new(argv.clone())),
    }
}

/// An HTTP client for providers: rustls, bundled roots, a hard timeout.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("topdog/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

fn unreachable(provider: &'static str, e: impl std::fmt::Display) -> SmsError {
    SmsError::Unreachable { provider, message: e.to_string() }
}
