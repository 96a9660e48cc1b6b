//! The provider as this appliance knows it: its discovery document (with
//! RP-initiated logout's `end_session_endpoint`) and signing keys, fetched
//! on first use and again after an hour; the keys also when an ID token
//! names a key not among them (at most once a minute, so a flood of forged
//! tokens cannot make the appliance hammer the provider).

use super::error::with_causes;
use super::OidcError;
use crate::clock::{Clock, Timestamp};
use openidconnect::core::{CoreClient, CoreJsonWebKeySet};
use openidconnect::{ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, RedirectUrl};
use openidconnect::{EndSessionUrl, ProviderMetadataWithLogout};
use tokio::sync::Mutex;

/// The client for the provider's endpoints, as discovery leaves it.
pub(super) type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// How long discovery is believed.
const FRESH_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Least time between two key refreshes for unknown keys.
const KEY_REFRESH_GAP: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// What discovery found.
#[derive(Clone)]
pub(super) struct Known {
    /// The client, with the provider's endpoints and keys.
    pub client: Client,
    /// Where RP-initiated logout sends the browser, if the provider has it.
    pub end_session: Option<EndSessionUrl>,
    metadata: ProviderMetadataWithLogout,
    fetched_at: Timestamp,
    keys_refreshed_at: Option<Timestamp>,
}

/// The provider's metadata and keys, cached.
pub(super) struct Provider {
    issuer: IssuerUrl,
    client_id: ClientId,
    secret: ClientSecret,
    redirect: RedirectUrl,
    http: reqwest::Client,
    known: Mutex<Option<Known>>,
    clock: Clock,
}

impl Provider {
    /// Nothing fetched yet.
    pub(super) fn new(
        issuer: IssuerUrl,
        client: (ClientId, ClientSecret),
        redirect: RedirectUrl,
        http: reqwest::Client,
        clock: Clock,
    ) -> Provider {
        let (client_id, secret) = client;
        Provider { issuer, client_id, secret, redirect, http, known: Mutex::new(None), clock }
    }

    /// The HTTP client that talks to the provider (no redirects followed).
    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The client, discovering the provider when nothing fresh is known.
    pub(super) async fn known(&self) -> Result<Known, OidcError> {
        let mut known = self.known.lock().await;
        let now = self.clock.now();
        match known.as_ref() {
            Some(k) if now - k.fetched_at < FRESH_FOR => Ok(k.clone()),
            _ => {
                let fresh = self.discover(now).await?;
                *known = Some(fresh.clone());
                Ok(fresh)
            }
        }
    }

    /// Fetches the keys again (an ID token named one not among them);
    /// `None` when an unknown key made it do so less than a minute ago.
    pub(super) async fn refresh_keys(&self) -> Result<Option<Known>, OidcError> {
        let mut guard = self.known.lock().await;
        let now = self.clock.now();
        let Some(known) = guard.as_mut() else { return Ok(None) };
        if known.keys_refreshed_at.is_some_and(|at| now - at < KEY_REFRESH_GAP) {
            return Ok(None);
        }
        known.keys_refreshed_at = Some(now);
        let keys = CoreJsonWebKeySet::fetch_async(known.metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| OidcError::Provider(format!("its keys: {}", with_causes(&e))))?;
        known.metadata = known.metadata.clone().set_jwks(keys);
        known.client = self.client_for(known.metadata.clone());
        Ok(Some(known.clone()))
    }

    async fn discover(&self, now: Timestamp) -> Result<Known, OidcError> {
        let metadata = ProviderMetadataWithLogout::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| OidcError::Provider(format!("discovery at {}: {}", self.issuer.as_str(), with_causes(&e))))?;
        let end_session = metadata.additional_metadata().end_session_endpoint.clone();
        Ok(Known {
            client: self.client_for(metadata.clone()),
            end_session,
            metadata,
            fetched_at: now,
            keys_refreshed_at: None,
        })
    }

    fn client_for(&self, metadata: ProviderMetadataWithLogout) -> Client {
        CoreClient::from_provider_metadata(metadata, self.client_id.clone(), Some(self.secret.clone()))
            .set_redirect_uri(self.redirect.clone())
    }
}
