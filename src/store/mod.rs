//! The durable store: a table per kind of record, records as JSON, kept in
//! the embedded sled database (the default) or in PostgreSQL (shared by
//! several nodes, `--database-url`). Both give the same guarantees: every
//! acknowledged change goes through `commit` or `insert`, which return only
//! once it is durable; changes to several records happen in one serializable
//! transaction (retried on conflict). Nothing else touches a database.

pub(crate) mod backup;
pub(crate) mod copy;
pub mod datadir;
mod postgres;
mod sled_db;
mod table;
mod tx;
pub(crate) mod upgrade;

pub use postgres::Connection;
pub(crate) use postgres::{migrations, Leadership};
pub use table::Table;
use table::TABLES;
pub(crate) use tx::Fault;
use tx::TxInner;
pub use tx::{Tx, TxAbort, TxError};

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// A storage failure (always an internal error).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an error.
    #[error("database: {0}")]
    Sled(#[from] sled::Error),
    /// PostgreSQL reported an error.
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had.
    #[error("database connection: {0}")]
    Pool(String),
    /// The database's schema is not one this build can use.
    #[error("database schema: {0}")]
    Schema(String),
    /// A stored record could not be (de)serialised.
    #[error("record encoding: {0}")]
    Codec(#[from] serde_json::Error),
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> StoreError {
        match e {
            deadpool_postgres::PoolError::Backend(e) => StoreError::Postgres(e),
            other => StoreError::Pool(other.to_string()),
        }
    }
}

/// The database handle (cheap to clone).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sled(sled_db::SledDb),
    Postgres(Box<postgres::Pg>),
}

/// Every record of every table: `(table name, [(key, JSON value)])`.
pub(crate) type Dump = Vec<(String, Vec<(String, serde_json::Value)>)>;

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    Ok(serde_json::from_slice(bytes)?)
}

fn decode_keyed<T: DeserializeOwned>(records: Vec<(String, Vec<u8>)>) -> Result<Vec<(String, T)>, StoreError> {
    records.into_iter().map(|(k, v)| Ok((k, decode(&v)?))).collect()
}

impl Store {
    /// Opens (or creates) the embedded database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Sled(sled_db::SledDb::open(path)?) })
    }

    /// Connects to PostgreSQL and brings its schema up to date.
    pub async fn connect(connection: &Connection) -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Postgres(Box::new(postgres::Pg::connect(connection).await?)) })
    }

    /// Brings a PostgreSQL database's schema up to date; the migrations
    /// applied now.
    pub(crate) async fn migrate(connection: &Connection) -> Result<Vec<i32>, StoreError> {
        postgres::Pg::migrate(connection).await
    }

    /// Whether the records are in PostgreSQL (shared with other nodes).
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Reads a record.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, StoreError> {
        let bytes = match &self.backend {
            Backend::Sled(db) => db.get(table, key)?,
            Backend::Postgres(db) => db.get(table, key)?,
        };
        bytes.as_deref().map(decode).transpose()
    }

    /// Whether a record exists.
    pub fn contains(&self, table: Table, key: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sled(db) => db.contains(table, key),
            Backend::Postgres(db) => db.contains(table, key),
        }
    }

    /// Every record of a table, in key order.
    pub(crate) fn scan<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<T>, StoreError> {
        Ok(self.scan_keyed(table)?.into_iter().map(|(_, v)| v).collect())
    }

    /// Every record of a table with its key, in key order.
    pub(crate) fn scan_keyed<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, StoreError> {
        let records = match &self.backend {
            Backend::Sled(db) => db.scan(table)?,
            Backend::Postgres(db) => db.scan(table)?,
        };
        decode_keyed(records)
    }

    /// The records whose key starts with `prefix` and sorts after `after`
    /// (all of them when `after` is `None`), in key order, at most `limit`.
    pub(crate) fn scan_prefix<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let records = match &self.backend {
            Backend::Sled(db) => db.scan_prefix(table, prefix, after, limit)?,
            Backend::Postgres(db) => db.scan_prefix(table, prefix, after, limit)?,
        };
        decode_keyed(records)
    }

    /// The last `n` records of a table (highest keys first).
    pub(crate) fn last<T: DeserializeOwned>(&self, table: Table, n: usize) -> Result<Vec<T>, StoreError> {
        let records = match &self.backend {
            Backend::Sled(db) => db.last(table, n)?,
            Backend::Postgres(db) => db.last(table, n)?,
        };
        records.iter().map(|v| decode(v)).collect()
    }

    /// A new id, unique and increasing across restarts (and nodes; gaps
    /// allowed).
    pub(crate) fn next_id(&self) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sled(db) => db.next_id(),
            Backend::Postgres(db) => db.next_id(),
        }
    }

    /// Reads a record and takes a new id (as [`Store::next_id`]) together:
    /// on PostgreSQL, in one round trip.
    pub(crate) fn get_with_new_id<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &str,
    ) -> Result<(Option<T>, u64), StoreError> {
        let (bytes, id) = match &self.backend {
            Backend::Sled(db) => (db.get(table, key)?, db.next_id()?),
            Backend::Postgres(db) => db.get_with_new_id(table, key)?,
        };
        Ok((bytes.as_deref().map(decode).transpose()?, id))
    }

    /// The number of records in a table (0 when it cannot be counted).
    pub(crate) fn count(&self, table: Table) -> usize {
        let counted = match &self.backend {
            Backend::Sled(db) => db.count(table),
            Backend::Postgres(db) => db.count(table),
        };
        counted.unwrap_or_else(|e| {
            tracing::error!(error = %e, ?table, "could not count records");
            0
        })
    }

    /// Writes one record and waits until it is durable.
    pub async fn insert<T: Serialize>(&self, table: Table, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value)?;
        match &self.backend {
            Backend::Sled(db) => db.insert(table, key, bytes).await,
            Backend::Postgres(db) => db.insert(table, key, bytes).await,
        }
    }

    /// A consistent copy of every table (sled: writers wait while it is
    /// taken; PostgreSQL: one snapshot).
    pub(crate) async fn export(&self) -> Result<Dump, StoreError> {
        let tables = match &self.backend {
            Backend::Sled(db) => db.export()?,
            Backend::Postgres(db) => db.export().await?,
        };
        tables
            .into_iter()
            .map(|(table, records)| Ok((TABLES[table as usize].1.to_owned(), decode_keyed(records)?)))
            .collect()
    }

    /// Loads a dump into this (empty) store and makes it durable; ids given
    /// from now on come after `next_id`.
    pub(crate) async fn import(&self, dump: &Dump, next_id: u64) -> Result<(), StoreError> {
        let mut tables = Vec::with_capacity(dump.len());
        for (name, records) in dump {
            let Some((table, _)) = TABLES.iter().find(|(_, n)| n == name) else {
                return Err(StoreError::Codec(serde::de::Error::custom(format!("unknown table {name}"))));
            };
            let encoded = records
                .iter()
                .map(|(k, v)| Ok((k.clone(), serde_json::to_vec(v)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            tables.push((*table, encoded));
        }
        match &self.backend {
            Backend::Sled(db) => db.import(&tables).await,
            Backend::Postgres(db) => db.import(&tables, next_id).await,
        }
    }

    /// Runs `f` as one transaction over every table (retried on conflict),
    /// then waits until the change is durable.
    pub async fn commit<R, E>(&self, f: impl Fn(&Tx<'_>) -> Result<R, TxAbort<E>>) -> Result<R, TxError<E>> {
        self.commit_reading(&[], f).await
    }

    /// [`Store::commit`] of a transaction that reads `records`: on
    /// PostgreSQL they are read as the transaction begins, in the same round
    /// trip as its taking the writers' turn, so that the turn is held for
    /// one round trip (the writes and the commit) rather than one more for
    /// the reads. On sled, where a read is a lookup in memory, nothing
    /// changes. Only a hint: a record read ahead and never asked for costs a
    /// little, one asked for and not read ahead is read then.
    pub async fn commit_reading<R, E>(
        &self,
        records: &[(Table, String)],
        f: impl Fn(&Tx<'_>) -> Result<R, TxAbort<E>>,
    ) -> Result<R, TxError<E>> {
        match &self.backend {
            Backend::Sled(db) => {
                let result = db.transaction(|trees| f(&Tx { inner: TxInner::Sled(trees) }))?;
                db.flush().await.map_err(TxError::Store)?;
                Ok(result)
            }
            Backend::Postgres(db) => db.transaction(true, records, |tx| f(&Tx { inner: TxInner::Postgres(tx) })),
        }
    }

    /// [`Store::commit_reading`] of a transaction that owns what it
    /// captures: on PostgreSQL it runs in a group with the transactions
    /// that come while an earlier group runs, in one turn among the
    /// writers for the lot (each as if alone, in turn; one that refuses
    /// leaves no write). For the transactions many callers make at once.
    pub async fn commit_grouped<R, E, F>(&self, records: Vec<(Table, String)>, f: F) -> Result<R, TxError<E>>
    where
        R: Send + 'static,
        E: Send + 'static,
        F: Fn(&Tx<'_>) -> Result<R, TxAbort<E>> + Send + 'static,
    {
        match &self.backend {
            Backend::Sled(_) => self.commit_reading(&records, f).await,
            Backend::Postgres(db) => db.grouped(records, move |tx| f(&Tx { inner: TxInner::Postgres(tx) })).await,
        }
    }

    /// Runs `f` as one transaction without waiting for the disk: only for
    /// changes nobody is told about (such as a device's last-seen time).
    pub(crate) fn commit_unflushed<R, E>(&self, f: impl Fn(&Tx<'_>) -> Result<R, TxAbort<E>>) -> Result<R, TxError<E>> {
        match &self.backend {
            Backend::Sled(db) => db.transaction(|trees| f(&Tx { inner: TxInner::Sled(trees) })),
            Backend::Postgres(db) => db.transaction(false, &[], |tx| f(&Tx { inner: TxInner::Postgres(tx) })),
        }
    }

    /// Waits until every change so far is durable (concurrent callers share
    /// one flush; PostgreSQL's commits already are).
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(db) => db.flush().await,
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// Tells every node sharing this store `payload` (nothing to do when
    /// the store is this node's own).
    pub(crate) async fn announce(&self, payload: &str) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(()),
            Backend::Postgres(db) => db.announce(payload).await,
        }
    }

    /// What the nodes sharing this store announce (None when it is this
    /// node's own); an empty message means some may have been missed.
    pub(crate) fn listen(&self) -> Option<tokio::sync::mpsc::Receiver<String>> {
        match &self.backend {
            Backend::Sled(_) => None,
            Backend::Postgres(db) => Some(db.listen()),
        }
    }

    /// Whether this node runs the background work: always, on its own
    /// store; one node at a time, on a shared one.
    pub(crate) fn leadership(&self) -> Leadership {
        match &self.backend {
            Backend::Sled(_) => {
                let (_, receiver) = tokio::sync::watch::channel(true);
                receiver
            }
            Backend::Postgres(db) => db.lead(),
        }
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
