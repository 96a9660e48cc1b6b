//! Admin sessions for the browser console: signing in with the admin token
//! gives a random session id (sent as an HttpOnly, Secure, SameSite=Strict
//! cookie) and a CSRF token that every state-changing request must echo in
//! `x-csrf-token`. Only the SHA-256 of a session id is kept, in memory: a
//! restart signs everyone out. Sessions end after `TTL` or at sign-out.

use crate::clock::{Clock, Timestamp};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// How long a session lasts.
pub const TTL: chrono::TimeDelta = chrono::TimeDelta::hours(8);

/// The session cookie's name.
pub const COOKIE: &str = "topdog_session";

/// Why a session did not admit a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No such session, or it has ended.
    #[error("the session has ended; sign in again")]
    Ended,
    /// A state change without the session's CSRF token.
    #[error("the request lacks this session's CSRF token (header x-csrf-token)")]
    Csrf,
}

/// A new session.
#[derive(Debug, Clone)]
pub struct Started {
    /// The id, for the cookie only.
    pub id: String,
    /// The CSRF token, for the page.
    pub csrf_token: String,
    /// When it ends.
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone)]
struct Session {
    csrf_token: String,
    expires_at: Timestamp,
}

/// The live sessions (cheap to clone).
#[derive(Clone)]
pub struct Sessions {
    live: Arc<Mutex<HashMap<[u8; 32], Session>>>,
    clock: Clock,
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// No sessions yet; they end by `clock`.
    pub fn new(clock: Clock) -> Sessions {
        Sessions { live: Arc::default(), clock }
    }

    /// Starts a session (the caller has checked the admin token).
    pub fn start(&self) -> Started {
        let (id, csrf_token, expires_at) = (random(), random(), self.clock.now() + TTL);
        let session = Session { csrf_token: csrf_token.clone(), expires_at };
        self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(key(&id), session);
        Started { id, csrf_token, expires_at }
    }

    /// The session's CSRF token and expiry, if it is live.
    pub fn get(&self, id: &str) -> Result<(String, Timestamp), SessionError> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match live.get(&key(id)) {
            Some(s) if s.expires_at > self.clock.now() => Ok((s.csrf_token.clone(), s.expires_at)),
            _ => Err(SessionError::Ended),
        }
    }

    /// Admits a request of session `id`; a state change must carry `csrf`.
    pub fn check(&self, id: &str, csrf: Option<&str>, changes_state: bool) -> Result<(), SessionError> {
        let (expected, _) = self.get(id)?;
        if changes_state && !csrf.is_some_and(|c| bool::from(c.as_bytes().ct_eq(expected.as_bytes()))) {
            return Err(SessionError::Csrf);
        }
        Ok(())
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(id));
    }

    /// Drops sessions that have ended.
    pub fn forget_ended(&self) {
        let now = self.clock.now();
        self.live.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, s| s.expires_at > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_need_their_csrf_token_for_changes_and_end_at_sign_out() {
        let sessions = Sessions::new(Clock::system());
        let s = sessions.start();
        assert_eq!(sessions.check(&s.id, None, false), Ok(()));
        assert_eq!(sessions.check(&s.id, None, true), Err(SessionError::Csrf));
        assert_eq!(sessions.check(&s.id, Some("wrong"), true), Err(SessionError::Csrf));
        assert_eq!(sessions.check(&s.id, Some(&s.csrf_token), true), Ok(()));
        assert_eq!(sessions.check("forged", Some(&s.csrf_token), true), Err(SessionError::Ended));
        sessions.end(&s.id);
        assert_eq!(sessions.check(&s.id, Some(&s.csrf_token), false), Err(SessionError::Ended));
    }
}
