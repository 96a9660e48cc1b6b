//! The chain both kinds of log share: an entry as stored, with its
//! sequence number and the hash of the entry before it, and the walk that
//! checks one entry follows another.

use super::{AuditError, Event};
use crate::clock::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of the first entry.
pub(super) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Line {
    pub seq: u64,
    pub time: Timestamp,
    #[serde(flatten)]
    pub event: Event,
    pub prev: String,
}

/// The SHA-256 of an entry's text (the next entry's `prev`).
pub(super) fn hash_line(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// Where a chain stands: entries so far and the last one's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Default for Head {
    fn default() -> Self {
        Head { seq: 0, hash: GENESIS.to_owned() }
    }
}

impl Head {
    /// The entry after this head recording `event` at `time`, as text; and
    /// the head after it.
    pub(super) fn next(&self, event: Event, time: Timestamp) -> Result<(String, Head), serde_json::Error> {
        let line = Line { seq: self.seq + 1, time, event, prev: self.hash.clone() };
        let text = serde_json::to_string(&line)?;
        let head = Head { seq: line.seq, hash: hash_line(&text) };
        Ok((text, head))
    }

    /// The entries after this head recording each event at its time, in
    /// order, as (sequence number, text); and the head after them.
    pub(super) fn extend(
        &self,
        entries: impl IntoIterator<Item = (Event, Timestamp)>,
    ) -> Result<(Vec<(u64, String)>, Head), serde_json::Error> {
        let mut head = self.clone();
        let mut texts = Vec::new();
        for (event, time) in entries {
            let (text, next) = head.next(event, time)?;
            texts.push((next.seq, text));
            head = next;
        }
        Ok((texts, head))
    }

    /// Moves past `line` (read from `text`, entry `number` of the log),
    /// unless it does not follow this head.
    pub(super) fn follow(&mut self, line: &Line, text: &str, number: u64) -> Result<(), AuditError> {
        let broken = |reason: &str| AuditError::Broken { line: number, reason: reason.to_owned() };
        if line.seq != self.seq + 1 {
            return Err(broken("sequence number out of order"));
        }
        if line.prev != self.hash {
            return Err(broken("does not follow the line before it (edited, removed or reordered)"));
        }
        *self = Head { seq: line.seq, hash: hash_line(text) };
        Ok(())
    }
}
