//! The audit log: one JSON event per entry (time, actor, action, target,
//! result; never a secret or a whole phone number), each carrying the
//! SHA-256 of the entry before it, so that editing or removing one breaks
//! the chain. One appliance keeps it in `audit.jsonl` in its data directory
//! (`file`); nodes sharing a PostgreSQL store keep one chain in the store
//! (`shared`), so every node's events follow each other in one order.

mod chain;
pub mod file;
pub mod shared;

use crate::clock::Clock;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

pub use file::verify;

/// Who asked for an audited change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An admin with the admin token (API or browser session).
    Admin,
    /// A local admin on the appliance's Unix socket.
    AdminSocket,
    /// A scoped API token, by name.
    Token(String),
    /// A webhook sender whose signature checked out, by hook.
    Hook(String),
    /// A paired phone.
    Device(String),
    /// A person signed in through the identity provider, by user id.
    Person(String),
    /// A phone that is pairing (not yet a device).
    Pairing,
    /// The appliance itself (sweeper, shutdown).
    System,
    /// A client that failed to authenticate, by address.
    Client(String),
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Admin => f.write_str("admin"),
            Actor::AdminSocket => f.write_str("admin-socket"),
            Actor::Token(name) => write!(f, "token:{name}"),
            Actor::Hook(name) => write!(f, "hook:{name}"),
            Actor::Device(id) => write!(f, "phone:{id}"),
            Actor::Person(user) => write!(f, "person:{user}"),
            Actor::Pairing => f.write_str("pairing-phone"),
            Actor::System => f.write_str("system"),
            Actor::Client(addr) => write!(f, "client:{addr}"),
        }
    }
}

/// One audited event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    /// Who did it: `admin`, `admin-socket`, `token:{name}`, `phone:{device}`,
    /// `system`.
    pub actor: String,
    /// What: `invite.create`, `device.revoke`, …
    pub action: String,
    /// On what (masked where sensitive).
    pub target: String,
    /// `ok`, or the error code that refused it.
    pub result: String,
}

impl Event {
    /// A new event.
    pub fn new(actor: &Actor, action: &str, target: impl Into<String>, result: &str) -> Event {
        Event { actor: actor.to_string(), action: action.into(), target: target.into(), result: result.into() }
    }
}

/// Why the audit log could not be written or verified.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing the file failed.
    #[error("audit log: {0}")]
    Io(#[from] std::io::Error),
    /// The shared store failed.
    #[error("audit log: {0}")]
    Store(#[from] StoreError),
    /// The chain is broken at `line` (1-based).
    #[error("audit log broken at line {line}: {reason}")]
    Broken { line: u64, reason: String },
}

/// The appending side of the audit log (cheap to clone).
#[derive(Clone)]
pub struct AuditLog {
    sink: Sink,
    clock: Clock,
}

#[derive(Clone)]
enum Sink {
    File(file::FileLog),
    Store(Store),
}

impl AuditLog {
    /// Opens the file at `path` for appending, continuing its chain.
    pub fn open(path: &std::path::Path, clock: Clock) -> Result<AuditLog, AuditError> {
        let log = file::FileLog::open(path)?;
        let audit = AuditLog { sink: Sink::File(log.clone()), clock };
        if let Some(line) = log.torn_tail() {
            tracing::warn!(line, "the audit log's last line was torn by a crash; it is kept and marked");
            log.append(file::torn_marker(line), audit.clock.now())?;
        }
        Ok(audit)
    }

    /// The log the nodes sharing `store` keep in it.
    pub fn shared(store: Store, clock: Clock) -> AuditLog {
        AuditLog { sink: Sink::Store(store), clock }
    }

    /// Appends `event`, durably (a failure is logged).
    pub async fn record(&self, event: Event) {
        let now = self.clock.now();
        let written = match &self.sink {
            Sink::File(log) => {
                let log = log.clone();
                tokio::task::spawn_blocking(move || log.append(event, now))
                    .await
                    .unwrap_or_else(|e| Err(AuditError::Io(std::io::Error::other(e))))
            }
            Sink::Store(store) => shared::append(store, event, now).await,
        };
        if let Err(e) = written {
            tracing::error!(error = %e, "could not write the audit log");
        }
    }

    /// The newest `limit` events, newest first (the cost does not grow
    /// with the log's length).
    pub fn recent(&self, limit: usize) -> Result<Vec<serde_json::Value>, AuditError> {
        match &self.sink {
            Sink::File(log) => file::recent(log.path(), limit),
            Sink::Store(store) => shared::recent(store, limit),
        }
    }
}

/// What a successful verification found.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    /// Number of whole entries checked (the last sequence number).
    pub lines: u64,
    /// Hash of the last whole entry (the next entry's `prev`).
    pub last_hash: String,
    /// Lines (1-based) torn by a crash and marked by an `audit.torn_line`.
    pub torn: Vec<u64>,
    /// A torn last line not marked yet (the appliance marks it when it opens
    /// the log).
    pub torn_tail: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use file::recent;
    use std::fs::OpenOptions;
    use std::io::Write;

    #[tokio::test]
    async fn chain_verifies_across_reopen_and_detects_edits() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.jsonl");
        let log = AuditLog::open(&path, Clock::system()).unwrap();
        log.record(Event::new(&Actor::Admin, "invite.create", "+1******2671", "ok")).await;
        log.record(Event::new(&Actor::Device("p1".into()), "invite.accept", "abc123…", "ok")).await;
        drop(log);
        let log = AuditLog::open(&path, Clock::system()).unwrap();
        log.record(Event::new(&Actor::Admin, "device.revoke", "p1", "ok")).await;
        assert_eq!(verify(&path).unwrap().lines, 3);
        assert_eq!(recent(&path, 1).unwrap()[0]["action"], "device.revoke");
        let newest_first: Vec<_> = recent(&path, 10).unwrap().iter().map(|e| e["action"].clone()).collect();
        assert_eq!(newest_first, ["device.revoke", "invite.accept", "invite.create"]);

        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("device.revoke", "device.suspend", 1)).unwrap();
        assert!(verify(&path).is_ok(), "the last line has no successor to catch it");
        std::fs::write(&path, text.replacen("invite.create", "invite.cancel", 1)).unwrap();
        assert!(matches!(verify(&path), Err(AuditError::Broken { line: 2, .. })));
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(matches!(verify(&path), Err(AuditError::Broken { line: 2, .. })));
    }

    #[tokio::test]
    async fn a_torn_last_line_is_kept_marked_and_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.jsonl");
        let log = AuditLog::open(&path, Clock::system()).unwrap();
        log.record(Event::new(&Actor::Admin, "invite.create", "+1******2671", "ok")).await;
        drop(log);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"seq":2,"time":"2026-11-2"#).unwrap();
        assert_eq!(verify(&path).unwrap().torn_tail, Some(2));
        let log = AuditLog::open(&path, Clock::system()).unwrap();
        log.record(Event::new(&Actor::Admin, "device.revoke", "p1", "ok")).await;
        let report = verify(&path).unwrap();
        assert_eq!((report.lines, report.torn.clone(), report.torn_tail), (3, vec![2], None));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(r#"{"seq":2,"time":"2026-11-2"#), "the torn line is kept");
        let unmarked = text.replace(r#""action":"audit.torn_line""#, r#""action":"invite.cancel""#);
        std::fs::write(&path, unmarked).unwrap();
        assert!(matches!(verify(&path), Err(AuditError::Broken { line: 2, .. })), "an unmarked bad line is an error");
    }
}
