//! Console sign-in through the company's OpenID provider (OpenID Connect
//! authorization code flow with PKCE, `state` and `nonce`, by the
//! `openidconnect` crate): `begin` gives the provider's sign-in URL;
//! `finish` checks the callback's state against the browser that began,
//! exchanges the code, checks the ID token (signature by the provider's
//! keys, issuer, audience, expiry, nonce) and turns its claims into a
//! person with a role; `logout_url` ends the provider's session too where
//! the provider supports RP-initiated logout.

mod claims;
mod error;
mod logins;
mod provider;

pub(crate) use error::OidcError;

use crate::clock::Clock;
use crate::config::OidcConfig;
use crate::people::Person;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use logins::{Logins, Unfinished};
use openidconnect::core::{CoreAuthenticationFlow, CoreIdToken};
use openidconnect::TokenResponse as _;
use openidconnect::{AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce};
use openidconnect::{ClaimsVerificationError, LogoutRequest, PkceCodeChallenge, PkceCodeVerifier};
use openidconnect::{PostLogoutRedirectUrl, RedirectUrl, RequestTokenError, Scope, SignatureVerificationError};
use provider::{Known, Provider};
use rand::RngCore;
use std::os::unix::fs::PermissionsExt;

/// The path the provider sends the browser back to.
pub(crate) const CALLBACK_PATH: &str = "/auth/callback";

/// A sign-in begun: where to send the browser, and the value for its
/// login cookie (which binds the callback to this browser).
pub(crate) struct Begun {
    /// The provider's sign-in URL.
    pub url: String,
    /// The login cookie's value.
    pub browser: String,
}

/// A finished sign-in.
pub(crate) struct SignedIn {
    /// Who signed in, with their role.
    pub person: Person,
    /// The ID token (the hint for the provider's logout).
    pub id_token: String,
}

/// What a callback brought back from the provider.
pub(crate) struct Callback<'a> {
    /// `state`.
    pub state: Option<&'a str>,
    /// `code`.
    pub code: Option<&'a str>,
    /// `error` (and `error_description`), when the provider refused.
    pub error: Option<String>,
    /// The login cookie.
    pub browser: Option<&'a str>,
}

/// Single sign-on with one OpenID provider.
pub(crate) struct Oidc {
    config: OidcConfig,
    provider: Provider,
    logins: Logins,
    base_url: String,
    clock: Clock,
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The client secret from its file, which no one else may read.
fn read_secret(path: &std::path::Path) -> anyhow::Result<String> {
    let meta =
        std::fs::metadata(path).map_err(|e| anyhow::anyhow!("oidc_client_secret_file {}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        anyhow::bail!("oidc_client_secret_file {} must be readable by its owner only (chmod 600)", path.display());
    }
    let secret = std::fs::read_to_string(path)?.trim().to_owned();
    anyhow::ensure!(!secret.is_empty(), "oidc_client_secret_file {} is empty", path.display());
    Ok(secret)
}

/// The HTTP client for the provider: no redirects (the crate's advice
/// against SSRF), a timeout, and the configured CA besides the public ones.
/// No idle connection is kept: sign-ins come at a person's pace, and a
/// kept one the provider closes after its own keep-alive (5 s for Node or
/// Apache) can be closed just as a token request is written on it, which
/// failed a sign-in with "the identity provider could not be reached".
fn http_client(config: &OidcConfig) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(10));
    if let Some(path) = &config.ca_cert {
        let pem = std::fs::read(path).map_err(|e| anyhow::anyhow!("oidc_ca_cert {}: {e}", path.display()))?;
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    Ok(builder.build()?)
}

impl Oidc {
    /// Single sign-on as configured, for an appliance at `base_url`
    /// (nothing is fetched from the provider until the first sign-in).
    pub(crate) fn new(config: &OidcConfig, base_url: &str, clock: Clock) -> anyhow::Result<Oidc> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let secret = read_secret(&config.client_secret_file)?;
        let issuer = IssuerUrl::new(config.issuer.clone())?;
        let redirect = RedirectUrl::new(format!("{base_url}{CALLBACK_PATH}"))?;
        let client = (ClientId::new(config.client_id.clone()), ClientSecret::new(secret));
        let provider = Provider::new(issuer, client, redirect, http_client(config)?, clock.clone());
        Ok(Oidc { config: config.clone(), provider, logins: Logins::new(clock.clone()), base_url, clock })
    }

    /// Begins a sign-in: the provider's URL to send the browser to.
    pub(crate) async fn begin(&self) -> Result<Begun, OidcError> {
        let known = self.provider.known().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = known.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let browser = random();
        let started = self.logins.start(state.into_secret(), verifier.into_secret(), nonce.secret().clone(), &browser);
        started.map_err(|_| OidcError::Busy)?;
        Ok(Begun { url: url.to_string(), browser })
    }

    /// Finishes a sign-in from the provider's callback.
    pub(crate) async fn finish(&self, callback: Callback<'_>) -> Result<SignedIn, OidcError> {
        let state = callback.state.ok_or(OidcError::UnknownState)?;
        let pending = self.logins.finish(state, callback.browser).map_err(|e| match e {
            Unfinished::Expired => OidcError::Expired,
            Unfinished::Unknown | Unfinished::Full => OidcError::UnknownState,
        })?;
        if let Some(error) = callback.error {
            return Err(OidcError::Refused(error));
        }
        let code = callback.code.ok_or_else(|| OidcError::Exchange("the callback carried no code".into()))?;
        let known = self.provider.known().await?;
        let token = self.exchange(&known, code, pending.verifier).await?;
        let nonce = Nonce::new(pending.nonce);
        let payload = match self.verify(&known, &token, &nonce) {
            Err(OidcError::IdToken(why)) if why == NO_MATCHING_KEY => match self.provider.refresh_keys().await? {
                Some(refreshed) => self.verify(&refreshed, &token, &nonce)?,
                None => return Err(OidcError::IdToken(why)),
            },
            other => other?,
        };
        let person = claims::person(&self.config, &payload, self.clock.now())?;
        Ok(SignedIn { person, id_token: token.to_string() })
    }

    /// Exchanges the code (with the PKCE verifier) for the ID token.
    async fn exchange(&self, known: &Known, code: &str, verifier: String) -> Result<CoreIdToken, OidcError> {
        let request = known.client.exchange_code(AuthorizationCode::new(code.to_owned()));
        let request = request.map_err(|e| OidcError::Provider(e.to_string()))?;
        let response =
            request.set_pkce_verifier(PkceCodeVerifier::new(verifier)).request_async(self.provider.http()).await;
        let response = response.map_err(|e| match e {
            RequestTokenError::ServerResponse(refused) => OidcError::Exchange(refused.to_string()),
            other => OidcError::Provider(error::with_causes(&other)),
        })?;
        response.id_token().cloned().ok_or_else(|| OidcError::Exchange("the provider sent no ID token".into()))
    }

    /// Checks the ID token; its claims as JSON.
    fn verify(&self, known: &Known, token: &CoreIdToken, nonce: &Nonce) -> Result<serde_json::Value, OidcError> {
        let clock = self.clock.clone();
        let verifier = known.client.id_token_verifier().set_time_fn(move || clock.now());
        token.claims(&verifier, nonce).map_err(|e| match e {
            ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey) => {
                OidcError::IdToken(NO_MATCHING_KEY.into())
            }
            other => OidcError::IdToken(other.to_string()),
        })?;
        // The claims this appliance reads beyond the standard ones (the
        // groups, a configured user id claim) come from the payload of the
        // token whose signature and claims were just checked.
        let text = token.to_string();
        let part = text.split('.').nth(1).ok_or_else(|| OidcError::IdToken("not a signed JWT".into()))?;
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|e| OidcError::IdToken(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| OidcError::IdToken(e.to_string()))
    }

    /// Where to send the browser to end the provider's session too (None:
    /// the provider has no RP-initiated logout).
    pub(crate) async fn logout_url(&self, id_token: &str) -> Option<String> {
        let known = self.provider.known().await.ok()?;
        let token: CoreIdToken = id_token.parse().ok()?;
        let after = PostLogoutRedirectUrl::new(format!("{}/", self.base_url)).ok()?;
        let request = LogoutRequest::from(known.end_session?)
            .set_id_token_hint(&token)
            .set_client_id(ClientId::new(self.config.client_id.clone()))
            .set_post_logout_redirect_uri(after);
        Some(request.http_get_url().to_string())
    }
}

/// How `verify` says the token was signed by a key it does not know.
const NO_MATCHING_KEY: &str = "signed by a key the provider does not list";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_secret_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_secret(&file).unwrap_err().to_string().contains("chmod 600"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret(&file).unwrap(), "s3cret");
    }
}
