//! Group commit of writing transactions. Each transaction is a part run
//! inside one PostgreSQL transaction, in the writers' turn; a part that
//! refuses leaves no write (its writes are set aside as it ends), the
//! others' writes commit together. A node's grouped transactions go to
//! one writer thread: those handed over while it runs a group wait and
//! run together in the next, one after another, each seeing the writes of
//! those before it, as if each had had a turn of its own in that order.
//! The turn, which every writer of every node waits for, is then taken
//! once per group rather than once per transaction, with one read ahead,
//! one write and one commit for the lot.

use super::tx::PgTx;
use super::{Pg, StoreError};
use crate::store::{Fault, Table, TxAbort, TxError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tokio::sync::oneshot;

/// Most transactions run together in one group.
const MAX_GROUP: usize = 64;

/// How a part ended.
pub(super) enum Ran {
    /// Its writes stand.
    Kept,
    /// It refused (or could not encode a record): its writes are set aside.
    Refused,
    /// A statement it ran failed: the PostgreSQL transaction is over.
    Failed(tokio_postgres::Error),
}

/// One transaction's part in a group.
pub(super) trait Part {
    /// The records it reads (read ahead for the group).
    fn records(&self) -> &[(Table, String)];
    /// Runs it (again, should the group be tried again).
    fn run(&mut self, tx: &PgTx<'_>) -> Ran;
}

/// A transaction closure and what its last run returned.
pub(super) struct Typed<R, E, F> {
    records: Vec<(Table, String)>,
    f: F,
    result: Option<Result<R, TxAbort<E>>>,
}

impl<R, E, F: Fn(&PgTx<'_>) -> Result<R, TxAbort<E>>> Typed<R, E, F> {
    pub(super) fn new(records: Vec<(Table, String)>, f: F) -> Self {
        Typed { records, f, result: None }
    }

    /// What the caller is answered once the group committed.
    pub(super) fn outcome(&mut self) -> Result<R, TxError<E>> {
        match self.result.take() {
            Some(Ok(result)) => Ok(result),
            Some(Err(TxAbort::Domain(e))) => Err(TxError::Domain(e)),
            Some(Err(TxAbort::Codec(e))) => Err(TxError::Store(StoreError::Codec(e))),
            Some(Err(TxAbort::Storage(fault))) => Err(TxError::Store(StoreError::Pool(format!("{fault:?}")))),
            None => Err(TxError::Store(StoreError::Pool("the transaction did not run".into()))),
        }
    }
}

impl<R, E, F: Fn(&PgTx<'_>) -> Result<R, TxAbort<E>>> Part for Typed<R, E, F> {
    fn records(&self) -> &[(Table, String)] {
        &self.records
    }

    fn run(&mut self, tx: &PgTx<'_>) -> Ran {
        match (self.f)(tx) {
            Err(TxAbort::Storage(Fault::Postgres(e))) => {
                self.result = None;
                Ran::Failed(e)
            }
            result => {
                let kept = result.is_ok();
                self.result = Some(result);
                if kept {
                    Ran::Kept
                } else {
                    Ran::Refused
                }
            }
        }
    }
}

/// A transaction handed to the writer thread, and who waits for it.
pub(super) trait Queued: Part + Send {
    /// Answers the caller: `committed` is the group's commit (or failure).
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

/// What is answered to a grouped transaction's caller.
pub(super) type Answer<R, E> = oneshot::Receiver<Result<R, TxError<E>>>;

/// [`Typed`] with its caller's answer. A closure that panics is set aside
/// like a refusal and its caller's answer dropped (it panics in turn).
struct Handed<R, E, F> {
    typed: Typed<R, E, F>,
    reply: Option<oneshot::Sender<Result<R, TxError<E>>>>,
}

impl<R: Send, E: Send, F: Fn(&PgTx<'_>) -> Result<R, TxAbort<E>> + Send> Part for Handed<R, E, F> {
    fn records(&self) -> &[(Table, String)] {
        self.typed.records()
    }

    fn run(&mut self, tx: &PgTx<'_>) -> Ran {
        catch_unwind(AssertUnwindSafe(|| self.typed.run(tx))).unwrap_or_else(|_| {
            self.reply = None;
            Ran::Refused
        })
    }
}

impl<R: Send, E: Send, F: Fn(&PgTx<'_>) -> Result<R, TxAbort<E>> + Send> Queued for Handed<R, E, F> {
    fn finish(mut self: Box<Self>, committed: Result<(), StoreError>) {
        let answer = committed.map_err(TxError::Store).and_then(|()| self.typed.outcome());
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(answer);
        }
    }
}

/// The way to a node's writer thread (its thread ends once every handle
/// is dropped).
pub(super) struct Writer {
    queue: std::sync::mpsc::Sender<Box<dyn Queued>>,
}

impl Writer {
    /// Starts the writer thread for `pg` (a handle without a writer of its
    /// own, so that the thread does not keep itself alive).
    pub(super) fn start(pg: Pg) -> std::io::Result<Writer> {
        let (queue, handed) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("topdog-pg-writer".into()).spawn(move || serve(&pg, &handed))?;
        Ok(Writer { queue })
    }

    /// Hands `f` over to run in the next group; its answer.
    pub(super) fn hand<R, E, F>(&self, records: Vec<(Table, String)>, f: F) -> Result<Answer<R, E>, StoreError>
    where
        R: Send + 'static,
        E: Send + 'static,
        F: Fn(&PgTx<'_>) -> Result<R, TxAbort<E>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let handed = Handed { typed: Typed::new(records, f), reply: Some(reply) };
        self.queue.send(Box::new(handed)).map_err(|_| StoreError::Pool("the writer thread has stopped".into()))?;
        Ok(answer)
    }
}

/// The writer thread: each group is what was handed over by the time the
/// last one ended (at most [`MAX_GROUP`]). A panic outside the parts'
/// closures ends that group only (its callers get no answer, and its
/// connection leaves the pool, see `Session`); the thread goes on.
fn serve(pg: &Pg, handed: &std::sync::mpsc::Receiver<Box<dyn Queued>>) {
    while let Ok(first) = handed.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match handed.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        if catch_unwind(AssertUnwindSafe(|| commit(pg, group))).is_err() {
            tracing::error!("a group of transactions failed with a panic; the writer thread goes on");
        }
    }
}

/// Runs `group` as one transaction and answers each. Should it fail for
/// anything but a concurrent transaction (tried again in the turn), each
/// runs again alone, so that one part's failure is its own.
fn commit(pg: &Pg, mut group: Vec<Box<dyn Queued>>) {
    let outcome = {
        let mut parts: Vec<&mut dyn Part> = group.iter_mut().map(|q| q.as_mut() as &mut dyn Part).collect();
        pg.run_parts(true, &mut parts)
    };
    match outcome {
        Ok(()) => group.into_iter().for_each(|q| q.finish(Ok(()))),
        Err(e) if group.len() == 1 => {
            if let Some(q) = group.pop() {
                q.finish(Err(e));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, parts = group.len(), "a group failed; each part runs alone");
            group.into_iter().for_each(|q| commit(pg, vec![q]));
        }
    }
}
