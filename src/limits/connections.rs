//! Per-address shares of a listener's connections, so one address cannot
//! starve another: each client address (an IPv6 client by its /64) may hold
//! a bounded number of open connections and a small share of the TLS
//! handshakes in progress; a global cap on handshakes stays on top. A
//! connection over its address's open cap is dropped at once; one over its
//! handshake share waits for a turn, at most [`TURN_WAIT`], so a burst of
//! honest reconnects from one address is served in order while an address
//! holding idle sockets only ever blocks itself. The wait is short because
//! a client gives up after a few seconds: a connection that waited longer
//! would cost a handshake for a client no longer there, and in a reconnect
//! storm those handshakes crowd out the ones still wanted; refused early,
//! the client tries again after its backoff.

use crate::limits::ClientKey;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The longest a connection waits for its address's turn to handshake.
pub(crate) const TURN_WAIT: Duration = Duration::from_secs(2);

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shares {
    /// Open (or opening) connections per address.
    pub open_per_address: usize,
    /// Handshakes in progress per address.
    pub handshakes_per_address: usize,
    /// Handshakes in progress in all.
    pub handshakes_total: usize,
    /// The longest a connection waits for its address's turn
    /// ([`TURN_WAIT`] on the listeners).
    pub turn_wait: Duration,
}

/// One listener's connection accounting (cheap to clone).
#[derive(Clone)]
pub(crate) struct ConnLimits {
    inner: Arc<Inner>,
}

struct Inner {
    shares: Shares,
    total: Arc<Semaphore>,
    addresses: Mutex<HashMap<ClientKey, Address>>,
}

struct Address {
    open: usize,
    handshakes: Arc<Semaphore>,
}

/// An admitted connection: counted against its address until dropped.
pub(crate) struct Admitted {
    inner: Arc<Inner>,
    key: ClientKey,
    handshakes: Arc<Semaphore>,
}

/// Why a connection was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Turned {
    /// The address holds its whole share of open connections.
    #[error("too many connections from this address")]
    AddressFull,
    /// Every handshake slot of the listener is taken.
    #[error("too many handshakes in progress")]
    Busy,
}

impl Turned {
    /// The metric label.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Turned::AddressFull => "per_ip_limit",
            Turned::Busy => "pending_limit",
        }
    }
}

/// The right to run one TLS handshake (held until it ends).
pub(crate) struct HandshakeTurn {
    _address: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

impl ConnLimits {
    /// Accounting with these shares.
    pub(crate) fn new(shares: Shares) -> ConnLimits {
        let total = Arc::new(Semaphore::new(shares.handshakes_total.max(1)));
        ConnLimits { inner: Arc::new(Inner { shares, total, addresses: Mutex::default() }) }
    }

    /// Counts a new connection from `ip`, or turns it away.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Admitted, Turned> {
        let key = ClientKey::of(Some(ip));
        let mut addresses = self.inner.addresses.lock().unwrap_or_else(|p| p.into_inner());
        let per = self.inner.shares.handshakes_per_address.max(1);
        let address =
            addresses.entry(key).or_insert_with(|| Address { open: 0, handshakes: Arc::new(Semaphore::new(per)) });
        if address.open >= self.inner.shares.open_per_address {
            return Err(Turned::AddressFull);
        }
        address.open += 1;
        Ok(Admitted { inner: self.inner.clone(), key, handshakes: address.handshakes.clone() })
    }

    /// Addresses with at least one connection.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.inner.addresses.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Admitted {
    /// Waits for this address's turn to handshake (refused after its
    /// `turn_wait`), then takes a slot of the listener's total (refused
    /// when all are taken).
    pub(crate) async fn handshake_turn(&self) -> Result<HandshakeTurn, Turned> {
        let waited = tokio::time::timeout(self.inner.shares.turn_wait, self.handshakes.clone().acquire_owned()).await;
        let address = waited.map_err(|_| Turned::Busy)?.map_err(|_| Turned::Busy)?;
        let total = self.inner.total.clone().try_acquire_owned().map_err(|_| Turned::Busy)?;
        Ok(HandshakeTurn { _address: address, _total: total })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut addresses = self.inner.addresses.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(address) = addresses.get_mut(&self.key) {
            address.open = address.open.saturating_sub(1);
            if address.open == 0 {
                addresses.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARES: Shares = Shares {
        open_per_address: 3,
        handshakes_per_address: 2,
        handshakes_total: 3,
        turn_wait: Duration::from_millis(200),
    };

    #[tokio::test]
    async fn one_address_cannot_take_another_ones_share() {
        let limits = ConnLimits::new(SHARES);
        let attacker: IpAddr = [127, 0, 0, 1].into();
        let held: Vec<Admitted> = (0..3).map(|_| limits.admit(attacker).unwrap()).collect();
        assert_eq!(limits.admit(attacker).err(), Some(Turned::AddressFull));
        let turns = [held[0].handshake_turn().await.unwrap(), held[1].handshake_turn().await.unwrap()];
        let third = tokio::time::timeout(Duration::from_millis(50), held[2].handshake_turn()).await;
        assert!(third.is_err(), "the attacker's third handshake waits for its own turn");
        let given_up = held[2].handshake_turn().await;
        assert_eq!(given_up.err(), Some(Turned::Busy), "and is refused once it has waited its turn_wait");
        let honest = limits.admit([127, 0, 0, 2].into()).unwrap();
        assert!(honest.handshake_turn().await.is_ok(), "another address still gets a handshake");
        drop(turns);
        drop(held);
        drop(honest);
        assert_eq!(limits.addresses(), 0, "nothing is kept for addresses that left");
    }

    #[tokio::test]
    async fn the_global_cap_still_holds() {
        let limits = ConnLimits::new(SHARES);
        let mut turns = Vec::new();
        let mut conns = Vec::new();
        for last in 1..=3u8 {
            let conn = limits.admit([10, 0, 0, last].into()).unwrap();
            turns.push(conn.handshake_turn().await.unwrap());
            conns.push(conn);
        }
        let late = limits.admit([10, 0, 0, 9].into()).unwrap();
        assert_eq!(late.handshake_turn().await.err(), Some(Turned::Busy));
    }
}
