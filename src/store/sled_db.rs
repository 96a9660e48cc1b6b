//! The embedded backend: one sled database with a tree per table, records
//! as JSON bytes. Acknowledged changes wait for a group commit: one flusher
//! thread serves every waiting caller with one `flush()` (sled's own
//! `flush_async` deadlocks its I/O pool under many concurrent callers).

use super::table::{Table, TABLES};
use super::{Fault, StoreError};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use std::path::Path;
use std::sync::Arc;

/// sled's page cache (its default is 1 GiB, which a busy appliance fills).
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

type FlushWaiter = tokio::sync::oneshot::Sender<Result<(), StoreError>>;
type Records = Vec<(String, Vec<u8>)>;

/// The sled database (cheap to clone).
#[derive(Clone)]
pub(super) struct SledDb {
    db: sled::Db,
    flusher: Arc<Flusher>,
    trees: Arc<[sled::Tree]>,
    /// Writers share it; `export` takes it alone, for a consistent copy.
    gate: Arc<std::sync::RwLock<()>>,
}

/// The group-commit thread; dropping the last handle stops it and waits, so
/// the database is closed when the last handle is dropped.
struct Flusher {
    requests: Option<std::sync::mpsc::Sender<FlushWaiter>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves flush requests: each round takes every waiting request, flushes
/// once, and answers them all. Ends when every handle is gone.
fn run_flusher(db: sled::Db, requests: std::sync::mpsc::Receiver<FlushWaiter>) {
    while let Ok(first) = requests.recv() {
        let mut waiters = vec![first];
        waiters.extend(requests.try_iter());
        let outcome = db.flush().map(|_| ());
        for waiter in waiters {
            let _ = waiter.send(outcome.clone().map_err(StoreError::Sled));
        }
    }
}

fn keyed(kv: sled::Result<(sled::IVec, sled::IVec)>) -> Result<(String, Vec<u8>), StoreError> {
    let (k, v) = kv?;
    Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
}

impl SledDb {
    /// Opens (or creates) the database at `path`.
    pub(super) fn open(path: &Path) -> Result<SledDb, StoreError> {
        let db = sled::Config::new().path(path).cache_capacity(CACHE_BYTES).open()?;
        let trees = TABLES.iter().map(|(_, name)| db.open_tree(name)).collect::<Result<Arc<[_]>, _>>()?;
        let (sender, requests) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn({
                let db = db.clone();
                move || run_flusher(db, requests)
            })
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        let flusher = Arc::new(Flusher { requests: Some(sender), thread: Some(thread) });
        Ok(SledDb { db, flusher, trees, gate: Arc::default() })
    }

    fn tree(&self, table: Table) -> &sled::Tree {
        &self.trees[table as usize]
    }

    pub(super) fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(table).get(key.as_bytes())?.map(|v| v.to_vec()))
    }

    pub(super) fn contains(&self, table: Table, key: &str) -> Result<bool, StoreError> {
        Ok(self.tree(table).contains_key(key.as_bytes())?)
    }

    pub(super) fn scan(&self, table: Table) -> Result<Records, StoreError> {
        self.tree(table).iter().map(keyed).collect()
    }

    pub(super) fn scan_prefix(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Records, StoreError> {
        let tree = self.tree(table);
        let iter = match after {
            Some(after) => {
                tree.range::<&[u8], _>((std::ops::Bound::Excluded(after.as_bytes()), std::ops::Bound::Unbounded))
            }
            None => tree.scan_prefix(prefix.as_bytes()),
        };
        iter.take_while(|kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(prefix.as_bytes())))
            .take(limit)
            .map(keyed)
            .collect()
    }

    pub(super) fn last(&self, table: Table, n: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.tree(table).iter().values().rev().take(n).map(|v| Ok(v?.to_vec())).collect()
    }

    pub(super) fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    pub(super) fn count(&self, table: Table) -> Result<usize, StoreError> {
        Ok(self.tree(table).len())
    }

    pub(super) async fn insert(&self, table: Table, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        {
            let _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
            self.tree(table).insert(key.as_bytes(), bytes)?;
        }
        self.flush().await
    }

    /// Every record of every table, taken while writers wait.
    pub(super) fn export(&self) -> Result<Vec<(Table, Records)>, StoreError> {
        let _alone = self.gate.write().unwrap_or_else(|p| p.into_inner());
        TABLES.iter().map(|(table, _)| Ok((*table, self.scan(*table)?))).collect()
    }

    pub(super) async fn import(&self, tables: &[(Table, Records)]) -> Result<(), StoreError> {
        for (table, records) in tables {
            for (key, value) in records {
                self.tree(*table).insert(key.as_bytes(), value.as_slice())?;
            }
        }
        self.flush().await
    }

    /// Runs `f` as one sled transaction over every table (retried on
    /// conflict by sled).
    pub(super) fn transaction<R, E>(
        &self,
        f: impl Fn(&[TransactionalTree]) -> Result<R, super::TxAbort<E>>,
    ) -> Result<R, super::TxError<E>> {
        let _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let trees: Vec<&sled::Tree> = self.trees.iter().collect();
        let outcome = trees.as_slice().transaction(|trees| {
            f(trees).map_err(|abort| match abort {
                super::TxAbort::Domain(e) => ConflictableTransactionError::Abort(Inner::Domain(e)),
                super::TxAbort::Codec(e) => ConflictableTransactionError::Abort(Inner::Codec(e)),
                super::TxAbort::Storage(Fault::Sled(e)) => e.into(),
                super::TxAbort::Storage(Fault::Postgres(e)) => ConflictableTransactionError::Abort(Inner::Other(e)),
            })
        });
        outcome.map_err(|e| match e {
            TransactionError::Abort(Inner::Domain(e)) => super::TxError::Domain(e),
            TransactionError::Abort(Inner::Codec(e)) => super::TxError::Store(StoreError::Codec(e)),
            TransactionError::Abort(Inner::Other(e)) => super::TxError::Store(StoreError::Postgres(e)),
            TransactionError::Storage(e) => super::TxError::Store(StoreError::Sled(e)),
        })
    }

    /// Waits until every change so far is on disk (concurrent callers share
    /// one flush).
    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let gone = || StoreError::Sled(sled::Error::ReportableBug("the store flusher has stopped".into()));
        let sender = self.flusher.requests.as_ref().ok_or_else(gone)?;
        sender.send(done).map_err(|_| gone())?;
        wait.await.map_err(|_| gone())?
    }
}

enum Inner<E> {
    Domain(E),
    Codec(serde_json::Error),
    Other(tokio_postgres::Error),
}

/// A read in a sled transaction.
pub(super) fn tx_get(trees: &[TransactionalTree], table: Table, key: &str) -> Result<Option<Vec<u8>>, Fault> {
    Ok(trees[table as usize].get(key.as_bytes()).map_err(Fault::Sled)?.map(|v| v.to_vec()))
}

/// A write in a sled transaction.
pub(super) fn tx_put(trees: &[TransactionalTree], table: Table, key: &str, bytes: Vec<u8>) -> Result<(), Fault> {
    trees[table as usize].insert(key.as_bytes(), bytes).map_err(Fault::Sled)?;
    Ok(())
}

/// A removal in a sled transaction.
pub(super) fn tx_remove(trees: &[TransactionalTree], table: Table, key: &str) -> Result<(), Fault> {
    trees[table as usize].remove(key.as_bytes()).map_err(Fault::Sled)?;
    Ok(())
}
