//! The OpenID Connect settings resolved and checked: an issuer URL the
//! appliance may call (HTTPS, or plain HTTP on loopback only), a client,
//! the claims that carry the person's user id and groups, and the groups
//! that make an admin or a developer.

use super::{invalid, ConfigError, Settings};
use std::path::PathBuf;

/// Console sign-in through the company's OpenID provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OidcConfig {
    /// The issuer (its discovery document is `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// This appliance's client id at the provider.
    pub client_id: String,
    /// The file holding the client secret (0600; read at start).
    pub client_secret_file: PathBuf,
    /// A CA to trust for the provider besides the public ones.
    pub ca_cert: Option<PathBuf>,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// The claim listing the person's groups.
    pub role_claim: String,
    /// The group whose members are admins.
    pub admin_group: String,
    /// The group whose members are developers.
    pub developer_group: String,
    /// The claim holding the person's user id.
    pub user_claim: String,
}

/// The OpenID settings, or `None` when no `oidc_issuer` is set.
pub(super) fn oidc_config(s: &Settings) -> Result<Option<OidcConfig>, ConfigError> {
    let Some(issuer) = s.oidc_issuer.as_deref().map(str::trim) else {
        return match s.oidc_client_id.is_some() || s.oidc_client_secret_file.is_some() {
            true => Err(invalid("oidc_issuer", "the other OpenID settings need oidc_issuer")),
            false => Ok(None),
        };
    };
    check_issuer(issuer)?;
    let client_id = s.oidc_client_id.clone().filter(|c| !c.trim().is_empty());
    let client_id = client_id.ok_or_else(|| invalid("oidc_client_id", "is required with oidc_issuer"))?;
    let secret = s.oidc_client_secret_file.clone();
    let client_secret_file =
        secret.ok_or_else(|| invalid("oidc_client_secret_file", "is required with oidc_issuer"))?;
    let word = |value: &Option<String>, default: &str| value.clone().unwrap_or_else(|| default.to_owned());
    Ok(Some(OidcConfig {
        issuer: issuer.trim_end_matches('/').to_owned(),
        client_id,
        client_secret_file,
        ca_cert: s.oidc_ca_cert.clone(),
        scopes: s.oidc_scopes.clone().unwrap_or_else(|| vec!["profile".into(), "email".into()]),
        role_claim: word(&s.oidc_role_claim, "groups"),
        admin_group: word(&s.oidc_admin_group, "topdog-admins"),
        developer_group: word(&s.oidc_developer_group, "topdog-developers"),
        user_claim: word(&s.oidc_user_claim, "preferred_username"),
    }))
}

/// HTTPS, or HTTP to a loopback address (a provider on this machine).
fn check_issuer(issuer: &str) -> Result<(), ConfigError> {
    let url = url::Url::parse(issuer).map_err(|e| invalid("oidc_issuer", e.to_string()))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(invalid("oidc_issuer", "must be an https URL (plain http only to a provider on loopback)")),
    }
}
