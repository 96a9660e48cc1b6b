//! The audit log of nodes sharing a PostgreSQL store: one chain in the
//! store, each entry keyed by its sequence number, and the chain's head
//! beside it, both written in the transaction that appends (the writers
//! take turns), so entries from every node follow one another. `verify`
//! also catches entries removed from the end, which the head still counts.

use super::chain::{Head, Line};
use super::{AuditError, Event, Report};
use crate::clock::Timestamp;
use crate::store::{Store, Table, TxAbort};
use std::convert::Infallible;

/// Where the head is kept (in the `meta` table).
const HEAD: &str = "audit_head";

fn key(seq: u64) -> String {
    format!("{seq:020}")
}

/// Appends each event at its time, in order, after the chain's head (one
/// transaction for all).
pub(super) async fn append(store: &Store, entries: &[(Event, Timestamp)]) -> Result<(), AuditError> {
    store
        .commit_reading::<_, Infallible>(&[(Table::Meta, HEAD.to_owned())], |tx| {
            let head: Head = tx.get(Table::Meta, HEAD)?.unwrap_or_default();
            let (texts, head) = head.extend(entries.iter().cloned()).map_err(TxAbort::Codec)?;
            for (seq, text) in &texts {
                tx.put(Table::Audit, &key(*seq), text)?;
            }
            tx.put(Table::Meta, HEAD, &head)
        })
        .await
        .map_err(|e| AuditError::Store(e.into()))
}

/// The newest `limit` events, newest first.
pub(super) fn recent(store: &Store, limit: usize) -> Result<Vec<serde_json::Value>, AuditError> {
    let texts: Vec<String> = store.last(Table::Audit, limit)?;
    Ok(texts.iter().filter_map(|t| serde_json::from_str(t).ok()).collect())
}

/// Checks the chain from its first entry to the recorded head.
pub(crate) fn verify(store: &Store) -> Result<Report, AuditError> {
    let mut head = Head::default();
    for (number, (_, text)) in store.scan_keyed::<String>(Table::Audit)?.iter().enumerate() {
        let number = number as u64 + 1;
        let line: Line = serde_json::from_str(text)
            .map_err(|_| AuditError::Broken { line: number, reason: "not a valid audit entry".into() })?;
        head.follow(&line, text, number)?;
    }
    let recorded: Head = store.get(Table::Meta, HEAD)?.unwrap_or_default();
    if recorded != head {
        return Err(AuditError::Broken {
            line: head.seq + 1,
            reason: format!("missing: the log records {} entries (entries removed from its end)", recorded.seq),
        });
    }
    Ok(Report { lines: head.seq, last_hash: head.hash, torn: Vec::new(), torn_tail: None })
}

/// Copies the entries of one appliance's file (in order, checked) into an
/// empty shared log, which continues their chain; how many.
pub(crate) async fn copy(entries: &[String], store: &Store) -> Result<usize, AuditError> {
    let mut head = Head::default();
    for (number, text) in entries.iter().enumerate() {
        let line: Line = serde_json::from_str(text).map_err(|e| AuditError::Io(e.into()))?;
        head.follow(&line, text, number as u64 + 1)?;
    }
    store
        .commit::<_, Infallible>(|tx| {
            for text in entries {
                let seq = serde_json::from_str::<Line>(text).map_err(TxAbort::Codec)?.seq;
                tx.put(Table::Audit, &key(seq), text)?;
            }
            tx.put(Table::Meta, HEAD, &head)
        })
        .await
        .map_err(|e| AuditError::Store(e.into()))?;
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, AuditLog};
    use crate::clock::Clock;

    fn event(action: &str) -> Event {
        Event::new(&Actor::Admin, action, "p1", "ok")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_chain_in_the_store_checked_to_its_head() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("db")).unwrap();
        let log = AuditLog::shared(store.clone(), Clock::system());
        for action in ["invite.create", "invite.accept", "device.revoke"] {
            log.record(event(action)).await;
        }
        assert_eq!(verify(&store).unwrap().lines, 3);
        let newest_first: Vec<_> = log.recent(10).unwrap().iter().map(|e| e["action"].clone()).collect();
        assert_eq!(newest_first, ["device.revoke", "invite.accept", "invite.create"]);

        let first: String = store.get(Table::Audit, &key(1)).unwrap().unwrap();
        store.insert(Table::Audit, &key(1), &first.replace("invite.create", "invite.cancel")).await.unwrap();
        assert!(matches!(verify(&store), Err(AuditError::Broken { line: 2, .. })));
        store.insert(Table::Audit, &key(1), &first).await.unwrap();
        store.commit::<_, Infallible>(|tx| tx.remove(Table::Audit, &key(3))).await.unwrap();
        let cut = verify(&store).unwrap_err().to_string();
        assert!(cut.contains("removed from its end"), "{cut}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_copied_in_continues_its_chain() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("audit.jsonl");
        let file = AuditLog::open(&path, Clock::system()).unwrap();
        file.record(event("invite.create")).await;
        file.record(event("invite.accept")).await;
        let store = Store::open(&tmp.path().join("db")).unwrap();
        let entries = crate::audit::file::entries(&path).unwrap();
        assert_eq!(copy(&entries, &store).await.unwrap(), 2);
        AuditLog::shared(store.clone(), Clock::system()).record(event("device.revoke")).await;
        assert_eq!(verify(&store).unwrap().lines, 3);
    }
}
