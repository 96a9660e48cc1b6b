//! The audit log: `audit.jsonl` in the data directory, one JSON event per
//! line (time, actor, action, target, result; never a secret or a whole phone
//! number), each carrying the SHA-256 of the line before it, so that editing
//! or removing a line breaks the chain. `verify` walks the chain. A last
//! line torn by a crash is not dropped: on the next start it is closed off
//! and followed by an `audit.torn_line` entry naming it, which continues the
//! chain from the last whole line; `verify` reports such lines.

use crate::clock::{Clock, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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

/// A line as stored.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    seq: u64,
    time: Timestamp,
    #[serde(flatten)]
    event: Event,
    prev: String,
}

/// Why the audit log could not be written or verified.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing the file failed.
    #[error("audit log: {0}")]
    Io(#[from] std::io::Error),
    /// The chain is broken at `line` (1-based).
    #[error("audit log broken at line {line}: {reason}")]
    Broken { line: u64, reason: String },
}

struct Tail {
    file: File,
    seq: u64,
    last_hash: String,
}

/// The appending side of the audit log (cheap to clone).
#[derive(Clone)]
pub struct AuditLog {
    path: PathBuf,
    tail: Arc<Mutex<Tail>>,
    clock: Clock,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn hash_line(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

impl AuditLog {
    /// Opens the log for appending, continuing its chain.
    pub fn open(path: &Path, clock: Clock) -> Result<AuditLog, AuditError> {
        let report = verify(path)?;
        let mut file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        if report.torn_tail.is_some() {
            file.write_all(b"\n")?;
        }
        let tail = Tail { file, seq: report.lines, last_hash: report.last_hash };
        let log = AuditLog { path: path.to_owned(), tail: Arc::new(Mutex::new(tail)), clock };
        if let Some(line) = report.torn_tail {
            tracing::warn!(line, "the audit log's last line was torn by a crash; it is kept and marked");
            log.append(Event::new(&Actor::System, TORN, torn_target(line), "kept"))?;
        }
        Ok(log)
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event` and syncs it to disk.
    pub async fn record(&self, event: Event) {
        let log = self.clone();
        let written = tokio::task::spawn_blocking(move || log.append(event)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not write the audit log"),
            Err(e) => tracing::error!(error = %e, "audit writer failed"),
        }
    }

    fn append(&self, event: Event) -> Result<(), AuditError> {
        let mut tail = self.tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let line = Line { seq: tail.seq + 1, time: self.clock.now(), event, prev: tail.last_hash.clone() };
        let text = serde_json::to_string(&line).map_err(|e| AuditError::Io(e.into()))?;
        tail.file.write_all(format!("{text}\n").as_bytes())?;
        tail.file.sync_data()?;
        tail.seq += 1;
        tail.last_hash = hash_line(&text);
        Ok(())
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

const TORN: &str = "audit.torn_line";

fn torn_target(line: u64) -> String {
    format!("line {line}")
}

/// Checks every line's `prev` and sequence number; a missing file is an
/// empty, valid log.
pub fn verify(path: &Path) -> Result<Report, AuditError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let ends_whole = bytes.last().is_none_or(|b| *b == b'\n');
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let mut report = Report { lines: 0, last_hash: GENESIS.to_owned(), torn: Vec::new(), torn_tail: None };
    let mut pending_torn: Option<u64> = None;
    for (i, text) in lines.iter().enumerate() {
        let number = i as u64 + 1;
        let broken = |reason: &str| AuditError::Broken { line: number, reason: reason.to_owned() };
        let Ok(line) = serde_json::from_str::<Line>(text) else {
            if number == lines.len() as u64 && !ends_whole {
                report.torn_tail = Some(number);
                break;
            }
            if pending_torn.is_some() {
                return Err(broken("not a valid audit entry"));
            }
            pending_torn = Some(number);
            continue;
        };
        if let Some(torn) = pending_torn.take() {
            if line.event.action != TORN || line.event.target != torn_target(torn) {
                return Err(AuditError::Broken { line: torn, reason: "not a valid audit entry".into() });
            }
            report.torn.push(torn);
        }
        if line.seq != report.lines + 1 {
            return Err(broken("sequence number out of order"));
        }
        if line.prev != report.last_hash {
            return Err(broken("does not follow the line before it (edited, removed or reordered)"));
        }
        report.lines += 1;
        report.last_hash = hash_line(text);
    }
    if let Some(torn) = pending_torn {
        return Err(AuditError::Broken { line: torn, reason: "not a valid audit entry".into() });
    }
    Ok(report)
}

/// The newest `limit` events, newest first, read from the end of the log
/// (so the cost does not grow with its length); a torn line is skipped.
pub fn recent(path: &Path, limit: usize) -> Result<Vec<serde_json::Value>, AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut events = Vec::with_capacity(limit.min(1024));
    for line in rev_lines::RawRevLines::new(file) {
        if events.len() >= limit {
            break;
        }
        events.extend(serde_json::from_slice::<serde_json::Value>(&line?).ok());
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

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
