//! Abuse limits (`governor`): separate per-client budgets for creating
//! invites and for accepting or looking them up, keyed on the client's IP
//! address plus its user agent.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;

/// A request over its budget.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("too many requests from this client; try again in {retry_after_s} s")]
pub struct RateLimited {
    /// Seconds until the next request would be allowed.
    pub retry_after_s: u64,
}

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Creating or resending invites and QR tokens.
    Invites,
    /// Accepting invites and looking them up (phones, pairing page).
    Accepts,
}

/// The appliance's rate limiters (cheap to clone).
#[derive(Clone)]
pub struct RateLimits {
    invites: Arc<DefaultKeyedRateLimiter<String>>,
    accepts: Arc<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    /// Budgets of `invites` and `accepts` requests per client per minute.
    pub fn new(invites: u32, accepts: u32) -> RateLimits {
        RateLimits {
            invites: Arc::new(RateLimiter::keyed(per_minute(invites))),
            accepts: Arc::new(RateLimiter::keyed(per_minute(accepts))),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from `client`'s budget in `bucket`.
    pub fn check(&self, bucket: Bucket, client: &str) -> Result<(), RateLimited> {
        let limiter = match bucket {
            Bucket::Invites => &self.invites,
            Bucket::Accepts => &self.accepts,
        };
        limiter.check_key(&client.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            RateLimited { retry_after_s: wait.as_secs() + 1 }
        })
    }

    /// Forgets clients whose budgets are full again (bounds memory).
    pub fn forget_idle(&self) {
        self.invites.retain_recent();
        self.accepts.retain_recent();
    }
}

/// The key a client is counted under: its address and user agent.
pub fn client_key(ip: Option<std::net::IpAddr>, user_agent: Option<&str>) -> String {
    let ip = ip.map(|ip| ip.to_string()).unwrap_or_else(|| "local".into());
    format!("{ip}|{}", user_agent.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_and_bucket_has_its_own_budget() {
        let limits = RateLimits::new(2, 5);
        let a = client_key(Some([10, 0, 0, 1].into()), Some("curl"));
        let b = client_key(Some([10, 0, 0, 1].into()), Some("phone"));
        assert!(limits.check(Bucket::Invites, &a).is_ok());
        assert!(limits.check(Bucket::Invites, &a).is_ok());
        let refused = limits.check(Bucket::Invites, &a).unwrap_err();
        assert!(refused.retry_after_s >= 1 && refused.retry_after_s <= 31, "{refused:?}");
        assert!(limits.check(Bucket::Invites, &b).is_ok());
        assert!(limits.check(Bucket::Accepts, &a).is_ok());
    }
}
