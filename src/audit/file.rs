//! The audit log of one appliance: `audit.jsonl` in the data directory, one
//! entry per line, each write (the events recorded together) synced to
//! disk. A last line torn by a crash is not dropped: on the next start it is
//! closed off and followed by an `audit.torn_line` entry naming it, which
//! continues the chain from the last whole line; `verify` reports such
//! lines.

use super::chain::{Head, Line};
use super::{Actor, AuditError, Event, Report};
use crate::clock::Timestamp;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const TORN: &str = "audit.torn_line";

fn torn_target(line: u64) -> String {
    format!("line {line}")
}

/// The entry that marks line `line` as torn by a crash.
pub(super) fn torn_marker(line: u64) -> Event {
    Event::new(&Actor::System, TORN, torn_target(line), "kept")
}

struct Tail {
    file: File,
    head: Head,
}

/// The file, open for appending (cheap to clone).
#[derive(Clone)]
pub(super) struct FileLog {
    path: PathBuf,
    tail: Arc<Mutex<Tail>>,
    torn_tail: Option<u64>,
}

impl FileLog {
    /// Opens the file, checking its chain; a torn last line is closed off.
    pub(super) fn open(path: &Path) -> Result<FileLog, AuditError> {
        let report = verify(path)?;
        let mut file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        if report.torn_tail.is_some() {
            file.write_all(b"\n")?;
        }
        let head = Head { seq: report.lines, hash: report.last_hash };
        Ok(FileLog {
            path: path.to_owned(),
            tail: Arc::new(Mutex::new(Tail { file, head })),
            torn_tail: report.torn_tail,
        })
    }

    /// The torn last line found at opening, to be marked.
    pub(super) fn torn_tail(&self) -> Option<u64> {
        self.torn_tail
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends each event at its time, in order, and syncs them to disk
    /// (one flush for all).
    pub(super) fn append(&self, entries: Vec<(Event, Timestamp)>) -> Result<(), AuditError> {
        let mut tail = self.tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (texts, head) = tail.head.extend(entries).map_err(|e| AuditError::Io(e.into()))?;
        let lines: String = texts.iter().map(|(_, text)| format!("{text}\n")).collect();
        tail.file.write_all(lines.as_bytes())?;
        tail.file.sync_data()?;
        tail.head = head;
        Ok(())
    }
}

/// Checks every line's `prev` and sequence number; a missing file is an
/// empty, valid log.
pub(crate) fn verify(path: &Path) -> Result<Report, AuditError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let ends_whole = bytes.last().is_none_or(|b| *b == b'\n');
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let mut head = Head::default();
    let (mut torn, mut torn_tail) = (Vec::new(), None);
    let mut pending_torn: Option<u64> = None;
    for (i, text) in lines.iter().enumerate() {
        let number = i as u64 + 1;
        let Ok(line) = serde_json::from_str::<Line>(text) else {
            if number == lines.len() as u64 && !ends_whole {
                torn_tail = Some(number);
                break;
            }
            if pending_torn.is_some() {
                return Err(AuditError::Broken { line: number, reason: "not a valid audit entry".into() });
            }
            pending_torn = Some(number);
            continue;
        };
        if let Some(line_torn) = pending_torn.take() {
            if line.event.action != TORN || line.event.target != torn_target(line_torn) {
                return Err(AuditError::Broken { line: line_torn, reason: "not a valid audit entry".into() });
            }
            torn.push(line_torn);
        }
        head.follow(&line, text, number)?;
    }
    if let Some(line) = pending_torn {
        return Err(AuditError::Broken { line, reason: "not a valid audit entry".into() });
    }
    Ok(Report { lines: head.seq, last_hash: head.hash, torn, torn_tail })
}

/// The whole entries of the file at `path`, as text, in order (torn lines
/// left out), for a copy into the shared store.
pub(crate) fn entries(path: &Path) -> Result<Vec<String>, AuditError> {
    verify(path)?;
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(text.lines().filter(|l| serde_json::from_str::<Line>(l).is_ok()).map(str::to_owned).collect())
}

/// The newest `limit` events, newest first, read from the end of the log
/// (so the cost does not grow with its length); a torn line is skipped.
pub(crate) fn recent(path: &Path, limit: usize) -> Result<Vec<serde_json::Value>, AuditError> {
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
