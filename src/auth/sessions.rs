//! Console sessions: signing in with the admin token (break-glass) or
//! through the company's OpenID provider (a person with a role) gives a
//! random session id (sent as an HttpOnly, Secure, SameSite=Strict
//! cookie) and a CSRF token that every state-changing request must echo in
//! `x-csrf-token`. Only the SHA-256 of a session id is kept: in memory on
//! one node (a restart signs everyone out), in the shared store when
//! several nodes share one (a browser may reach any node; a sign-out on one
//! ends it on all). Sessions end after `TTL` or at sign-out.

use crate::clock::{Clock, Timestamp};
use crate::store::{Store, Table};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// How long a session lasts.
pub(crate) const TTL: chrono::TimeDelta = chrono::TimeDelta::hours(8);

/// The session cookie's name.
pub(crate) const COOKIE: &str = "topdog_session";

/// Why a session did not admit a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SessionError {
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Who {
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
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Live {
    /// Its CSRF token.
    pub csrf_token: String,
    /// When it ends.
    pub expires_at: Timestamp,
    /// Who it is for.
    pub who: Who,
}

/// A new session.
#[derive(Debug, Clone)]
pub(crate) struct Started {
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
pub(crate) struct Sessions {
    live: Arc<Mutex<HashMap<[u8; 32], Session>>>,
    clock: Clock,
    /// The store several nodes share, when they do.
    shared: Option<Store>,
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
    /// No sessions yet; they end by `clock`. They are kept in `store` when
    /// it is shared by several nodes, in memory otherwise.
    pub(crate) fn new(clock: Clock, store: &Store) -> Sessions {
        let shared = store.is_shared().then(|| store.clone());
        Sessions { live: Arc::default(), clock, shared }
    }

    /// Starts a session for `who` (the caller has checked their credential).
    pub(crate) fn start(&self, who: Who) -> Started {
        let (id, csrf_token, expires_at) = (random(), random(), self.clock.now() + TTL);
        let session = Session { csrf_token: csrf_token.clone(), expires_at, who };
        match &self.shared {
            Some(store) => {
                let stored = store.commit_unflushed(|tx| tx.put::<_, ()>(Table::Sessions, &stored_key(&id), &session));
                if stored.is_err() {
                    tracing::error!("could not store a console session; it will not be known to the other nodes");
                }
            }
            None => _ = self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(key(&id), session),
        }
        Started { id, csrf_token, expires_at }
    }

    /// The session, if it is live.
    pub(crate) fn get(&self, id: &str) -> Result<Live, SessionError> {
        let session = match &self.shared {
            Some(store) => store.get::<Session>(Table::Sessions, &stored_key(id)).ok().flatten(),
            None => self.live.lock().unwrap_or_else(|p| p.into_inner()).get(&key(id)).cloned(),
        };
        match session {
            Some(s) if s.expires_at > self.clock.now() => Ok(s),
            _ => Err(SessionError::Ended),
        }
    }

    /// Admits a request of session `id` (a state change must carry `csrf`);
    /// who the session is for.
    pub(crate) fn check(&self, id: &str, csrf: Option<&str>, changes_state: bool) -> Result<Who, SessionError> {
        let live = self.get(id)?;
        if changes_state && !csrf.is_some_and(|c| bool::from(c.as_bytes().ct_eq(live.csrf_token.as_bytes()))) {
            return Err(SessionError::Csrf);
        }
        Ok(live.who)
    }

    /// Ends a session; who it was for.
    pub(crate) fn end(&self, id: &str) -> Option<Who> {
        let Some(store) = &self.shared else {
            return self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(id)).map(|s| s.who);
        };
        let stored_key = stored_key(id);
        let ended = store.commit_unflushed(|tx| {
            let session = tx.get::<Session, ()>(Table::Sessions, &stored_key)?;
            tx.remove(Table::Sessions, &stored_key)?;
            Ok(session)
        });
        ended.ok().flatten().map(|s| s.who)
    }

    /// Drops sessions that have ended (in memory; [`Sessions::prune`] does
    /// it in a shared store).
    pub(crate) fn forget_ended(&self) {
        let now = self.clock.now();
        self.live.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, s| s.expires_at > now);
    }

    /// Removes ended sessions from the shared store (one node does it).
    pub(crate) fn prune(&self) -> Result<usize, crate::store::StoreError> {
        let Some(store) = &self.shared else { return Ok(0) };
        let now = self.clock.now();
        let ended: Vec<String> = store
            .scan_keyed::<Session>(Table::Sessions)?
            .into_iter()
            .filter(|(_, s)| s.expires_at <= now)
            .map(|(k, _)| k)
            .collect();
        store.commit_unflushed(|tx| {
            ended.iter().try_for_each(|k| tx.remove::<std::convert::Infallible>(Table::Sessions, k))
        })?;
        Ok(ended.len())
    }
}

/// A session's key in the shared store: the hex of its id's SHA-256.
fn stored_key(id: &str) -> String {
    hex::encode(key(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_need_their_csrf_token_for_changes_and_end_at_sign_out() {
        let tmp = tempfile::tempdir().unwrap();
        let sessions = Sessions::new(Clock::system(), &Store::open(tmp.path()).unwrap());
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
