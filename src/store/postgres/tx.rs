//! One writing transaction in progress on PostgreSQL: the records it names
//! are read as it begins, other reads go to the database at once (seeing
//! this transaction's own writes first); writes are held and sent
//! together, pipelined, just before the commit, so that a transaction of n
//! writes costs one round trip for them, not n, while it holds the
//! writers' lock.

use super::{name, wait};
use crate::store::table::Table;
use crate::store::Fault;
use std::cell::RefCell;
use std::collections::HashMap;

/// A write held until the commit.
pub(super) enum Write {
    Put { table: Table, key: String, value: String },
    Remove { table: Table, key: String },
}

/// What the held writes leave of each record they touch, or what a read
/// ahead found (None: no such record).
type Records = HashMap<(Table, String), Option<Vec<u8>>>;

/// One transaction in progress.
pub(in crate::store) struct PgTx<'a> {
    client: &'a deadpool_postgres::ClientWrapper,
    handle: &'a tokio::runtime::Handle,
    writes: RefCell<Vec<Write>>,
    written: RefCell<Records>,
    read_ahead: RefCell<Records>,
}

/// `INSERT … ON CONFLICT UPDATE` of one record of `table`.
pub(super) fn upsert(table: Table) -> String {
    format!(
        "INSERT INTO {} (key, value) VALUES ($1, $2::text::json) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        name(table)
    )
}

fn delete(table: Table) -> String {
    format!("DELETE FROM {} WHERE key = $1", name(table))
}

impl<'a> PgTx<'a> {
    /// A transaction on `client` that has read `records` (`found`) already.
    pub(super) fn new(
        client: &'a deadpool_postgres::ClientWrapper,
        handle: &'a tokio::runtime::Handle,
        records: &[(Table, String)],
        found: Vec<Option<Vec<u8>>>,
    ) -> PgTx<'a> {
        let read_ahead = RefCell::new(records.iter().cloned().zip(found).collect());
        PgTx { client, handle, writes: RefCell::default(), written: RefCell::default(), read_ahead }
    }

    /// The writes held, in order, to send before the commit.
    pub(super) fn into_writes(self) -> Vec<Write> {
        self.writes.into_inner()
    }

    pub(in crate::store) fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, Fault> {
        let record = (table, key.to_owned());
        if let Some(known) = self.written.borrow().get(&record).or(self.read_ahead.borrow().get(&record)) {
            return Ok(known.clone());
        }
        wait(self.handle, read(self.client, table, key)).map_err(Fault::Postgres)
    }

    pub(in crate::store) fn put(&self, table: Table, key: &str, bytes: Vec<u8>) -> Result<(), Fault> {
        let value = String::from_utf8_lossy(&bytes).into_owned();
        self.written.borrow_mut().insert((table, key.to_owned()), Some(bytes));
        self.writes.borrow_mut().push(Write::Put { table, key: key.to_owned(), value });
        Ok(())
    }

    pub(in crate::store) fn remove(&self, table: Table, key: &str) -> Result<(), Fault> {
        self.written.borrow_mut().insert((table, key.to_owned()), None);
        self.writes.borrow_mut().push(Write::Remove { table, key: key.to_owned() });
        Ok(())
    }
}

/// One record of `table`, as the transaction sees it.
async fn read(
    client: &deadpool_postgres::ClientWrapper,
    table: Table,
    key: &str,
) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    let statement = client.prepare_cached(&format!("SELECT value::text FROM {} WHERE key = $1", name(table))).await?;
    let rows = client.query(&statement, &[&key]).await?;
    Ok(rows.first().map(|r| r.get::<_, String>(0).into_bytes()))
}

/// `records`, read pipelined.
pub(super) async fn read_all(
    client: &deadpool_postgres::ClientWrapper,
    records: &[(Table, String)],
) -> Result<Vec<Option<Vec<u8>>>, tokio_postgres::Error> {
    futures_util::future::try_join_all(records.iter().map(|(table, key)| read(client, *table, key))).await
}

/// Sends `writes` in order and the commit after them, pipelined: each
/// statement is prepared (once per connection), then all go out without
/// waiting for one another, so the writers' turn ends one round trip after
/// the transaction's last read. Should a write fail, PostgreSQL ends the
/// transaction at that `COMMIT` with a rollback, and the write's error is
/// the answer.
pub(super) async fn send_and_commit(
    client: &deadpool_postgres::ClientWrapper,
    writes: &[Write],
) -> Result<(), tokio_postgres::Error> {
    let mut statements = Vec::with_capacity(writes.len());
    for write in writes {
        statements.push(match write {
            Write::Put { table, .. } => client.prepare_cached(&upsert(*table)).await?,
            Write::Remove { table, .. } => client.prepare_cached(&delete(*table)).await?,
        });
    }
    let sent = writes.iter().zip(&statements).map(|(write, statement)| async move {
        match write {
            Write::Put { key, value, .. } => client.execute(statement, &[key, value]).await,
            Write::Remove { key, .. } => client.execute(statement, &[key]).await,
        }
    });
    // Polled in this order, the writes are queued on the connection before
    // the commit.
    let (written, committed) =
        futures_util::future::join(futures_util::future::try_join_all(sent), client.batch_execute("COMMIT")).await;
    written?;
    committed
}
