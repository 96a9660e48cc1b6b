//! Sign-ins under way: what the callback needs (the PKCE verifier and the
//! nonce), kept in memory by the `state` sent to the provider and bound to
//! the browser that started it (the SHA-256 of a random value in its login
//! cookie). Each is used once, lives ten minutes, and there are at most
//! `MAX` at a time.

use crate::clock::{Clock, Timestamp};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// How long a sign-in may take.
pub(super) const TTL: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Most sign-ins under way at once (anyone may start one).
pub(super) const MAX: usize = 10_000;

/// What a callback needs to finish a sign-in.
pub(super) struct Pending {
    /// The PKCE verifier.
    pub verifier: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    browser: [u8; 32],
    started_at: Timestamp,
}

/// Why a callback's state was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unfinished {
    /// Not started (here, or by this browser), or used already.
    Unknown,
    /// Started too long ago.
    Expired,
    /// Too many under way.
    Full,
}

/// The sign-ins under way (cheap to clone).
#[derive(Clone)]
pub(super) struct Logins {
    pending: Arc<Mutex<HashMap<String, Pending>>>,
    clock: Clock,
}

fn hash(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

impl Logins {
    /// None under way.
    pub(super) fn new(clock: Clock) -> Logins {
        Logins { pending: Arc::default(), clock }
    }

    /// Remembers a sign-in by its `state`, for the browser holding `browser`.
    pub(super) fn start(
        &self,
        state: String,
        verifier: String,
        nonce: String,
        browser: &str,
    ) -> Result<(), Unfinished> {
        let now = self.clock.now();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, p| now - p.started_at < TTL);
        if pending.len() >= MAX {
            return Err(Unfinished::Full);
        }
        pending.insert(state, Pending { verifier, nonce, browser: hash(browser), started_at: now });
        Ok(())
    }

    /// Takes the sign-in `state` names (once) if `browser` started it.
    pub(super) fn finish(&self, state: &str, browser: Option<&str>) -> Result<Pending, Unfinished> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let same_browser = |p: &Pending| browser.is_some_and(|b| bool::from(hash(b).ct_eq(&p.browser)));
        match pending.get(state) {
            Some(p) if same_browser(p) => {}
            _ => return Err(Unfinished::Unknown),
        }
        let found = pending.remove(state).ok_or(Unfinished::Unknown)?;
        if self.clock.now() - found.started_at >= TTL {
            return Err(Unfinished::Expired);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_finishes_once_and_only_in_the_browser_that_started_it() {
        let logins = Logins::new(Clock::system());
        logins.start("s1".into(), "v".into(), "n".into(), "browser-a").unwrap();
        assert!(matches!(logins.finish("s1", Some("browser-b")), Err(Unfinished::Unknown)));
        assert!(matches!(logins.finish("s1", None), Err(Unfinished::Unknown)));
        assert_eq!(logins.finish("s1", Some("browser-a")).unwrap().verifier, "v");
        assert!(matches!(logins.finish("s1", Some("browser-a")), Err(Unfinished::Unknown)), "used once");
        assert!(matches!(logins.finish("never", Some("browser-a")), Err(Unfinished::Unknown)));
    }
}
