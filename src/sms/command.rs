//! Command: runs a local program (no shell) for each message, with the
//! message on stdin and the number in `TOPDOG_SMS_TO` and nothing else of
//! the appliance's environment; exit status 0 means sent. The program is
//! killed after the send timeout.

use super::{Sms, SmsError, SEND_TIMEOUT};
use crate::sms::number::PhoneNumber;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// The program's `PATH`: it gets a clean environment, never the
/// appliance's own (which holds the admin token and provider secrets).
const CLEAN_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Hands messages to a local program.
pub(super) struct Command {
    argv: Vec<String>,
}

impl Command {
    /// A provider running `argv` (program first).
    pub(super) fn new(argv: Vec<String>) -> Command {
        Command { argv }
    }

    async fn run(&self, to: &PhoneNumber, body: &str) -> Result<std::process::Output, std::io::Error> {
        let (program, args) = self.argv.split_first().ok_or_else(|| std::io::Error::other("empty command"))?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", CLEAN_PATH)
            .env("LANG", "C.UTF-8")
            .env("TOPDOG_SMS_TO", to.e164())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            // A program that exits without reading is judged by its exit status.
            match stdin.write_all(body.as_bytes()).await {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
                _ => {}
            }
        }
        child.wait_with_output().await
    }
}

#[async_trait::async_trait]
impl Sms for Command {
    fn name(&self) -> &'static str {
        "command"
    }

    async fn send(&self, to: &PhoneNumber, body: &str) -> Result<(), SmsError> {
        let failed = |message: String| SmsError::Provider { provider: "command", message };
        let output = tokio::time::timeout(SEND_TIMEOUT, self.run(to, body))
            .await
            .map_err(|_| failed("timed out".into()))?
            .map_err(|e| failed(e.to_string()))?;
        if output.status.success() {
            tracing::info!(to = %to, "SMS handed to the command");
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(failed(format!("{} {}", output.status, stderr.trim()).trim().to_owned()))
    }
}
