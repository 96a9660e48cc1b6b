//! The shared backend: PostgreSQL, for several nodes acting as one. Each
//! table is a PostgreSQL table of `(key, value json)`; writing transactions
//! take turns on one advisory lock (serial, so each sees every earlier one
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
mod tx;

use super::table::{Table, TABLES};
use super::{StoreError, TxAbort, TxError};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::future::Future;
use std::time::Duration;

pub(crate) use channel::Leadership;
use durable::{Flush, Flusher};
pub(super) use tx::PgTx;

/// Connections a node keeps open to PostgreSQL at most.
const POOL_SIZE: usize = 16;
/// Tries of one transaction that keeps meeting concurrent ones.
const MAX_ATTEMPTS: u32 = 60;
/// The advisory lock every writing transaction holds: writers (of every
/// node) take turns, as one writer would. Under SERIALIZABLE, concurrent
/// writers met on the hot records (the seat and device counters every
/// pairing updates) and retried each other dozens of times under load.
const WRITE_LOCK: i64 = 0x7d06_0002;

/// How a writing transaction takes its turn among the writers; with
/// `commit_async`, a commit that does not wait for the disk, so that the
/// turn is not held through the WAL flush.
fn take_turn(commit_async: bool) -> String {
    let commit = if commit_async { "SET LOCAL synchronous_commit TO off; " } else { "" };
    format!("{commit}SELECT pg_advisory_xact_lock({WRITE_LOCK})")
}

/// [`take_turn`] with the `BEGIN` before it, in one round trip.
fn begin_in_turn(commit_async: bool) -> String {
    format!("BEGIN; {}", take_turn(commit_async))
}

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

/// Whether PostgreSQL refused a transaction only because a concurrent one
/// won (serialization failure or deadlock): it is tried again.
fn retryable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
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
        txn.batch_execute(&take_turn(self.flush == Flush::AfterTurn)).await?;
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

    /// Runs `f` as one transaction, in its turn among the writers (tried
    /// again should PostgreSQL refuse it for a concurrent one), `records`
    /// read as it begins; `durable` then waits until the commit is on
    /// PostgreSQL's disk (the default), otherwise it is left to
    /// PostgreSQL's background writer.
    pub(super) fn transaction<R, E>(
        &self,
        durable: bool,
        records: &[(Table, String)],
        f: impl Fn(&PgTx<'_>) -> Result<R, TxAbort<E>>,
    ) -> Result<R, TxError<E>> {
        let mut part = group::Typed::new(records.to_vec(), f);
        self.run_parts(durable, &mut [&mut part]).map_err(TxError::Store)?;
        let result = part.outcome()?;
        if durable && self.flush == Flush::AfterTurn {
            self.blocking(self.durable()).map_err(TxError::Store)?;
        }
        Ok(result)
    }

    /// [`Pg::transaction`] (durable) of a closure handed to this node's
    /// writer thread, to run in a group with the others handed over while
    /// an earlier group runs (`group`).
    pub(super) async fn grouped<R, E, F>(&self, records: Vec<(Table, String)>, f: F) -> Result<R, TxError<E>>
    where
        R: Send + 'static,
        E: Send + 'static,
        F: Fn(&PgTx<'_>) -> Result<R, TxAbort<E>> + Send + 'static,
    {
        let Some(writer) = &self.writer else {
            return self.transaction(true, &records, f);
        };
        let answer = writer.hand(records, f).map_err(TxError::Store)?;
        let result = answer.await.unwrap_or_else(|_| panic!("a grouped transaction panicked"))?;
        if self.flush == Flush::AfterTurn {
            self.durable().await.map_err(TxError::Store)?;
        }
        Ok(result)
    }

    /// Returns once every commit of this node so far is on disk.
    async fn durable(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        Ok(self.flusher.wait(&client).await?)
    }

    /// Runs `parts` one after another as one transaction, in one turn
    /// among the writers (tried again, every part, should PostgreSQL refuse
    /// it for a concurrent one); the writes of those that did not refuse
    /// are committed. With `durable` (and `Flush::InTurn`), the commit
    /// waits for the disk in the turn.
    fn run_parts(&self, durable: bool, parts: &mut [&mut dyn group::Part]) -> Result<(), StoreError> {
        blocking_section(|| {
            let session = Session { client: Some(wait(&self.handle, self.pool.get())?), open: Default::default() };
            let client = session.client.as_ref().ok_or_else(|| StoreError::Pool("no connection".into()))?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self.attempt(client, &session.open, durable, parts) {
                    Err(StoreError::Postgres(e)) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                        tracing::debug!(attempt, error = %e, "a concurrent transaction won; trying again");
                    }
                    outcome => break outcome,
                }
            }
        })
    }

    /// One try of a writing transaction on `client`, the records its parts
    /// name read as it begins (pipelined after the turn is taken); `open`
    /// says whether one is still open on it (see [`Session`]).
    fn attempt(
        &self,
        client: &deadpool_postgres::Object,
        open: &std::cell::Cell<bool>,
        durable: bool,
        parts: &mut [&mut dyn group::Part],
    ) -> Result<(), StoreError> {
        let rollback = || {
            if wait(&self.handle, client.batch_execute("ROLLBACK")).is_ok() {
                open.set(false);
            }
        };
        open.set(true);
        let commit_async = !durable || self.flush == Flush::AfterTurn;
        let begin_sql = begin_in_turn(commit_async);
        let begin = client.batch_execute(&begin_sql);
        let records: Vec<(Table, String)> = parts.iter().flat_map(|part| part.records().iter().cloned()).collect();
        // Polled after it, the reads are queued on the connection behind it.
        let (begun, read) = wait(&self.handle, futures_util::future::join(begin, tx::read_all(client, &records)));
        let read = match begun.and(read) {
            Ok(read) => read,
            Err(e) => {
                rollback();
                return Err(e.into());
            }
        };
        let tx = PgTx::new(client, &self.handle, read);
        for part in parts.iter_mut() {
            match part.run(&tx) {
                group::Ran::Kept => tx.end_part(true),
                group::Ran::Refused => tx.end_part(false),
                group::Ran::Failed(e) => {
                    rollback();
                    return Err(e.into());
                }
            }
        }
        match wait(&self.handle, tx::send_and_commit(client, &tx.into_writes())) {
            Ok(()) => {
                open.set(false);
                Ok(())
            }
            Err(e) => {
                rollback();
                Err(e.into())
            }
        }
    }
}

/// A pooled connection lent to writing transactions, which begin and end
/// by plain statements (so that beginning and taking the turn is one round
/// trip, and the commit goes out with the writes). Dropped with a
/// transaction still open (a panic, or a `ROLLBACK` that failed), it leaves
/// the pool and closes: PostgreSQL then rolls the transaction back and
/// releases the turn, and no other caller gets the connection in the middle
/// of it.
struct Session {
    client: Option<deadpool_postgres::Object>,
    open: std::cell::Cell<bool>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(client) = self.client.take().filter(|_| self.open.get()) {
            drop(deadpool_postgres::Object::take(client));
        }
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
