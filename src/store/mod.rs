//! The durable store: one sled database with a tree per record kind. Records
//! are JSON. Every change that is acknowledged goes through `commit` or
//! `insert`, which return only after sled has flushed it to disk; changes to
//! several records happen in one transaction. Flushes are group commits: one
//! flusher thread serves every waiting caller with one `flush()` (sled's own
//! `flush_async` deadlocks its I/O pool under many concurrent callers).
//! Nothing else touches sled.

pub mod backup;
pub mod datadir;
mod table;
pub mod upgrade;

pub use table::Table;
use table::TABLES;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::Transactional;
use std::path::Path;
use std::sync::Arc;

/// sled's page cache (its default is 1 GiB, which a busy appliance fills).
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// A storage failure (always an internal error).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error.
    #[error("database: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record could not be (de)serialised.
    #[error("record encoding: {0}")]
    Codec(#[from] serde_json::Error),
}

/// The result of a transaction: the domain's refusal, or a storage failure.
#[derive(Debug)]
pub enum TxError<E> {
    /// The closure refused the change; nothing was written.
    Domain(E),
    /// The store failed.
    Store(StoreError),
}

impl From<TxError<std::convert::Infallible>> for StoreError {
    /// A transaction that cannot refuse can only fail in the store.
    fn from(e: TxError<std::convert::Infallible>) -> StoreError {
        match e {
            TxError::Store(e) => e,
            TxError::Domain(never) => match never {},
        }
    }
}

/// Why a transaction closure stopped: return `TxAbort::Domain` to refuse.
pub enum TxAbort<E> {
    /// The domain refused the change.
    Domain(E),
    /// A storage-level conflict or failure (retried or reported by the store).
    Storage(UnabortableTransactionError),
    /// A record could not be (de)serialised.
    Codec(serde_json::Error),
}

impl<E> From<UnabortableTransactionError> for TxAbort<E> {
    fn from(e: UnabortableTransactionError) -> Self {
        TxAbort::Storage(e)
    }
}

/// The view of the store inside a transaction.
pub struct Tx<'a> {
    trees: &'a [TransactionalTree],
}

impl Tx<'_> {
    fn tree(&self, table: Table) -> &TransactionalTree {
        &self.trees[table as usize]
    }

    /// Reads a record.
    pub fn get<T: DeserializeOwned, E>(&self, table: Table, key: &str) -> Result<Option<T>, TxAbort<E>> {
        match self.tree(table).get(key.as_bytes())? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(TxAbort::Codec),
            None => Ok(None),
        }
    }

    /// Writes a record.
    pub fn put<T: Serialize, E>(&self, table: Table, key: &str, value: &T) -> Result<(), TxAbort<E>> {
        let bytes = serde_json::to_vec(value).map_err(TxAbort::Codec)?;
        self.tree(table).insert(key.as_bytes(), bytes)?;
        Ok(())
    }

    /// Removes a record.
    pub fn remove<E>(&self, table: Table, key: &str) -> Result<(), TxAbort<E>> {
        self.tree(table).remove(key.as_bytes())?;
        Ok(())
    }
}

enum Inner<E> {
    Domain(E),
    Codec(serde_json::Error),
}

type FlushWaiter = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

/// The database handle (cheap to clone).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    flusher: Arc<Flusher>,
    trees: Arc<[sled::Tree]>,
    /// Writers share it; `export` takes it alone, for a consistent copy.
    gate: Arc<std::sync::RwLock<()>>,
}

/// Every record of every table: `(table name, [(key, JSON value)])`.
pub type Dump = Vec<(String, Vec<(String, serde_json::Value)>)>;

/// The group-commit thread; dropping the last handle stops it and waits, so
/// the database is closed when the last `Store` is dropped.
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
/// once, and answers them all. Ends when every `Store` handle is gone.
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

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
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
        Ok(Store { db, flusher, trees, gate: Arc::default() })
    }

    fn tree(&self, table: Table) -> &sled::Tree {
        &self.trees[table as usize]
    }

    /// Reads a record.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, StoreError> {
        match self.tree(table).get(key.as_bytes())? {
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Whether a record exists.
    pub fn contains(&self, table: Table, key: &str) -> Result<bool, StoreError> {
        Ok(self.tree(table).contains_key(key.as_bytes())?)
    }

    /// Every record of a table, in key order.
    pub fn scan<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<T>, StoreError> {
        self.tree(table).iter().values().map(|v| Ok(serde_json::from_slice(&v?)?)).collect()
    }

    /// Every record of a table with its key, in key order.
    pub fn scan_keyed<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, StoreError> {
        self.tree(table)
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((String::from_utf8_lossy(&k).into_owned(), serde_json::from_slice(&v)?))
            })
            .collect()
    }

    /// The records whose key starts with `prefix` and sorts after `after`
    /// (all of them when `after` is `None`), in key order, at most `limit`.
    pub fn scan_prefix<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let tree = self.tree(table);
        let iter = match after {
            Some(after) => {
                tree.range::<&[u8], _>((std::ops::Bound::Excluded(after.as_bytes()), std::ops::Bound::Unbounded))
            }
            None => tree.scan_prefix(prefix.as_bytes()),
        };
        iter.take_while(|kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(prefix.as_bytes())))
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((String::from_utf8_lossy(&k).into_owned(), serde_json::from_slice(&v)?))
            })
            .collect()
    }

    /// The last `n` records of a table (highest keys first).
    pub fn last<T: DeserializeOwned>(&self, table: Table, n: usize) -> Result<Vec<T>, StoreError> {
        self.tree(table).iter().values().rev().take(n).map(|v| Ok(serde_json::from_slice(&v?)?)).collect()
    }

    /// A new id, unique and increasing across restarts (gaps allowed).
    pub fn next_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// The number of records in a table.
    pub fn count(&self, table: Table) -> usize {
        self.tree(table).len()
    }

    /// Writes one record and waits until it is on disk.
    pub async fn insert<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value)?;
        {
            let _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
            self.tree(table).insert(key.as_bytes(), bytes)?;
        }
        self.flush().await
    }

    /// A consistent copy of every table (writers wait while it is taken).
    pub fn export(&self) -> Result<Dump, StoreError> {
        let _alone = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let mut dump = Vec::new();
        for (table, name) in TABLES {
            let records = self
                .tree(table)
                .iter()
                .map(|kv| {
                    let (k, v) = kv?;
                    Ok((String::from_utf8_lossy(&k).into_owned(), serde_json::from_slice(&v)?))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            dump.push((name.to_owned(), records));
        }
        Ok(dump)
    }

    /// Loads a dump into this (empty) store and flushes it.
    pub async fn import(&self, dump: &Dump) -> Result<(), StoreError> {
        for (name, records) in dump {
            let Some((table, _)) = TABLES.iter().find(|(_, n)| n == name) else {
                return Err(StoreError::Codec(serde::de::Error::custom(format!("unknown table {name}"))));
            };
            for (key, value) in records {
                self.tree(*table).insert(key.as_bytes(), serde_json::to_vec(value)?)?;
            }
        }
        self.flush().await
    }

    /// Runs `f` as one transaction over every table (retried on conflict),
    /// then waits until the change is on disk.
    pub async fn commit<R, E>(&self, f: impl Fn(&Tx<'_>) -> Result<R, TxAbort<E>>) -> Result<R, TxError<E>> {
        let result = self.commit_unflushed(f)?;
        self.flush().await.map_err(TxError::Store)?;
        Ok(result)
    }

    /// Runs `f` as one transaction without waiting for the disk: only for
    /// changes nobody is told about (such as a device's last-seen time).
    pub fn commit_unflushed<R, E>(&self, f: impl Fn(&Tx<'_>) -> Result<R, TxAbort<E>>) -> Result<R, TxError<E>> {
        let _shared = self.gate.read().unwrap_or_else(|p| p.into_inner());
        let trees: Vec<&sled::Tree> = self.trees.iter().collect();
        let outcome = trees.as_slice().transaction(|trees| {
            let tx = Tx { trees };
            f(&tx).map_err(|abort| match abort {
                TxAbort::Domain(e) => ConflictableTransactionError::Abort(Inner::Domain(e)),
                TxAbort::Codec(e) => ConflictableTransactionError::Abort(Inner::Codec(e)),
                TxAbort::Storage(e) => e.into(),
            })
        });
        outcome.map_err(|e| match e {
            TransactionError::Abort(Inner::Domain(e)) => TxError::Domain(e),
            TransactionError::Abort(Inner::Codec(e)) => TxError::Store(StoreError::Codec(e)),
            TransactionError::Storage(e) => TxError::Store(StoreError::Sled(e)),
        })
    }

    /// Waits until every change so far is on disk (concurrent callers share
    /// one flush).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let gone = || StoreError::Sled(sled::Error::ReportableBug("the store flusher has stopped".into()));
        let sender = self.flusher.requests.as_ref().ok_or_else(gone)?;
        sender.send(done).map_err(|_| gone())?;
        wait.await.map_err(|_| gone())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_survive_reopen_and_aborts_change_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store.insert(Table::Devices, "a", &1u32).await.unwrap();
        let refused: Result<(), TxError<&str>> = store
            .commit(|tx| {
                tx.put(Table::Devices, "b", &2u32)?;
                Err(TxAbort::Domain("no"))
            })
            .await;
        assert!(matches!(refused, Err(TxError::Domain("no"))));
        store
            .commit(|tx| {
                let a: u32 = tx.get::<u32, ()>(Table::Devices, "a")?.unwrap_or(0);
                tx.put::<_, ()>(Table::Devices, "a", &(a + 10))
            })
            .await
            .map_err(|_| "commit")
            .unwrap();
        drop(store);
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(store.get::<u32>(Table::Devices, "a").unwrap(), Some(11));
        assert_eq!(store.get::<u32>(Table::Devices, "b").unwrap(), None);
        assert_eq!(store.scan::<u32>(Table::Devices).unwrap(), vec![11]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_durable_writes_all_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..400u32 {
            let store = store.clone();
            tasks.spawn(async move { store.insert(Table::Invites, &i.to_string(), &i).await });
        }
        let all = async {
            while let Some(done) = tasks.join_next().await {
                done.unwrap().unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), all).await.expect("group commit stalled");
        assert_eq!(store.count(Table::Invites), 400);
    }
}
