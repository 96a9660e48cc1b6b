//! The default SMS provider: prints each message on standard output in the
//! "MOCK SMS" block, so a pairing works with no provider set up. The number
//! is always masked. A pairing link is a credential, so the text is printed
//! whole only when the operator chose the console provider by name or reads
//! standard output in a terminal; otherwise (a journal, a log file) only its
//! length is shown.

use super::{Sms, SmsError};
use crate::sms::number::PhoneNumber;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

/// Where the console provider's blocks go: standard output, or, for a
/// program that runs the appliance inside its own process (the tests), a
/// function given each line.
#[derive(Clone, Default)]
pub enum ConsoleOut {
    /// The process's standard output.
    #[default]
    Stdout,
    /// Each line of each block, in order.
    Lines(Arc<dyn Fn(&str) + Send + Sync>),
}

impl ConsoleOut {
    fn is_terminal(&self) -> bool {
        matches!(self, ConsoleOut::Stdout) && std::io::stdout().is_terminal()
    }

    fn write(&self, text: &str) -> std::io::Result<()> {
        match self {
            ConsoleOut::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|()| out.flush())
            }
            ConsoleOut::Lines(each) => {
                text.lines().for_each(|line| each(line));
                Ok(())
            }
        }
    }
}

/// Prints messages instead of sending them.
pub(super) struct Console {
    show_text: bool,
    out: ConsoleOut,
}

impl Console {
    /// A console provider writing to `out`; `chosen` when the operator
    /// named it explicitly.
    pub(super) fn new(chosen: bool, out: ConsoleOut) -> Console {
        Console { show_text: chosen || out.is_terminal(), out }
    }
}

/// The "MOCK SMS" block for one message.
fn block(to: &PhoneNumber, body: &str, show_text: bool) -> String {
    let rule = "=".repeat(60);
    let message = if show_text {
        body.to_owned()
    } else {
        format!(
            "({} characters, not shown: it holds a live pairing link; start with \
             --sms-provider console to print messages on the console)",
            body.chars().count()
        )
    };
    format!("\n{rule}\nMOCK SMS (console provider)\nTo:      {}\nMessage: {message}\n{rule}\n", to.masked())
}

#[async_trait::async_trait]
impl Sms for Console {
    fn name(&self) -> &'static str {
        "console"
    }

    async fn send(&self, to: &PhoneNumber, body: &str) -> Result<(), SmsError> {
        self.out
            .write(&block(to, body, self.show_text))
            .map_err(|e| SmsError::Provider { provider: "console", message: e.to_string() })?;
        tracing::info!(to = %to, "SMS printed on the console");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_is_masked_and_the_link_shown_only_when_asked() {
        let to = PhoneNumber::parse("+14155552671").unwrap();
        let text = "tap https://box/pair?code=SECRETCODE";
        let hidden = block(&to, text, false);
        assert!(!hidden.contains("SECRETCODE") && !hidden.contains("4155552671"), "{hidden}");
        assert!(hidden.contains(&to.masked()));
        let shown = block(&to, text, true);
        assert!(shown.contains("SECRETCODE") && !shown.contains("4155552671"), "{shown}");
    }
}
