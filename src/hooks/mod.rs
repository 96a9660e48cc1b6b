//! Webhooks in: deliveries from GitHub, GitLab and generic senders are
//! checked against their hook's secret before anything else is read, then
//! mapped by `hooks.toml` (projects, branches, outcomes, who is who) to a
//! notification of one user's phones. A delivery id is handled once: a
//! replay is refused. Nothing is stored before the signature checks out.

pub(crate) mod config;
mod error;
mod event;
mod generic;
mod github;
mod gitlab;
mod verify;

pub(crate) use error::HookError;

use crate::audit::{Actor, AuditLog, Event};
use crate::clock::{Clock, Timestamp};
use crate::messaging::notifications::NotifyRequest;
use crate::messaging::Messaging;
use crate::store::{Store, Table, TxAbort};
use config::{covers, HooksConfig, HooksFile, Level};
use event::{Happening, Outcome, Parsed};
use serde::Serialize;

/// Where a delivery came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source<'a> {
    /// `POST /hooks/github`.
    GitHub,
    /// `POST /hooks/gitlab`.
    GitLab,
    /// `POST /hooks/generic/{name}`.
    Generic(&'a str),
}

impl Source<'_> {
    /// The hook's name in audit lines and replay keys.
    pub(crate) fn name(&self) -> String {
        match self {
            Source::GitHub => "github".into(),
            Source::GitLab => "gitlab".into(),
            Source::Generic(name) => format!("generic.{name}"),
        }
    }
}

/// The headers a delivery's check needs (the http layer reads them).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Headers<'a> {
    /// `X-Hub-Signature-256`, `X-Gitlab-Token` or `X-Topdog-Signature-256`.
    pub signature: Option<&'a str>,
    /// `X-GitHub-Delivery`, GitLab's `Idempotency-Key` / `X-Gitlab-Event-UUID`.
    pub delivery: Option<&'a str>,
    /// `X-GitHub-Event` or `X-Gitlab-Event`.
    pub event: Option<&'a str>,
    /// `X-Topdog-Timestamp` (generic hooks).
    pub timestamp: Option<&'a str>,
}

/// What became of a delivery.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Handled {
    /// A notification was sent.
    Notified {
        /// The notification's id.
        id: String,
        /// The user notified.
        user_id: String,
    },
    /// Nothing was done, and why.
    Ignored {
        /// Why.
        reason: String,
    },
}

/// How long a delivery id is remembered (GitHub redelivers for 3 days).
const REMEMBER: chrono::TimeDelta = chrono::TimeDelta::days(7);

/// The webhook service (cheap to clone).
#[derive(Clone)]
pub(crate) struct Hooks {
    file: HooksFile,
    store: Store,
    messaging: Messaging,
    audit: AuditLog,
    clock: Clock,
}

/// A checked delivery: which hook, and what it says to do.
struct Checked {
    replay_key: Option<String>,
    notify: Result<(String, NotifyRequest), String>,
}

impl Hooks {
    /// The hooks of `hooks.toml` in `dir`.
    pub(crate) fn new(
        dir: &std::path::Path,
        store: Store,
        messaging: Messaging,
        audit: AuditLog,
        clock: Clock,
    ) -> Hooks {
        Hooks { file: HooksFile::new(dir), store, messaging, audit, clock }
    }

    /// Handles one delivery: checked, mapped, notified once.
    pub(crate) async fn receive(
        &self,
        source: Source<'_>,
        headers: Headers<'_>,
        body: &[u8],
    ) -> Result<Handled, HookError> {
        let config = self.file.current();
        let checked = self.check(&config, source, headers, body)?;
        let (user, request) = match checked.notify {
            Ok(found) => found,
            Err(reason) => return Ok(Handled::Ignored { reason }),
        };
        let claimed = match &checked.replay_key {
            Some(key) => Some(self.claim(key).await?),
            None => None,
        };
        match self.messaging.notify(&request).await {
            Ok(notified) => {
                let target = format!("{} → {user}", headers.delivery.unwrap_or("-"));
                self.audit.record(Event::new(&Actor::Hook(source.name()), "hook.notify", target, "ok")).await;
                Ok(Handled::Notified { id: notified.id, user_id: user })
            }
            Err(e) => {
                if let Some(key) = claimed {
                    self.release(&key).await;
                }
                tracing::warn!(hook = %source.name(), error = %e, "a hook's notification was not sent");
                Err(e.into())
            }
        }
    }

    /// Verifies the delivery, then reads what it asks for.
    fn check(
        &self,
        config: &HooksConfig,
        source: Source<'_>,
        headers: Headers<'_>,
        body: &[u8],
    ) -> Result<Checked, HookError> {
        let not_configured = || HookError::NotConfigured(source.name());
        match source {
            Source::GitHub => {
                let signature = headers.signature.ok_or(HookError::Unsigned("X-Hub-Signature-256"))?;
                let delivery = headers.delivery.ok_or(HookError::MissingHeader("X-GitHub-Delivery"))?;
                let event = headers.event.ok_or(HookError::MissingHeader("X-GitHub-Event"))?;
                let hook = config.github.as_ref().ok_or_else(not_configured)?;
                verify::hmac_sha256(&hook.key, &[body], signature)?;
                let parsed = github::parse(event, body)?;
                let notify = forge_notice(config, hook, parsed)?;
                Ok(Checked { replay_key: Some(replay_key(source, delivery)), notify })
            }
            Source::GitLab => {
                let token = headers.signature.ok_or(HookError::Unsigned("X-Gitlab-Token"))?;
                let event = headers.event.ok_or(HookError::MissingHeader("X-Gitlab-Event"))?;
                let hook = config.gitlab.as_ref().ok_or_else(not_configured)?;
                verify::token(&hook.key, token)?;
                let parsed = gitlab::parse(event, body)?;
                let notify = forge_notice(config, hook, parsed)?;
                Ok(Checked { replay_key: headers.delivery.map(|d| replay_key(source, d)), notify })
            }
            Source::Generic(name) => {
                let timestamp = headers.timestamp.ok_or(HookError::Unsigned("X-Topdog-Timestamp"))?;
                let signature = headers.signature.ok_or(HookError::Unsigned("X-Topdog-Signature-256"))?;
                let hook = config.generic.get(name).ok_or_else(not_configured)?;
                verify::hmac_sha256(&hook.key, &[timestamp.trim().as_bytes(), b".", body], signature)?;
                generic::check_time(timestamp, self.clock.now().timestamp())?;
                let sent = generic::parse(body)?;
                if !hook.users.is_empty() && !hook.users.contains(&sent.user) {
                    return Err(HookError::UserNotAllowed(sent.user));
                }
                let request = NotifyRequest {
                    user_id: Some(sent.user.clone()),
                    device_id: None,
                    title: sent.title,
                    body: sent.body,
                    priority: sent.priority,
                    kind: sent.kind,
                    link: sent.link,
                };
                Ok(Checked { replay_key: Some(replay_key(source, signature.trim())), notify: Ok((sent.user, request)) })
            }
        }
    }

    /// Marks a delivery id as handled; refuses one already marked.
    async fn claim(&self, key: &str) -> Result<String, HookError> {
        let now = self.clock.now();
        self.store
            .commit(|tx| {
                if tx.get::<Timestamp, HookError>(Table::HookDeliveries, key)?.is_some() {
                    let id = key.split_once('/').map_or(key, |(_, id)| id).to_owned();
                    return Err(TxAbort::Domain(HookError::Replayed(id)));
                }
                tx.put(Table::HookDeliveries, key, &now)
            })
            .await?;
        Ok(key.to_owned())
    }

    /// Forgets a claim whose notification failed, so a redelivery works.
    async fn release(&self, key: &str) {
        if let Err(e) = self.store.commit(|tx| tx.remove::<HookError>(Table::HookDeliveries, key)).await {
            tracing::warn!(error = ?HookError::from(e), "cannot release a hook delivery");
        }
    }

    /// Forgets delivery ids older than a week; how many.
    pub(crate) async fn prune(&self) -> Result<usize, HookError> {
        let cutoff = self.clock.now() - REMEMBER;
        let old: Vec<String> = self
            .store
            .scan_keyed::<Timestamp>(Table::HookDeliveries)?
            .into_iter()
            .filter(|(_, at)| *at < cutoff)
            .map(|(k, _)| k)
            .collect();
        if !old.is_empty() {
            self.store
                .commit(|tx| old.iter().try_for_each(|k| tx.remove::<HookError>(Table::HookDeliveries, k)))
                .await?;
        }
        Ok(old.len())
    }
}

fn replay_key(source: Source<'_>, delivery: &str) -> String {
    let delivery: String = delivery.chars().filter(|c| c.is_ascii_graphic()).take(128).collect();
    format!("{}/{delivery}", source.name())
}

/// Maps a forge event through its hook's rules to a user and notification,
/// or the reason it does not notify.
fn forge_notice(
    config: &HooksConfig,
    hook: &config::ForgeHook,
    parsed: Parsed,
) -> Result<Result<(String, NotifyRequest), String>, HookError> {
    let happening = match parsed {
        Parsed::Happening(h) => h,
        Parsed::Ignored(reason) => return Ok(Err(reason)),
    };
    if !covers(&hook.repositories, &happening.project) {
        return Ok(Err(format!("{} is not a project this hook covers", happening.project)));
    }
    if !covers(&hook.branches, &happening.branch) {
        return Ok(Err(format!("branch {} is not one this hook covers", happening.branch)));
    }
    let Level(Some(priority)) = level(&hook.notify, happening.outcome) else {
        return Ok(Err(format!("outcome `{}` is off", happening.outcome.words())));
    };
    let user = happening
        .actors
        .iter()
        .find_map(|who| config.user_of(&hook.users, who))
        .ok_or_else(|| HookError::Unmapped(format!("{:?}", happening.actors)))?
        .to_owned();
    Ok(Ok((user.clone(), request(user, priority, happening))))
}

fn level(levels: &config::Levels, outcome: Outcome) -> Level {
    match outcome {
        Outcome::Success => levels.success,
        Outcome::Failure => levels.failure,
        Outcome::Cancelled => levels.cancelled,
        Outcome::Deployment => levels.deployment,
    }
}

fn request(user: String, priority: u8, h: Happening) -> NotifyRequest {
    NotifyRequest {
        user_id: Some(user),
        device_id: None,
        title: h.title.chars().take(200).collect(),
        body: h.body,
        priority: Some(u64::from(priority)),
        kind: Some(h.kind.to_owned()),
        link: h.link,
    }
}
