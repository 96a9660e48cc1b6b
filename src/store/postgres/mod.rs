//! The shared backend: PostgreSQL, for several nodes acting as one. Each
//! table is a PostgreSQL table of `(key, value json)`; writing transactions
//! (`turns`) take turns on one advisory lock (serial, so each sees every earlier one
//! committed: the guarantees of sled's serializable transactions), and are
//! tried again on a deadlock or serialization failure all the same. A
//! writer's turn ends at its commit, before the disk: a commit then returns
//! once PostgreSQL has made it durable, waiting outside the turn, so that
//! concurrent writers share the disk's flushes (`durable`); another
//! session may read a commit a moment before it is on disk, as with
//! PostgreSQL's asynchronous commit, but nobody is answered before it is.
//! A writing transaction begins and takes its turn in one round trip, and
//! its writes go out together with its commit, pipelined (`tx`), so the
//! turn ends one round trip after its last read. The transactions many
//! callers make at once (accept-invite's) go to the node's writer thread,
//! which runs those handed over while a group runs as the parts of one
//! transaction in the next, one turn for the lot (`group`). The
//! domain's transaction closures are synchronous, so each statement inside
//! one runs on the connection's async client from a blocking section
//! (`block_in_place`): the appliance's multi-threaded runtime keeps every
//! other task running meanwhile (a caller on a single-threaded runtime, the
//! Web Push sender's, waits on a helper thread).

mod channel;
mod durable;
mod group;
pub(crate) mod migrations;
mod turns;
mod tx;

use super::table::{Table, TABLES};
use super::StoreError;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::future::Future;
use std::time::Duration;

pub(crate) use channel::Leadership;
use durable::{Flush, Flusher};
pub(super) use tx::PgTx;

/// Connections a node keeps open to PostgreSQL at most.
const POOL_SIZE: usize = 16;

type Records = Vec<(String, Vec<u8>)>;

/// A PostgreSQL database (cheap to clone).
#[derive(Clone)]
pub(super) struct Pg {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    handle: tokio::runtime::Handle,
    flush: Flush,
    flusher: std::sync::Arc<Flusher>,
    /// This node's writer thread (None in the thread's own handle).
    writer: Option<std::sync::Arc<group::Writer>>,
}

/// Where a PostgreSQL database is, and how to reach it.
#[derive(Clone)]
pub struct Connection {
    /// The connection URL (`postgres://user:password@host:port/db`).
    pub url: String,
    /// TLS for the connection (used when the server offers it, required
    /// with `sslmode=require`).
    pub tls: rustls::ClientConfig,
}

fn name(table: Table) -> &'static str {
    TABLES[table as usize].1
}

/// The first key after every key that starts with `prefix`.
fn upper_bound(prefix: &str) -> String {
    format!("{prefix}{}", char::MAX)
}

impl Pg {
    /// Connects and applies the migrations; those applied now.
    pub(super) async fn migrate(connection: &Connection) -> Result<Vec<i32>, StoreError> {
        let pg = Pg::pool(connection)?;
        let mut client = pg.pool.get().await?;
        migrations::apply(&mut client).await
    }

    /// Connects (a pool, opened lazily) and applies the migrations.
    pub(super) async fn connect(connection: &Connection) -> Result<Pg, StoreError> {
        let mut pg = Pg::pool(connection)?;
        let mut client = pg.pool.get().await?;
        migrations::apply(&mut client).await?;
        pg.flush = Flush::probe(&client).await?;
        let writer = group::Writer::start(pg.clone()).map_err(|e| StoreError::Pool(format!("writer thread: {e}")))?;
        pg.writer = Some(std::sync::Arc::new(writer));
        Ok(pg)
    }

    fn pool(connection: &Connection) -> Result<Pg, StoreError> {
        let config: tokio_postgres::Config = connection.url.parse()?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(connection.tls.clone());
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        let handle = tokio::runtime::Handle::current();
        Ok(Pg { pool, config, tls, handle, flush: Flush::InTurn, flusher: Default::default(), writer: None })
    }

    /// Runs `work` to completion from synchronous code.
    fn blocking<T: Send>(&self, work: impl Future<Output = T> + Send) -> T {
        blocking_section(|| wait(&self.handle, work))
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    }

    fn rows(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Records, StoreError> {
        let rows = self.blocking(self.query(sql, params))?;
        Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1).into_bytes())).collect())
    }

    pub(super) fn get(&self, table: Table, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sql = format!("SELECT key, value::text FROM {} WHERE key = $1", name(table));
        Ok(self.rows(&sql, &[&key])?.pop().map(|(_, v)| v))
    }

    pub(super) fn contains(&self, table: Table, key: &str) -> Result<bool, StoreError> {
        let sql = format!("SELECT 1 FROM {} WHERE key = $1", name(table));
        Ok(!self.blocking(self.query(&sql, &[&key]))?.is_empty())
    }

    pub(super) fn scan(&self, table: Table) -> Result<Records, StoreError> {
        self.rows(&format!("SELECT key, value::text FROM {} ORDER BY key", name(table)), &[])
    }

    pub(super) fn scan_prefix(
        &self,
        table: Table,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Records, StoreError> {
        let sql = format!(
            "SELECT key, value::text FROM {} WHERE key >= $1 AND key < $2 AND ($3::text IS NULL OR key > $3) \
             ORDER BY key LIMIT $4",
            name(table)
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.rows(&sql, &[&prefix, &upper_bound(prefix), &after, &limit])
    }

    pub(super) fn last(&self, table: Table, n: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let sql = format!("SELECT key, value::text FROM {} ORDER BY key DESC LIMIT $1", name(table));
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        Ok(self.rows(&sql, &[&n])?.into_iter().map(|(_, v)| v).collect())
    }

    pub(super) fn next_id(&self) -> Result<u64, StoreError> {
        let rows = self.blocking(self.query("SELECT nextval('topdog_ids')", &[]))?;
        let id: i64 = rows.first().map(|r| r.get(0)).unwrap_or_default();
        Ok(u64::try_from(id).unwrap_or_default())
    }

    /// A record (None: no such record) and a new id, in one statement.
    pub(super) fn get_with_new_id(&self, table: Table, key: &str) -> Result<(Option<Vec<u8>>, u64), StoreError> {
        let sql = format!("SELECT (SELECT value::text FROM {} WHERE key = $1), nextval('topdog_ids')", name(table));
        let rows = self.blocking(self.query(&sql, &[&key]))?;
        let row = rows.first().ok_or_else(|| StoreError::Schema("nextval returned no row".into()))?;
        let value: Option<String> = row.get(0);
        let id = u64::try_from(row.get::<_, i64>(1)).unwrap_or_default();
        Ok((value.map(String::into_bytes), id))
    }

    pub(super) fn count(&self, table: Table) -> Result<usize, StoreError> {
        let rows = self.blocking(self.query(&format!("SELECT count(*) FROM {}", name(table)), &[]))?;
        let n: i64 = rows.first().map(|r| r.get(0)).unwrap_or_default();
        Ok(usize::try_from(n).unwrap_or_default())
    }

    /// Writes one record, in its turn among the writers.
    pub(super) async fn insert(&self, table: Table, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let value = String::from_utf8(bytes).map_err(|e| StoreError::Pool(e.to_string()))?;
        let mut client = self.pool.get().await?;
        let txn = client.transaction().await?;
        txn.batch_execute(&turns::take_turn(self.flush == Flush::AfterTurn)).await?;
        let statement = txn.prepare_cached(&tx::upsert(table)).await?;
        txn.execute(&statement, &[&key, &value]).await?;
        txn.commit().await?;
        if self.flush == Flush::AfterTurn {
            self.flusher.wait(&client).await?;
        }
        Ok(())
    }

    /// Every record of every table, from one snapshot.
    pub(super) async fn export(&self) -> Result<Vec<(Table, Records)>, StoreError> {
        let mut client = self.pool.get().await?;
        let txn = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let mut tables = Vec::with_capacity(TABLES.len());
        for (table, name) in TABLES {
            let rows = txn.query(&format!("SELECT key, value::text FROM {name} ORDER BY key"), &[]).await?;
            let records = rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1).into_bytes())).collect();
            tables.push((table, records));
        }
        txn.commit().await?;
        Ok(tables)
    }

    /// Writes every record in one transaction; ids given from now on come
    /// after `next_id`.
    pub(super) async fn import(&self, tables: &[(Table, Records)], next_id: u64) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let txn = client.transaction().await?;
        for (table, records) in tables {
            let statement = txn.prepare(&tx::upsert(*table)).await?;
            for (key, value) in records {
                let value = String::from_utf8_lossy(value);
                txn.execute(&statement, &[key, &value.as_ref()]).await?;
            }
        }
        let next = i64::try_from(next_id).unwrap_or(i64::MAX);
        txn.execute("SELECT setval('topdog_ids', GREATEST($1, (SELECT last_value FROM topdog_ids)))", &[&next]).await?;
        txn.commit().await?;
        Ok(())
    }
}

/// Runs `f`, which blocks, without stalling the other tasks of a
/// multi-threaded runtime's worker (its tasks move to another thread).
fn blocking_section<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Waits for `work` on the database's runtime from synchronous code: from a
/// single-threaded runtime's thread (which cannot block on another), on a
/// helper thread.
fn wait<T: Send>(handle: &tokio::runtime::Handle, work: impl Future<Output = T> + Send) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::CurrentThread) => std::thread::scope(|scope| {
            scope.spawn(|| handle.block_on(work)).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        }),
        _ => handle.block_on(work),
    }
}
