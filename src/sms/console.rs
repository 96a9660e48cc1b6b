//! The default SMS provider: prints each message on standard output in the
//! "MOCK SMS" block, so a pairing works with no provider set up. The log line
//! carries only the masked number; the block itself is the delivery.

use super::{Sms, SmsError};
use crate::phone::PhoneNumber;
use std::io::Write;

/// Prints messages instead of sending them.
pub struct Console;

#[async_trait::async_trait]
impl Sms for Console {
    fn name(&self) -> &'static str {
        "console"
    }

    async fn send(&self, to: &PhoneNumber, body: &str) -> Result<(), SmsError> {
        let rule = "=".repeat(60);
        let block = format!("\n{rule}\nMOCK SMS (console provider)\nTo:      {}\nMessage: {body}\n{rule}\n", to.e164());
        let mut out = std::io::stdout().lock();
        out.write_all(block.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| SmsError::Provider { provider: "console", message: e.to_string() })?;
        tracing::info!(to = %to, "SMS printed on the console");
        Ok(())
    }
}
