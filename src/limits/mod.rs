//! Abuse limits (`governor`): per-client budgets for creating invites and
//! for accepting or looking them up, keyed on the client's address alone (an
//! IPv6 client by its /64, since one host holds a whole /64) and never on
//! headers the client chooses; one appliance-wide budget for wrong admin
//! tokens; per-device budgets for token refreshes and commands; one budget
//! per API token. Every keyed limiter's memory is bounded.

pub(crate) mod connections;

use crate::error::{Coded, Kind};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A request over its budget.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("too many requests from this client; try again in {retry_after_s} s")]
pub struct RateLimited {
    /// Seconds until the next request would be allowed.
    pub retry_after_s: u64,
}

impl Coded for RateLimited {
    fn coded(&self) -> (&'static str, Kind) {
        ("rate_limited", Kind::Busy)
    }
}

/// Which per-client budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    /// Creating or resending invites and QR tokens, and wrong admin tokens.
    Invites,
    /// Accepting invites and looking them up (phones, pairing page).
    Accepts,
    /// Webhook deliveries.
    Hooks,
}

/// Which per-device budget a phone's request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceBucket {
    /// `POST /phone/token/refresh`.
    TokenRefresh,
    /// Voice and text commands.
    Commands,
}

/// Wrong admin tokens accepted per minute from all clients together.
const ADMIN_FAILURES_PER_MINUTE: u32 = 120;
/// Token refreshes per device per hour.
const REFRESHES_PER_HOUR: u32 = 12;
/// Webhook deliveries per sender address per minute (a busy forge sends a
/// few events per build).
const HOOKS_PER_MINUTE: u32 = 600;
/// Commands per device per minute.
const COMMANDS_PER_MINUTE: u32 = 30;
/// Clients (or devices) one limiter remembers before it forgets idle ones.
const MAX_KEYS: usize = 100_000;

/// The key a client is counted under: its address, an IPv6 address cut to
/// its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of a client at `ip` (the local socket has none).
    pub(crate) fn of(ip: Option<IpAddr>) -> ClientKey {
        match ip {
            Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => ClientKey(v6.to_canonical()),
            Some(IpAddr::V6(v6)) => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                ClientKey(IpAddr::V6(Ipv6Addr::from(network)))
            }
            Some(v4) => ClientKey(v4),
            None => ClientKey(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        }
    }
}

impl ClientKey {
    /// Whether the client is on this machine (an IPv4-mapped loopback too).
    pub(crate) fn is_loopback(&self) -> bool {
        self.0.is_loopback()
    }
}

/// A keyed limiter that never remembers more than [`MAX_KEYS`] keys: past
/// that it forgets the idle ones, and if all are busy (a flood from many
/// addresses) it starts afresh.
struct Bounded<K: Hash + Eq + Clone> {
    quota: Quota,
    limiter: RwLock<DefaultKeyedRateLimiter<K>>,
}

impl<K: Hash + Eq + Clone> Bounded<K> {
    fn new(quota: Quota) -> Self {
        Bounded { quota, limiter: RwLock::new(RateLimiter::keyed(quota)) }
    }

    fn check(&self, key: &K, clock: &DefaultClock) -> Result<(), RateLimited> {
        if self.len() >= MAX_KEYS {
            self.forget_idle();
            if self.len() >= MAX_KEYS {
                *self.limiter.write().unwrap_or_else(|p| p.into_inner()) = RateLimiter::keyed(self.quota);
            }
        }
        let limiter = self.limiter.read().unwrap_or_else(|p| p.into_inner());
        limiter.check_key(key).map_err(|not_until| retry_after(not_until.wait_time_from(clock.now())))
    }

    fn len(&self) -> usize {
        self.limiter.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn forget_idle(&self) {
        let limiter = self.limiter.read().unwrap_or_else(|p| p.into_inner());
        limiter.retain_recent();
        limiter.shrink_to_fit();
    }
}

fn retry_after(wait: Duration) -> RateLimited {
    RateLimited { retry_after_s: wait.as_secs() + 1 }
}

/// The appliance's rate limiters (cheap to clone).
#[derive(Clone)]
pub(crate) struct RateLimits {
    inner: Arc<Limiters>,
}

struct Limiters {
    invites: Bounded<ClientKey>,
    accepts: Bounded<ClientKey>,
    hooks: Bounded<ClientKey>,
    refreshes: Bounded<String>,
    commands: Bounded<String>,
    api_tokens: Bounded<String>,
    admin_failures: DefaultDirectRateLimiter,
    clock: DefaultClock,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    /// The budgets `config` sets.
    pub(crate) fn new(config: &crate::config::LimitsConfig) -> RateLimits {
        let hourly = Quota::per_hour(NonZeroU32::new(REFRESHES_PER_HOUR).unwrap_or(NonZeroU32::MIN));
        RateLimits {
            inner: Arc::new(Limiters {
                invites: Bounded::new(per_minute(config.invites_per_minute)),
                accepts: Bounded::new(per_minute(config.accepts_per_minute)),
                hooks: Bounded::new(per_minute(HOOKS_PER_MINUTE)),
                refreshes: Bounded::new(hourly),
                commands: Bounded::new(per_minute(COMMANDS_PER_MINUTE)),
                api_tokens: Bounded::new(per_minute(config.token_requests_per_minute)),
                admin_failures: RateLimiter::direct(per_minute(ADMIN_FAILURES_PER_MINUTE)),
                clock: DefaultClock::default(),
            }),
        }
    }

    /// Takes one request from `client`'s budget in `bucket`.
    pub(crate) fn check(&self, bucket: Bucket, client: ClientKey) -> Result<(), RateLimited> {
        let limiter = match bucket {
            Bucket::Invites => &self.inner.invites,
            Bucket::Accepts => &self.inner.accepts,
            Bucket::Hooks => &self.inner.hooks,
        };
        limiter.check(&client, &self.inner.clock)
    }

    /// Counts a wrong admin token: against the client's invite budget and
    /// the appliance-wide budget, so neither one address nor many can guess
    /// (or grow the audit log) quickly.
    pub(crate) fn admin_failure(&self, client: ClientKey) -> Result<(), RateLimited> {
        self.check(Bucket::Invites, client)?;
        let inner = &self.inner;
        inner.admin_failures.check().map_err(|not_until| retry_after(not_until.wait_time_from(inner.clock.now())))
    }

    /// Takes one request from a device's budget.
    pub(crate) fn check_device(&self, bucket: DeviceBucket, device: &str) -> Result<(), RateLimited> {
        let limiter = match bucket {
            DeviceBucket::TokenRefresh => &self.inner.refreshes,
            DeviceBucket::Commands => &self.inner.commands,
        };
        limiter.check(&device.to_owned(), &self.inner.clock)
    }

    /// Takes one request from an API token's budget.
    pub(crate) fn check_token(&self, name: &str) -> Result<(), RateLimited> {
        self.inner.api_tokens.check(&name.to_owned(), &self.inner.clock)
    }

    /// Forgets clients whose budgets are full again (bounds memory).
    pub(crate) fn forget_idle(&self) {
        let inner = &self.inner;
        inner.invites.forget_idle();
        inner.accepts.forget_idle();
        inner.hooks.forget_idle();
        inner.refreshes.forget_idle();
        inner.commands.forget_idle();
        inner.api_tokens.forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(invites_per_minute: u32, accepts_per_minute: u32) -> crate::config::LimitsConfig {
        crate::config::LimitsConfig { invites_per_minute, accepts_per_minute, token_requests_per_minute: 5 }
    }

    #[test]
    fn each_api_token_has_its_own_budget() {
        let limits = RateLimits::new(&config(1, 1));
        assert!((0..5).all(|_| limits.check_token("ci").is_ok()));
        assert!(limits.check_token("ci").is_err());
        assert!(limits.check_token("other").is_ok());
    }

    #[test]
    fn each_client_and_bucket_has_its_own_budget() {
        let limits = RateLimits::new(&config(2, 5));
        let a = ClientKey::of(Some([10, 0, 0, 1].into()));
        let b = ClientKey::of(Some([10, 0, 0, 2].into()));
        assert!(limits.check(Bucket::Invites, a).is_ok());
        assert!(limits.check(Bucket::Invites, a).is_ok());
        let refused = limits.check(Bucket::Invites, a).unwrap_err();
        assert!(refused.retry_after_s >= 1 && refused.retry_after_s <= 31, "{refused:?}");
        assert!(limits.check(Bucket::Invites, b).is_ok());
        assert!(limits.check(Bucket::Accepts, a).is_ok());
    }

    #[test]
    fn an_ipv6_host_is_counted_by_its_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ClientKey::of(Some(one)), ClientKey::of(Some(same)));
        assert_ne!(ClientKey::of(Some(one)), ClientKey::of(Some(other)));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ClientKey::of(Some(mapped)), ClientKey::of(Some([10, 0, 0, 1].into())));
    }

    #[test]
    fn wrong_admin_tokens_share_one_budget_across_addresses() {
        let limits = RateLimits::new(&config(10_000, 10_000));
        let refused = (0..=ADMIN_FAILURES_PER_MINUTE)
            .map(|i| limits.admin_failure(ClientKey::of(Some([10, 0, (i / 250) as u8, (i % 250) as u8].into()))))
            .filter(Result::is_err)
            .count();
        assert_eq!(refused, 1, "the global budget stops the 121st wrong token from the 121st address");
    }

    #[test]
    fn a_limiter_forgets_idle_clients_when_it_grows() {
        let limits = RateLimits::new(&config(10, 10));
        for i in 0..(MAX_KEYS as u32 + 10) {
            let _ = limits.check(Bucket::Accepts, ClientKey::of(Some(std::net::Ipv4Addr::from(i).into())));
        }
        assert!(limits.inner.accepts.len() <= MAX_KEYS, "{}", limits.inner.accepts.len());
    }
}
