//! Certificates by ACME (RFC 8555), Caddy-style: with `--acme-domain` the
//! appliance registers an account, orders a certificate for its names
//! (answering TLS-ALPN-01 on the HTTPS listener or HTTP-01 on
//! `--acme-http-addr`), serves it on the HTTPS and MQTT listeners without
//! dropping a connection, and renews it at two thirds of its lifetime.
//! A failed attempt keeps the certificate in force, is logged, audited and
//! shown in the status, and is retried with backoff. Until the first
//! certificate arrives the appliance's own one serves. Where several nodes
//! share a store, the node leading the background work orders and renews;
//! every node answers its challenges and serves the certificate it stored.

pub(crate) mod account;
pub(crate) mod challenges;
pub(crate) mod error;
pub(crate) mod order;
pub(crate) mod stored;

use self::challenges::Challenges;
use self::error::AcmeError;
use self::stored::{Keeper, Lifetime};
use crate::audit::{Actor, AuditLog, Event};
use crate::clock::{Clock, Timestamp};
use crate::cluster::relay::AcmeNews;
use crate::cluster::{Cluster, Relay};
use crate::pki::live::LiveCert;
use crate::pki::TlsPair;
use crate::store::datadir::DataDir;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Let's Encrypt's production directory (the default).
pub(crate) const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`--acme-staging`).
pub(crate) const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The first retry after a failure; each next one waits twice as long.
const FIRST_RETRY: Duration = Duration::from_secs(60);
/// The longest wait between retries.
const LONGEST_RETRY: Duration = Duration::from_secs(6 * 3600);

/// Which challenge proves the names are ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum ChallengeKind {
    /// A validation certificate on the HTTPS listener (it must be on 443).
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// A file over plain HTTP on `--acme-http-addr` (port 80).
    #[serde(rename = "http-01")]
    Http01,
}

impl ChallengeKind {
    /// Its name in RFC 8555 and RFC 8737.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
            ChallengeKind::Http01 => "http-01",
        }
    }

    fn acme(self) -> instant_acme::ChallengeType {
        match self {
            ChallengeKind::TlsAlpn01 => instant_acme::ChallengeType::TlsAlpn01,
            ChallengeKind::Http01 => instant_acme::ChallengeType::Http01,
        }
    }
}

/// The ACME settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AcmeConfig {
    /// The names to get a certificate for (the first one is the appliance's
    /// public name: pairing links and the MQTT host use it).
    pub domains: Vec<String>,
    /// The account's contact, if any.
    pub email: Option<String>,
    /// The ACME directory URL.
    pub directory: String,
    /// A root to trust for the directory's own HTTPS (an internal CA).
    pub ca_cert: Option<PathBuf>,
    /// Where HTTP-01 challenges are answered (and other requests are sent
    /// on to HTTPS), if anywhere.
    pub http_addr: Option<SocketAddr>,
    /// The challenge used.
    pub challenge: ChallengeKind,
}

/// Where certificate renewal stands, for the status page and metrics.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AcmeReport {
    /// The names asked for.
    pub domains: Vec<String>,
    /// The ACME directory.
    pub directory: String,
    /// The challenge used.
    pub challenge: ChallengeKind,
    /// `issuing` (no ACME certificate yet), `valid` or `failing`.
    pub state: &'static str,
    /// When the ACME certificate in force starts (none yet: `None`).
    pub valid_from: Option<Timestamp>,
    /// When the next attempt is due (renewal or retry).
    pub next_attempt: Option<Timestamp>,
    /// Failed attempts since the last success.
    pub failures: u32,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
    /// When it failed.
    pub last_error_at: Option<Timestamp>,
}

/// The ACME client's parts.
pub(crate) struct Parts {
    /// The ACME settings.
    pub config: AcmeConfig,
    /// Where the account is kept.
    pub dir: DataDir,
    /// Where the certificate is kept.
    pub keeper: Keeper,
    /// Whether this node orders (it leads), and the nodes to tell.
    pub cluster: Cluster,
    /// The listeners' certificate, replaced on each issuance.
    pub live: Arc<LiveCert>,
    /// For the renewal schedule.
    pub clock: Clock,
    /// For issuance and failure records.
    pub audit: AuditLog,
}

/// The ACME client: it owns the renewal schedule.
pub(crate) struct Acme {
    parts: Parts,
    challenges: Arc<Challenges>,
    report: Mutex<AcmeReport>,
}

impl Acme {
    /// The certificate stored by an earlier start, when it still serves
    /// `config`'s names: the listeners start with it.
    pub(crate) fn stored(keeper: &Keeper, config: &AcmeConfig, now: Timestamp) -> Option<TlsPair> {
        let pair = keeper.load().ok().flatten()?;
        let serves = Lifetime::of(&pair).is_some_and(|l| l.serves(&config.domains, now));
        (serves && crate::pki::live::certified(&pair).is_ok()).then_some(pair)
    }

    /// An ACME client serving challenges through `parts.live`.
    pub(crate) fn new(parts: Parts) -> Arc<Acme> {
        let challenges = Arc::new(Challenges::default());
        parts.live.answer_alpn_challenges(challenges.clone());
        let report = AcmeReport {
            domains: parts.config.domains.clone(),
            directory: parts.config.directory.clone(),
            challenge: parts.config.challenge,
            state: "issuing",
            valid_from: None,
            next_attempt: None,
            failures: 0,
            last_error: None,
            last_error_at: None,
        };
        Arc::new(Acme { parts, challenges, report: Mutex::new(report) })
    }

    /// The open challenges (for the HTTP-01 listener).
    pub(crate) fn challenges(&self) -> Arc<Challenges> {
        self.challenges.clone()
    }

    /// Where renewal stands.
    pub(crate) fn report(&self) -> AcmeReport {
        self.report.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, change: impl FnOnce(&mut AcmeReport)) {
        change(&mut self.report.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The stored ACME certificate, when it is the one in force.
    fn in_force(&self) -> Option<Lifetime> {
        let stored = Acme::stored(&self.parts.keeper, &self.parts.config, self.parts.clock.now())?;
        let leaf = crate::pki::tls::certs(&stored.chain_pem).ok()?.into_iter().next()?;
        (self.parts.live.chain().first() == Some(&leaf)).then(|| Lifetime::of(&stored)).flatten()
    }

    /// Orders certificates when due while this node leads, until `stop`
    /// turns true.
    pub(crate) async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if let Some(life) = self.in_force() {
            self.in_force_now(&life);
        }
        let mut leading = self.parts.cluster.leadership();
        loop {
            tokio::select! {
                led = async { leading.wait_for(|l| *l).await.is_ok() } => if !led { return },
                _ = stop.changed() => return,
            }
            if !self.lead(&leading, &mut stop).await {
                return;
            }
        }
    }

    /// Orders when due (at once unless the stored certificate is in force)
    /// until this node stops leading (true) or `stop` turns true (false).
    async fn lead(&self, leading: &crate::store::Leadership, stop: &mut watch::Receiver<bool>) -> bool {
        let mut next = match self.in_force() {
            Some(life) => self.in_force_now(&life),
            None => self.parts.clock.now(),
        };
        let mut follows = leading.clone();
        let lost = async move {
            // One's own store never changes hands: a closed channel is a lead kept.
            if follows.wait_for(|l| !*l).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(lost);
        loop {
            self.update(|r| r.next_attempt = Some(next));
            tokio::select! {
                _ = self.parts.clock.sleep_until(next) => {}
                _ = &mut lost => {
                    self.update(|r| r.next_attempt = None);
                    return true;
                }
                _ = stop.changed() => return false,
            }
            let attempt = tokio::select! {
                attempt = self.renew() => attempt,
                _ = stop.changed() => return false,
            };
            next = match attempt {
                Ok(life) => self.succeeded(&life).await,
                Err(e) => self.failed(&e).await,
            };
        }
    }

    /// One order, checked, stored, then put in force (stored first, so a
    /// certificate in force is always the one a restart finds); the other
    /// nodes are told to answer its challenges, then to serve it.
    async fn renew(&self) -> Result<Lifetime, AcmeError> {
        let Parts { config, dir, live, keeper, cluster, .. } = &self.parts;
        let account = account::load_or_create(dir, config).await?;
        let answerers = order::Answerers { here: &self.challenges, cluster };
        let issued = order::issue(&account, &config.domains, config.challenge, &answerers).await;
        cluster.tell(Relay::Acme { news: AcmeNews::Closed }).await;
        let pair = issued?;
        let life = Lifetime::of(&pair).ok_or(AcmeError::Order("valid, but its certificate does not parse".into()))?;
        crate::pki::live::certified(&pair)?;
        keeper.save(&pair).await?;
        live.replace(&pair)?;
        cluster.tell(Relay::Acme { news: AcmeNews::Issued }).await;
        Ok(life)
    }

    /// What the leading node's ACME client told this one: a challenge to
    /// answer too, or a certificate to serve.
    pub(crate) fn heard(&self, news: &AcmeNews) {
        if let Err(e) = self.challenges.answer(news) {
            tracing::warn!(error = %e, "could not answer an ACME challenge of the leading node");
        }
        if *news == AcmeNews::Issued {
            if let Err(e) = self.adopt() {
                tracing::error!(error = %e, "could not serve the certificate the leading node stored");
            }
        }
    }

    /// Serves the stored certificate, when it serves the names and is not
    /// the one serving already.
    fn adopt(&self) -> Result<(), AcmeError> {
        if self.in_force().is_some() {
            return Ok(());
        }
        let Some(pair) = Acme::stored(&self.parts.keeper, &self.parts.config, self.parts.clock.now()) else {
            return Ok(());
        };
        self.parts.live.replace(&pair)?;
        if let Some(life) = Lifetime::of(&pair) {
            self.in_force_now(&life);
            tracing::info!(not_after = %life.not_after, "serving the ACME certificate the leading node stored");
        }
        Ok(())
    }

    /// Records `life` as the certificate in force; when it is due.
    fn in_force_now(&self, life: &Lifetime) -> Timestamp {
        self.update(|r| {
            r.state = "valid";
            r.valid_from = Some(life.not_before);
            r.failures = 0;
            r.last_error = None;
            r.last_error_at = None;
        });
        life.renew_at()
    }

    async fn succeeded(&self, life: &Lifetime) -> Timestamp {
        let issuer = self.parts.live.facts(self.parts.clock.now()).map(|f| f.issuer).unwrap_or_default();
        tracing::info!(
            domains = ?self.parts.config.domains, %issuer, not_after = %life.not_after,
            "ACME certificate issued and in force"
        );
        let target = self.parts.config.domains.join(",");
        self.parts.audit.record(Event::new(&Actor::System, "certificate.issue", target, "ok")).await;
        self.in_force_now(life);
        life.next_renewal(self.parts.clock.now())
    }

    async fn failed(&self, error: &AcmeError) -> Timestamp {
        let now = self.parts.clock.now();
        let failures = self.report().failures.saturating_add(1);
        let wait = backoff(failures);
        tracing::error!(
            error = %error, failures, retry_in = ?wait,
            "ACME certificate not issued; the certificate in force keeps serving"
        );
        let target = self.parts.config.domains.join(",");
        self.parts.audit.record(Event::new(&Actor::System, "certificate.issue", target, "acme_failed")).await;
        self.update(|r| {
            r.state = if r.valid_from.is_some() { "failing" } else { "issuing" };
            r.failures = failures;
            r.last_error = Some(error.to_string());
            r.last_error_at = Some(now);
        });
        now + crate::clock::span(wait)
    }
}

/// The wait before retry number `failures`: a minute, doubling, at most
/// six hours.
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(LONGEST_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_a_minute_to_six_hours() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(5), Duration::from_secs(960));
        assert_eq!(backoff(40), LONGEST_RETRY);
    }
}
