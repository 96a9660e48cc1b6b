//! PostgreSQL as the channel between nodes: `NOTIFY` on one channel to tell
//! every node, a `LISTEN` connection per node that hears it (reconnected
//! when lost), and a session advisory lock that makes one node at a time
//! the one that runs background work (it moves when that node's session
//! ends: its process died or it lost the database).

use super::Pg;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

/// The channel every node listens on.
pub(super) const CHANNEL: &str = "topdog";
/// The advisory lock the node running background work holds.
const LEADER_LOCK: i64 = 0x7d06_0001;
/// How often the listening and leading connections are checked (and a lost
/// one replaced).
const CHECK: Duration = Duration::from_millis(500);
/// How long the leading session has to answer before this node stops
/// counting itself the leader.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// Messages heard but not yet handled, per node.
const BACKLOG: usize = 4096;

/// Whether this node runs the background work now.
pub(crate) type Leadership = watch::Receiver<bool>;

impl Pg {
    /// Tells every node (this one too) `payload`.
    pub(in crate::store) async fn announce(&self, payload: &str) -> Result<(), crate::store::StoreError> {
        let client = self.pool.get().await?;
        let statement = client.prepare_cached("SELECT pg_notify($1, $2)").await?;
        client.execute(&statement, &[&CHANNEL, &payload]).await?;
        Ok(())
    }

    /// What every node announces, from a connection of its own; an empty
    /// message after a reconnect says that some may have been missed.
    pub(in crate::store) fn listen(&self) -> mpsc::Receiver<String> {
        let (heard, receiver) = mpsc::channel(BACKLOG);
        let pg = self.clone();
        tokio::spawn(async move {
            let mut first = true;
            while !heard.is_closed() {
                if let Err(e) = pg.listen_once(&heard, &mut first).await {
                    tracing::warn!(error = %e, "lost the database's notification channel; reconnecting");
                }
                tokio::time::sleep(CHECK).await;
            }
        });
        receiver
    }

    async fn listen_once(&self, heard: &mpsc::Sender<String>, first: &mut bool) -> Result<(), tokio_postgres::Error> {
        let (client, mut connection) = self.config.connect(self.tls.clone()).await?;
        let (messages, mut incoming) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = stream.next().await {
                let ended = message.is_err();
                if messages.send(message).is_err() || ended {
                    break;
                }
            }
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        if !std::mem::take(first) && heard.send(String::new()).await.is_err() {
            driver.abort();
            return Ok(());
        }
        while let Some(message) = incoming.recv().await {
            let AsyncMessage::Notification(n) = message? else { continue };
            if n.channel() == CHANNEL && heard.send(n.payload().to_owned()).await.is_err() {
                break;
            }
        }
        driver.abort();
        Ok(())
    }

    /// Whether this node holds the background-work lock, kept up to date:
    /// tried every [`CHECK`] while another node holds it.
    pub(in crate::store) fn lead(&self) -> Leadership {
        let (leading, receiver) = watch::channel(false);
        let pg = self.clone();
        tokio::spawn(async move {
            while !leading.is_closed() {
                if let Err(e) = pg.lead_once(&leading).await {
                    tracing::warn!(error = %e, "lost the database session holding the background-work lock");
                }
                leading.send_replace(false);
                tokio::time::sleep(CHECK).await;
            }
        });
        receiver
    }

    async fn lead_once(&self, leading: &watch::Sender<bool>) -> Result<(), tokio_postgres::Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        let mut driver = tokio::spawn(connection);
        loop {
            let was = *leading.borrow();
            let check = async {
                match was {
                    true => client.query_one("SELECT 1", &[]).await.map(|_| true),
                    false => {
                        client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]).await.map(|r| r.get(0))
                    }
                }
            };
            // A session that stops answering may have lost the lock already.
            let Ok(held) = tokio::time::timeout(ANSWER_WITHIN, check).await else { return Ok(()) };
            let held = held?;
            if held && !was {
                tracing::info!("this node now runs the background work");
            }
            leading.send_replace(held);
            tokio::select! {
                _ = tokio::time::sleep(CHECK) => {}
                _ = &mut driver => return Ok(()),
                _ = leading.closed() => return Ok(()),
            }
        }
    }
}
