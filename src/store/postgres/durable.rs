//! When a commit is on PostgreSQL's disk. Writers commit without waiting
//! for the disk, so as not to hold their turn through a flush, and then
//! wait for a barrier: a statement that writes a WAL record of its own in
//! its own (implicit) transaction commits synchronously, and so flushes the
//! WAL up to it, every commit before it included. One barrier serves every
//! writer of this node that committed before it was sent: writers waiting
//! at the same time send one between them, not one each.

use super::StoreError;
use std::sync::atomic::{AtomicU64, Ordering};

/// The barrier. Failing, it leaves no transaction open.
const DURABLE: &str = "SELECT pg_logical_emit_message(true, 'topdog', 'durable')";

/// When a writer's commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flush {
    /// After its turn, through a barrier (see [`Flusher`]).
    AfterTurn,
    /// Within its turn: where the role may not call the barrier's function.
    InTurn,
}

impl Flush {
    /// Whether the barrier works for this database and role.
    pub(super) async fn probe(client: &deadpool_postgres::Object) -> Result<Flush, StoreError> {
        use tokio_postgres::error::SqlState;
        match client.batch_execute(DURABLE).await {
            Ok(()) => Ok(Flush::AfterTurn),
            Err(e)
                if [SqlState::INSUFFICIENT_PRIVILEGE, SqlState::UNDEFINED_FUNCTION]
                    .iter()
                    .any(|c| e.code() == Some(c)) =>
            {
                tracing::warn!(error = %e, "pg_logical_emit_message is not allowed: each writer waits for the disk in its turn (slower under load)");
                Ok(Flush::InTurn)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The node's barriers: commits are numbered as their writers come to
/// wait, and a barrier sent once `n` commits had come covers the first `n`.
#[derive(Default)]
pub(super) struct Flusher {
    committed: AtomicU64,
    flushed: AtomicU64,
    turn: tokio::sync::Mutex<()>,
}

impl Flusher {
    /// Returns once every commit made before this call is on disk: at once
    /// if a barrier sent since covered it, otherwise after one sent now on
    /// `client` (the caller's connection, free after its commit).
    pub(super) async fn wait(&self, client: &deadpool_postgres::Object) -> Result<(), tokio_postgres::Error> {
        let mine = self.committed.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = self.turn.lock().await;
        if self.flushed.load(Ordering::SeqCst) >= mine {
            return Ok(());
        }
        let covered = self.committed.load(Ordering::SeqCst);
        client.batch_execute(DURABLE).await?;
        self.flushed.fetch_max(covered, Ordering::SeqCst);
        Ok(())
    }
}
