//! Scoped API tokens for build systems, IDEs and scripts: `tdapi_…`, shown
//! once at creation, kept only as a SHA-256; each names its scopes, may be
//! limited to some users and may expire. Creating, listing and revoking
//! them, and admitting a presented one, live here; which route needs which
//! scope is the http layer's table.

mod error;
mod scope;

pub(crate) use error::ApiTokenError;
pub(crate) use scope::Scope;

use crate::audit::Actor;
use crate::clock::{Clock, Timestamp};
use crate::ids::UserId;
use crate::store::{Store, Table, TxAbort};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What every API token starts with (and how a credential is told apart
/// from the admin token).
pub(crate) const PREFIX: &str = "tdapi_";

/// Tokens the appliance keeps at most (each is a hand-made credential).
pub(crate) const MAX_TOKENS: usize = 1_000;

/// The longest life a token may be given.
const MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(5 * 366 * 24 * 3600);

/// How often a token's "last used" is written back at most.
const LAST_USED_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// A kept token (its hash, never the token).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    name: String,
    hash: String,
    scopes: Vec<Scope>,
    users: Vec<UserId>,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
}

/// What is shown of a token: everything but the token.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TokenView {
    /// Its name.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The users it may reach (empty: any).
    pub users: Vec<UserId>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working (None: never).
    pub expires_at: Option<Timestamp>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<Timestamp>,
}

impl From<Record> for TokenView {
    fn from(r: Record) -> TokenView {
        TokenView {
            name: r.name,
            scopes: r.scopes,
            users: r.users,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// A request to make a token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRequest {
    /// Its name (`[A-Za-z0-9._-]{1,64}`).
    pub name: String,
    /// Its scopes (at least one).
    pub scopes: Vec<String>,
    /// The only users it may reach (default: any).
    #[serde(default)]
    pub users: Vec<String>,
    /// How long it lasts (`90d`, `12h`; default: until revoked).
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// A new token: shown once.
#[derive(Debug, Serialize)]
pub(crate) struct Created {
    /// The token itself (only now).
    pub token: String,
    /// What it is.
    #[serde(flatten)]
    pub view: TokenView,
}

/// What an admitted token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    name: String,
    scopes: Vec<Scope>,
    users: Vec<UserId>,
}

impl Grant {
    /// The token's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Who acted, for the audit.
    pub(crate) fn actor(&self) -> Actor {
        Actor::Token(self.name.clone())
    }

    /// Refuses unless the token holds `scope` (or `admin`, which holds all).
    pub(crate) fn require(&self, scope: Scope) -> Result<(), ApiTokenError> {
        if self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin) {
            Ok(())
        } else {
            Err(ApiTokenError::OutOfScope(scope))
        }
    }

    /// Whether the token may reach only some users.
    pub(crate) fn is_limited(&self) -> bool {
        !self.users.is_empty()
    }

    /// Refuses unless the token may reach `user`.
    pub(crate) fn may_reach(&self, user: &str) -> Result<(), ApiTokenError> {
        if self.users.is_empty() || self.users.iter().any(|u| u.as_str() == user) {
            Ok(())
        } else {
            Err(ApiTokenError::NotForUser(user.to_owned()))
        }
    }
}

/// The API tokens (cheap to clone).
#[derive(Clone)]
pub(crate) struct ApiTokens {
    store: Store,
    clock: Clock,
    /// When each token's "last used" was last written.
    written: Arc<Mutex<HashMap<String, Timestamp>>>,
}

fn hash_of(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn check_name(name: &str) -> Result<(), ApiTokenError> {
    let ok = (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiTokenError::Invalid("name: 1 to 64 letters, digits, '.', '_' or '-'".into()))
    }
}

fn parse_lifetime(text: &str) -> Result<chrono::TimeDelta, ApiTokenError> {
    let bad =
        || ApiTokenError::Invalid(format!("expires_in `{text}`: a duration such as 90d, 12h or 30m, at most 5 years"));
    let lifetime = humantime::parse_duration(text).map_err(|_| bad())?;
    if lifetime < std::time::Duration::from_secs(60) || lifetime > MAX_LIFETIME {
        return Err(bad());
    }
    Ok(crate::clock::span(lifetime))
}

/// Checks a request and turns it into what is kept (without the hash).
fn checked(request: &CreateRequest) -> Result<(Vec<Scope>, Vec<UserId>), ApiTokenError> {
    check_name(&request.name)?;
    if request.scopes.is_empty() {
        return Err(ApiTokenError::Invalid("scopes: at least one".into()));
    }
    let mut scopes = request.scopes.iter().map(|s| Scope::parse(s)).collect::<Result<Vec<_>, _>>()?;
    scopes.sort_by_key(|s| s.as_str());
    scopes.dedup();
    let mut users = Vec::new();
    for user in &request.users {
        users.push(UserId::parse(user).map_err(|e| ApiTokenError::Invalid(format!("users: {e}")))?);
    }
    users.sort();
    users.dedup();
    if !users.is_empty() {
        if let Some(wide) = scopes.iter().find(|s| !s.fits_user_limit()) {
            return Err(ApiTokenError::Invalid(format!(
                "a token limited to users can only notify and ask them: scope `{}` cannot be limited",
                wide.as_str()
            )));
        }
    }
    Ok((scopes, users))
}

impl ApiTokens {
    /// The tokens in `store`.
    pub(crate) fn new(store: Store, clock: Clock) -> ApiTokens {
        ApiTokens { store, clock, written: Arc::default() }
    }

    /// Makes a token (on disk when this returns); the token is in the answer
    /// and nowhere else.
    pub(crate) async fn create(&self, request: &CreateRequest) -> Result<Created, ApiTokenError> {
        let (scopes, users) = checked(request)?;
        let now = self.clock.now();
        let expires_at = request.expires_in.as_deref().map(parse_lifetime).transpose()?.map(|life| now + life);
        let token = generate();
        let record = Record {
            name: request.name.clone(),
            hash: hash_of(&token),
            scopes,
            users,
            created_at: now,
            expires_at,
            last_used_at: None,
        };
        let full = self.store.count(Table::ApiTokens) >= MAX_TOKENS;
        self.store
            .commit(|tx| {
                if tx.get::<Record, _>(Table::ApiTokens, &record.name)?.is_some() {
                    return Err(TxAbort::Domain(ApiTokenError::Exists(record.name.clone())));
                }
                if full {
                    return Err(TxAbort::Domain(ApiTokenError::Full));
                }
                tx.put(Table::ApiTokens, &record.name, &record)?;
                tx.put(Table::ApiTokenHashes, &record.hash, &record.name)
            })
            .await?;
        Ok(Created { token, view: record.into() })
    }

    /// Every token, by name.
    pub(crate) fn list(&self) -> Result<Vec<TokenView>, ApiTokenError> {
        Ok(self.store.scan::<Record>(Table::ApiTokens)?.into_iter().map(TokenView::from).collect())
    }

    /// Revokes a token: it stops working at once.
    pub(crate) async fn revoke(&self, name: &str) -> Result<TokenView, ApiTokenError> {
        let record = self
            .store
            .commit(|tx| {
                let record: Record = tx
                    .get(Table::ApiTokens, name)?
                    .ok_or_else(|| TxAbort::Domain(ApiTokenError::NotFound(name.to_owned())))?;
                tx.remove(Table::ApiTokens, name)?;
                tx.remove(Table::ApiTokenHashes, &record.hash)?;
                Ok(record)
            })
            .await?;
        self.written.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        Ok(record.into())
    }

    /// Admits a presented token: known, not expired. Its "last used" is
    /// written back at most once a minute.
    pub(crate) fn authenticate(&self, token: &str) -> Result<Grant, ApiTokenError> {
        let name: String = self.store.get(Table::ApiTokenHashes, &hash_of(token))?.ok_or(ApiTokenError::Unknown)?;
        let record: Record = self.store.get(Table::ApiTokens, &name)?.ok_or(ApiTokenError::Unknown)?;
        let now = self.clock.now();
        if let Some(expired) = record.expires_at.filter(|at| *at <= now) {
            return Err(ApiTokenError::Expired(expired));
        }
        self.note_use(&record.name, now);
        Ok(Grant { name: record.name, scopes: record.scopes, users: record.users })
    }

    /// Writes "last used" (unflushed: it rides on the next durable write).
    fn note_use(&self, name: &str, now: Timestamp) {
        {
            let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
            if written.get(name).is_some_and(|at| now - *at < LAST_USED_EVERY) {
                return;
            }
            written.insert(name.to_owned(), now);
        }
        let result = self.store.commit_unflushed(|tx| {
            if let Some(mut record) = tx.get::<Record, ApiTokenError>(Table::ApiTokens, name)? {
                record.last_used_at = Some(now);
                tx.put(Table::ApiTokens, name, &record)?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(token = name, error = ?ApiTokenError::from(e), "cannot note an API token's use");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, scopes: &[&str], users: &[&str], expires: Option<&str>) -> CreateRequest {
        CreateRequest {
            name: name.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            users: users.iter().map(|s| s.to_string()).collect(),
            expires_in: expires.map(str::to_owned),
        }
    }

    fn tokens() -> (tempfile::TempDir, ApiTokens, Clock) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("db")).unwrap();
        let clock = Clock::system();
        (tmp, ApiTokens::new(store, clock.clone()), clock)
    }

    #[tokio::test]
    async fn a_token_is_admitted_by_its_text_until_revoked() {
        let (_tmp, tokens, _) = tokens();
        let made = tokens.create(&request("ci", &["notify", "approvals"], &[], None)).await.unwrap();
        assert!(made.token.starts_with(PREFIX));
        let grant = tokens.authenticate(&made.token).unwrap();
        assert_eq!(grant.name(), "ci");
        assert!(grant.require(Scope::Notify).is_ok());
        assert!(matches!(grant.require(Scope::Pairing), Err(ApiTokenError::OutOfScope(Scope::Pairing))));
        assert!(matches!(tokens.authenticate("tdapi_guess"), Err(ApiTokenError::Unknown)));
        assert!(tokens.list().unwrap()[0].last_used_at.is_some());
        tokens.revoke("ci").await.unwrap();
        assert!(matches!(tokens.authenticate(&made.token), Err(ApiTokenError::Unknown)));
        assert!(matches!(tokens.revoke("ci").await, Err(ApiTokenError::NotFound(_))));
    }

    #[tokio::test]
    async fn names_are_unique_and_requests_are_checked() {
        let (_tmp, tokens, _) = tokens();
        tokens.create(&request("ci", &["notify"], &[], None)).await.unwrap();
        assert!(matches!(tokens.create(&request("ci", &["admin"], &[], None)).await, Err(ApiTokenError::Exists(_))));
        for bad in [
            request("has space", &["notify"], &[], None),
            request("x", &[], &[], None),
            request("x", &["everything"], &[], None),
            request("x", &["pairing"], &["alice"], None),
            request("x", &["notify"], &["bad user"], None),
            request("x", &["notify"], &[], Some("soon")),
            request("x", &["notify"], &[], Some("10s")),
        ] {
            assert!(matches!(tokens.create(&bad).await, Err(ApiTokenError::Invalid(_))), "{bad:?}");
        }
        assert_eq!(tokens.list().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn admin_holds_every_scope_and_users_limit_reach() {
        let (_tmp, tokens, clock) = tokens();
        let admin = tokens.create(&request("ops", &["admin"], &[], Some("1h"))).await.unwrap();
        let grant = tokens.authenticate(&admin.token).unwrap();
        assert!(Scope::ALL.iter().all(|s| grant.require(*s).is_ok()));
        assert!(grant.may_reach("anyone").is_ok());
        let limited = tokens.create(&request("alice-ci", &["notify"], &["alice"], None)).await.unwrap();
        let grant = tokens.authenticate(&limited.token).unwrap();
        assert!(grant.may_reach("alice").is_ok());
        assert!(matches!(grant.may_reach("bob"), Err(ApiTokenError::NotForUser(_))));
        clock.shift(chrono::TimeDelta::hours(2));
        assert!(matches!(tokens.authenticate(&admin.token), Err(ApiTokenError::Expired(_))));
    }
}
