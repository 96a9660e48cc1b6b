//! The audit log: one JSON event per entry (time, actor, action, target,
//! result; never a secret or a whole phone number), each carrying the
//! SHA-256 of the entry before it, so that editing or removing one breaks
//! the chain. One appliance keeps it in `audit.jsonl` in its data directory
//! (`file`); nodes sharing a PostgreSQL store keep one chain in the store
//! (`shared`), so every node's events follow each other in one order.

mod batch;
mod chain;
pub(crate) mod file;
pub(crate) mod shared;

use crate::clock::Clock;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

pub(crate) use file::verify;

/// Who asked for an audited change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Actor {
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
pub(crate) struct Event {
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
    pub(crate) fn new(actor: &Actor, action: &str, target: impl Into<String>, result: &str) -> Event {
        Event { actor: actor.to_string(), action: action.into(), target: target.into(), result: result.into() }
    }
}

/// Why the audit log could not be written or verified.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuditError {
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
pub(crate) struct AuditLog {
    sink: Sink,
    clock: Clock,
    batcher: batch::Batcher,
}

#[derive(Clone)]
enum Sink {
    File(file::FileLog),
    Store(Store),
}

impl AuditLog {
    /// Opens the file at `path` for appending, continuing its chain.
    pub(crate) fn open(path: &std::path::Path, clock: Clock) -> Result<AuditLog, AuditError> {
        let log = file::FileLog::open(path)?;
        let audit = AuditLog { sink: Sink::File(log.clone()), clock, batcher: batch::Batcher::default() };
        if let Some(line) = log.torn_tail() {
            tracing::warn!(line, "the audit log's last line was torn by a crash; it is kept and marked");
            log.append(vec![(file::torn_marker(line), audit.clock.now())])?;
        }
        Ok(audit)
    }

    /// The log the nodes sharing `store` keep in it.
    pub(crate) fn shared(store: Store, clock: Clock) -> AuditLog {
        AuditLog { sink: Sink::Store(store), clock, batcher: batch::Batcher::default() }
    }

    /// Appends `event`, durably, together with the events recorded while
    /// the write before it was on its way (a failure is logged). The write
    /// runs on a task of its own, so that a caller that goes away (a client
    /// that hangs up) does not take the events of others with it.
    pub(crate) async fn record(&self, event: Event) {
        let written = self.batcher.push(event, self.clock.now());
        let log = self.clone();
        tokio::spawn(async move { log.batcher.in_turn(|batch| log.write(batch)).await });
        let _ = written.await;
    }

    async fn write(&self, entries: Vec<(Event, crate::clock::Timestamp)>) {
        let events = entries.len();
        let written = match &self.sink {
            Sink::File(log) => {
                let log = log.clone();
                tokio::task::spawn_blocking(move || log.append(entries))
                    .await
                    .unwrap_or_else(|e| Err(AuditError::Io(std::io::Error::other(e))))
            }
            Sink::Store(store) => shared::append(store, &entries).await,
        };
        if let Err(e) = written {
            tracing::error!(error = %e, events, "could not write the audit log");
        }
    }

    /// The newest `limit` events, newest first (the cost does not grow
    /// with the log's length).
    pub(crate) fn recent(&self, limit: usize) -> Result<Vec<serde_json::Value>, AuditError> {
        match &self.sink {
            Sink::File(log) => file::recent(log.path(), limit),
            Sink::Store(store) => shared::recent(store, limit),
        }
    }
}

/// What a successful verification found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Report {
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_recorded_at_once_all_land_in_one_chain_even_when_a_caller_goes_away() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.jsonl");
        let log = AuditLog::open(&path, Clock::system()).unwrap();
        let event = |i: usize| Event::new(&Actor::Device(format!("p{i}")), "device.revoke", format!("p{i}"), "ok");
        let records: Vec<_> = (0..50)
            .map(|i| {
                tokio::spawn({
                    let log = log.clone();
                    async move { log.record(event(i)).await }
                })
            })
            .collect();
        for record in records {
            record.await.unwrap();
        }
        assert_eq!(verify(&path).unwrap().lines, 50);
        let targets: std::collections::HashSet<_> =
            recent(&path, 100).unwrap().iter().map(|e| e["target"].clone()).collect();
        assert_eq!(targets.len(), 50, "every event is in the log once");

        // A caller that goes away after its first step (a client hanging up).
        let mut gone = Box::pin(log.record(event(50)));
        let _ = futures_util::FutureExt::now_or_never(&mut gone);
        drop(gone);
        log.record(event(51)).await;
        let newest: Vec<_> = recent(&path, 2).unwrap().iter().map(|e| e["target"].clone()).collect();
        assert_eq!(newest, ["p51", "p50"], "an event whose caller went away is still written, in its turn");
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
