//! One ACME order (RFC 8555 §7.4): ask for the configured names, answer
//! each authorization's challenge of the configured type, wait for the
//! server to validate, send a certificate request for a new P-256 key, and
//! fetch the chain.

use super::challenges::Challenges;
use super::error::AcmeError;
use super::ChallengeKind;
use crate::cluster::relay::AcmeNews;
use crate::cluster::{Cluster, Relay};
use crate::pki::TlsPair;
use instant_acme::{Account, AuthorizationStatus, Identifier, NewOrder, OrderStatus, RetryPolicy};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use std::time::Duration;

/// How long the server may take to validate and to issue.
const PATIENCE: Duration = Duration::from_secs(120);

/// Clears the challenges' answers however the order ends.
struct Answering<'a>(&'a Challenges);

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// Where challenges are answered: here, and on the other nodes.
pub(crate) struct Answerers<'a> {
    /// This node's answers.
    pub here: &'a Challenges,
    /// The other nodes (the CA may reach any of them).
    pub cluster: &'a Cluster,
}

/// Orders a certificate for `domains`, answering challenges of `kind`.
pub(crate) async fn issue(
    account: &Account,
    domains: &[String],
    kind: ChallengeKind,
    answerers: &Answerers<'_>,
) -> Result<TlsPair, AcmeError> {
    let identifiers: Vec<Identifier> = domains.iter().map(|d| Identifier::Dns(d.clone())).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let _answering = Answering(answerers.here);
    answer(&mut order, kind, answerers).await?;
    let retries = RetryPolicy::new().timeout(PATIENCE);
    let status = order.poll_ready(&retries).await?;
    if status != OrderStatus::Ready {
        let why = order.state().error.as_ref().map(|p| p.to_string()).unwrap_or_default();
        return Err(AcmeError::Order(format!("{status:?} {why}").trim().to_owned()));
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(domains.to_vec())?;
    params.distinguished_name = DistinguishedName::new();
    order.finalize_csr(params.serialize_request(&key)?.der()).await?;
    let chain_pem = order.poll_certificate(&retries).await?;
    Ok(TlsPair { chain_pem, key_pem: key.serialize_pem() })
}

/// Answers every pending authorization of `order` and tells the server.
async fn answer(
    order: &mut instant_acme::Order,
    kind: ChallengeKind,
    answerers: &Answerers<'_>,
) -> Result<(), AcmeError> {
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        let name = authorization.identifier().to_string();
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(AcmeError::Authorization(name, format!("{other:?}"))),
        }
        let mut challenge =
            authorization.challenge(kind.acme()).ok_or(AcmeError::NotOffered(kind.name(), name.clone()))?;
        let key_authorization = challenge.key_authorization();
        let news = match kind {
            ChallengeKind::Http01 => {
                let key_authorization = key_authorization.as_str().to_owned();
                AcmeNews::Http01 { token: challenge.token.clone(), key_authorization }
            }
            ChallengeKind::TlsAlpn01 => {
                AcmeNews::TlsAlpn01 { name: name.clone(), digest: hex::encode(key_authorization.digest()) }
            }
        };
        answerers.here.answer(&news)?;
        answerers.cluster.tell(Relay::Acme { news }).await;
        challenge.set_ready().await?;
        tracing::info!(domain = %name, challenge = kind.name(), "ACME challenge answered");
    }
    Ok(())
}
