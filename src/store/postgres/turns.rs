//! Writing transactions on PostgreSQL: each takes its turn among the
//! writers of every node (one advisory lock), its records read ahead in the
//! round trip that takes the turn and its writes sent with its commit
//! (`tx`); tried again should PostgreSQL refuse it for a concurrent one;
//! alone, or as a part of a group on the node's writer thread (`group`);
//! durable once a barrier covers its commit (`durable`).

use super::durable::Flush;
use super::tx::{self, PgTx};
use super::{blocking_section, group, wait, Pg};
use crate::store::{StoreError, Table, TxAbort, TxError};

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
pub(super) fn take_turn(commit_async: bool) -> String {
    let commit = if commit_async { "SET LOCAL synchronous_commit TO off; " } else { "" };
    format!("{commit}SELECT pg_advisory_xact_lock({WRITE_LOCK})")
}

/// [`take_turn`] with the `BEGIN` before it, in one round trip.
fn begin_in_turn(commit_async: bool) -> String {
    format!("BEGIN; {}", take_turn(commit_async))
}

/// Whether PostgreSQL refused a transaction only because a concurrent one
/// won (serialization failure or deadlock): it is tried again.
fn retryable(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code().is_some_and(|c| *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

impl Pg {
    /// Runs `f` as one transaction, in its turn among the writers (tried
    /// again should PostgreSQL refuse it for a concurrent one), `records`
    /// read as it begins; `durable` then waits until the commit is on
    /// PostgreSQL's disk (the default), otherwise it is left to
    /// PostgreSQL's background writer.
    pub(in crate::store) fn transaction<R, E>(
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
    pub(in crate::store) async fn grouped<R, E, F>(&self, records: Vec<(Table, String)>, f: F) -> Result<R, TxError<E>>
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
    pub(super) fn run_parts(&self, durable: bool, parts: &mut [&mut dyn group::Part]) -> Result<(), StoreError> {
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
