//! Transactions as the domain sees them: the view of the store inside one
//! (`Tx`: get, put, remove on either backend), how a closure refuses
//! (`TxAbort`), and how a transaction ends when it does not commit
//! (`TxError`).

use super::table::Table;
use super::{postgres, sled_db, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{TransactionalTree, UnabortableTransactionError};

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

/// A failure of the database under a transaction.
#[derive(Debug)]
pub enum Fault {
    /// sled's (a conflict is retried by sled).
    Sled(UnabortableTransactionError),
    /// PostgreSQL's (a serialization failure is retried by the store).
    Postgres(tokio_postgres::Error),
}

/// Why a transaction closure stopped: return `TxAbort::Domain` to refuse.
pub enum TxAbort<E> {
    /// The domain refused the change.
    Domain(E),
    /// A storage-level conflict or failure (retried or reported by the store).
    Storage(Fault),
    /// A record could not be (de)serialised.
    Codec(serde_json::Error),
}

impl<E> From<UnabortableTransactionError> for TxAbort<E> {
    fn from(e: UnabortableTransactionError) -> Self {
        TxAbort::Storage(Fault::Sled(e))
    }
}

impl<E> From<Fault> for TxAbort<E> {
    fn from(e: Fault) -> Self {
        TxAbort::Storage(e)
    }
}

/// The view of the store inside a transaction.
pub struct Tx<'a> {
    pub(super) inner: TxInner<'a>,
}

pub(super) enum TxInner<'a> {
    Sled(&'a [TransactionalTree]),
    Postgres(&'a postgres::PgTx<'a>),
}

impl Tx<'_> {
    /// Reads a record.
    pub fn get<T: DeserializeOwned, E>(&self, table: Table, key: &str) -> Result<Option<T>, TxAbort<E>> {
        let bytes = match &self.inner {
            TxInner::Sled(trees) => sled_db::tx_get(trees, table, key)?,
            TxInner::Postgres(tx) => tx.get(table, key)?,
        };
        match bytes {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(TxAbort::Codec),
            None => Ok(None),
        }
    }

    /// Writes a record.
    pub fn put<T: Serialize, E>(&self, table: Table, key: &str, value: &T) -> Result<(), TxAbort<E>> {
        let bytes = serde_json::to_vec(value).map_err(TxAbort::Codec)?;
        match &self.inner {
            TxInner::Sled(trees) => sled_db::tx_put(trees, table, key, bytes)?,
            TxInner::Postgres(tx) => tx.put(table, key, bytes)?,
        }
        Ok(())
    }

    /// Removes a record.
    pub fn remove<E>(&self, table: Table, key: &str) -> Result<(), TxAbort<E>> {
        match &self.inner {
            TxInner::Sled(trees) => sled_db::tx_remove(trees, table, key)?,
            TxInner::Postgres(tx) => tx.remove(table, key)?,
        }
        Ok(())
    }
}
