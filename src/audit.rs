//! The audit log: `audit.jsonl` in the data directory, one JSON event per
//! line (time, actor, action, target, result; never a secret or a whole phone
//! number), each carrying the SHA-256 of the line before it, so that editing
//! or removing a line breaks the chain. `verify` walks the chain.

use crate::clock::{self, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
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
    /// A paired phone.
    Device(String),
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
            Actor::Device(id) => write!(f, "phone:{id}"),
            Actor::Pairing => f.write_str("pairing-phone"),
            Actor::System => f.write_str("system"),
            Actor::Client(addr) => write!(f, "client:{addr}"),
        }
    }
}

/// One audited event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Event {
    /// Who did it: `admin`, `admin-socket`, `phone:{device}`, `system`.
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
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn hash_line(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

impl AuditLog {
    /// Opens the log for appending, continuing its chain.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let report = verify(path)?;
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        let tail = Tail { file, seq: report.lines, last_hash: report.last_hash };
        Ok(AuditLog { path: path.to_owned(), tail: Arc::new(Mutex::new(tail)) })
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
        let line = Line { seq: tail.seq + 1, time: clock::now(), event, prev: tail.last_hash.clone() };
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
    /// Number of lines checked.
    pub lines: u64,
    /// Hash of the last line (the next line's `prev`).
    pub last_hash: String,
}

/// Checks every line's `prev` and sequence number; a missing file is an
/// empty, valid log.
pub fn verify(path: &Path) -> Result<Report, AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Report { lines: 0, last_hash: GENESIS.into() });
        }
        Err(e) => return Err(e.into()),
    };
    let mut expected_prev = GENESIS.to_owned();
    let mut count = 0u64;
    for text in BufReader::new(file).lines() {
        let text = text?;
        count += 1;
        let broken = |reason: &str| AuditError::Broken { line: count, reason: reason.to_owned() };
        let line: Line = serde_json::from_str(&text).map_err(|_| broken("not a valid audit entry"))?;
        if line.seq != count {
            return Err(broken("sequence number out of order"));
        }
        if line.prev != expected_prev {
            return Err(broken("does not follow the line before it (edited, removed or reordered)"));
        }
        expected_prev = hash_line(&text);
    }
    Ok(Report { lines: count, last_hash: expected_prev })
}

/// The newest `limit` events, newest first.
pub fn recent(path: &Path, limit: usize) -> Result<Vec<serde_json::Value>, AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>()?;
    Ok(lines.iter().rev().take(limit).filter_map(|l| serde_json::from_str(l).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chain_verifies_across_reopen_and_detects_edits() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        log.record(Event::new(&Actor::Admin, "invite.create", "+1******2671", "ok")).await;
        log.record(Event::new(&Actor::Device("p1".into()), "invite.accept", "abc123…", "ok")).await;
        drop(log);
        let log = AuditLog::open(&path).unwrap();
        log.record(Event::new(&Actor::Admin, "device.revoke", "p1", "ok")).await;
        assert_eq!(verify(&path).unwrap().lines, 3);
        assert_eq!(recent(&path, 1).unwrap()[0]["action"], "device.revoke");

        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("device.revoke", "device.suspend", 1)).unwrap();
        assert!(verify(&path).is_ok(), "the last line has no successor to catch it");
        std::fs::write(&path, text.replacen("invite.create", "invite.cancel", 1)).unwrap();
        assert!(matches!(verify(&path), Err(AuditError::Broken { line: 2, .. })));
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(matches!(verify(&path), Err(AuditError::Broken { line: 2, .. })));
    }
}
