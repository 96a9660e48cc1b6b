//! Console sessions: signing in with the admin token (break-glass) or
//! through the company's OpenID provider (a person with a role) gives a
//! random session id (sent as an HttpOnly, Secure, SameSite=Strict
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
    /// A developer's session asked for an admin's operation.
    #[error("this needs an admin; a developer's session reaches only “My phones”")]
    NotAdmin,
    /// A session of the admin token (no person) asked for a person's own page.
    #[error("“My phones” needs a person signed in through the identity provider")]
    NoPerson,
}

/// Who a session is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// Whoever holds the admin token (the break-glass way in).
    AdminToken,
    /// A person signed in through the OpenID provider.
    Person {
        /// Who, with their role.
        person: crate::people::Person,
        /// Their ID token (the hint for the provider's logout).
        id_token: String,
    },
}

/// A live session as a request sees it.
#[derive(Debug, Clone)]
pub struct Live {
    /// Its CSRF token.
    pub csrf_token: String,
    /// When it ends.
    pub expires_at: Timestamp,
    /// Who it is for.
    pub who: Who,
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

type Session = Live;

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

    /// Starts a session for `who` (the caller has checked their credential).
    pub fn start(&self, who: Who) -> Started {
        let (id, csrf_token, expires_at) = (random(), random(), self.clock.now() + TTL);
        let session = Session { csrf_token: csrf_token.clone(), expires_at, who };
        self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(key(&id), session);
        Started { id, csrf_token, expires_at }
    }

    /// The session, if it is live.
    pub fn get(&self, id: &str) -> Result<Live, SessionError> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match live.get(&key(id)) {
            Some(s) if s.expires_at > self.clock.now() => Ok(s.clone()),
            _ => Err(SessionError::Ended),
        }
    }

    /// Admits a request of session `id` (a state change must carry `csrf`);
    /// who the session is for.
    pub fn check(&self, id: &str, csrf: Option<&str>, changes_state: bool) -> Result<Who, SessionError> {
        let live = self.get(id)?;
        if changes_state && !csrf.is_some_and(|c| bool::from(c.as_bytes().ct_eq(live.csrf_token.as_bytes()))) {
            return Err(SessionError::Csrf);
        }
        Ok(live.who)
    }

    /// Ends a session; who it was for.
    pub fn end(&self, id: &str) -> Option<Who> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(id)).map(|s| s.who)
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
        let s = sessions.start(Who::AdminToken);
        assert_eq!(sessions.check(&s.id, None, false), Ok(Who::AdminToken));
        assert_eq!(sessions.check(&s.id, None, true), Err(SessionError::Csrf));
        assert_eq!(sessions.check(&s.id, Some("wrong"), true), Err(SessionError::Csrf));
        assert_eq!(sessions.check(&s.id, Some(&s.csrf_token), true), Ok(Who::AdminToken));
        assert_eq!(sessions.check("forged", Some(&s.csrf_token), true), Err(SessionError::Ended));
        assert_eq!(sessions.end(&s.id), Some(Who::AdminToken));
        assert_eq!(sessions.check(&s.id, Some(&s.csrf_token), false), Err(SessionError::Ended));
    }
}
