//! The ACME settings resolved and checked: names a public CA can issue
//! for, one certificate source, a challenge that can be answered.

use super::{invalid, ConfigError, Settings, TlsSource};
use crate::acme::{AcmeConfig, ChallengeKind, LETS_ENCRYPT, LETS_ENCRYPT_STAGING};
use std::net::SocketAddr;

/// The ACME settings, or `None` when no `acme_domain` is set.
pub(super) fn acme_config(s: &Settings, https: SocketAddr, tls: &TlsSource) -> Result<Option<AcmeConfig>, ConfigError> {
    let domains: Vec<String> = s.acme_domain.iter().flatten().map(|d| d.trim().to_ascii_lowercase()).collect();
    if domains.is_empty() {
        let others = s.acme_email.is_some() || s.acme_directory.is_some() || s.acme_challenge.is_some();
        return match others {
            true => Err(invalid("acme_domain", "the other ACME settings need at least one acme_domain")),
            false => Ok(None),
        };
    }
    if let Some(bad) = domains.iter().find(|d| !dns_name(d)) {
        return Err(invalid("acme_domain", format!("`{bad}` is not a DNS name a public CA can issue for")));
    }
    if *tls != TlsSource::Generated || s.insecure_http == Some(true) {
        return Err(invalid("acme_domain", "ACME cannot be combined with tls_cert/tls_key or insecure_http"));
    }
    let http_addr = http_addr(s.acme_http_addr.as_deref())?;
    let challenge = challenge(s.acme_challenge.as_deref(), https, http_addr)?;
    Ok(Some(AcmeConfig {
        domains,
        email: email(s)?,
        directory: directory(s)?,
        ca_cert: s.acme_ca_cert.clone(),
        http_addr,
        challenge,
    }))
}

/// A DNS name of letters, digits and hyphens, with at least two labels
/// (no IP addresses, no wildcards: those need other challenges).
fn dns_name(name: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    name.len() <= 253 && name.contains('.') && name.split('.').all(label) && name.parse::<std::net::IpAddr>().is_err()
}

fn email(s: &Settings) -> Result<Option<String>, ConfigError> {
    match s.acme_email.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(e) if e.contains('@') && !e.contains(|c: char| c.is_whitespace() || c == ':') => Ok(Some(e.to_owned())),
        Some(_) => Err(invalid("acme_email", "an e-mail address such as ops@example.com")),
    }
}

fn directory(s: &Settings) -> Result<String, ConfigError> {
    let url = match (&s.acme_directory, s.acme_staging) {
        (Some(url), _) => url.clone(),
        (None, Some(true)) => LETS_ENCRYPT_STAGING.to_owned(),
        (None, _) => LETS_ENCRYPT.to_owned(),
    };
    match url::Url::parse(&url) {
        Ok(parsed) if parsed.scheme() == "https" => Ok(url),
        _ => Err(invalid("acme_directory", "an https:// URL of an ACME directory")),
    }
}

/// `:80` (every address), `HOST:PORT`, or `off`.
fn http_addr(value: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
    let value = value.unwrap_or(":80").trim();
    if value == "off" {
        return Ok(None);
    }
    let full = if value.starts_with(':') { format!("0.0.0.0{value}") } else { value.to_owned() };
    full.parse().map(Some).map_err(|_| invalid("acme_http_addr", "`:80`, an address such as 0.0.0.0:80, or `off`"))
}

fn challenge(
    value: Option<&str>,
    https: SocketAddr,
    http_addr: Option<SocketAddr>,
) -> Result<ChallengeKind, ConfigError> {
    let kind = match value {
        Some("tls-alpn-01") => ChallengeKind::TlsAlpn01,
        Some("http-01") => ChallengeKind::Http01,
        Some(_) => return Err(invalid("acme_challenge", "`tls-alpn-01` or `http-01`")),
        None if https.port() == 443 => ChallengeKind::TlsAlpn01,
        None => ChallengeKind::Http01,
    };
    if kind == ChallengeKind::Http01 && http_addr.is_none() {
        return Err(invalid("acme_http_addr", "the HTTP-01 challenge needs a listener; set acme_http_addr"));
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(domains: &[&str]) -> Settings {
        Settings { acme_domain: Some(domains.iter().map(|d| d.to_string()).collect()), ..Settings::default() }
    }

    fn https(port: u16) -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], port))
    }

    #[test]
    fn off_unless_a_domain_is_named() {
        assert_eq!(acme_config(&Settings::default(), https(443), &TlsSource::Generated).unwrap(), None);
        let stray = Settings { acme_email: Some("ops@example.com".into()), ..Settings::default() };
        assert!(acme_config(&stray, https(443), &TlsSource::Generated).is_err());
    }

    #[test]
    fn defaults_are_lets_encrypt_on_port_80_with_the_challenge_the_port_allows() {
        let on_443 = acme_config(&settings(&["Pair.Example.com"]), https(443), &TlsSource::Generated).unwrap().unwrap();
        assert_eq!(on_443.domains, ["pair.example.com"]);
        assert_eq!(on_443.directory, LETS_ENCRYPT);
        assert_eq!(on_443.http_addr, Some(SocketAddr::from(([0, 0, 0, 0], 80))));
        assert_eq!(on_443.challenge, ChallengeKind::TlsAlpn01);
        let on_8443 =
            acme_config(&settings(&["pair.example.com"]), https(8443), &TlsSource::Generated).unwrap().unwrap();
        assert_eq!(on_8443.challenge, ChallengeKind::Http01);
        let staging = Settings { acme_staging: Some(true), ..settings(&["pair.example.com"]) };
        assert_eq!(
            acme_config(&staging, https(443), &TlsSource::Generated).unwrap().unwrap().directory,
            LETS_ENCRYPT_STAGING
        );
    }

    #[test]
    fn refuses_what_cannot_work() {
        for bad in ["localhost", "10.0.0.1", "*.example.com", "-a.example.com", "a..example.com"] {
            assert!(acme_config(&settings(&[bad]), https(443), &TlsSource::Generated).is_err(), "{bad}");
        }
        let files = TlsSource::Files { cert: "/c.pem".into(), key: "/k.pem".into() };
        assert!(acme_config(&settings(&["pair.example.com"]), https(443), &files).is_err());
        let no_http = Settings { acme_http_addr: Some("off".into()), ..settings(&["pair.example.com"]) };
        assert!(acme_config(&no_http, https(8443), &TlsSource::Generated).is_err());
        let plain_directory =
            Settings { acme_directory: Some("http://ca.local/dir".into()), ..settings(&["a.example.com"]) };
        assert!(acme_config(&plain_directory, https(443), &TlsSource::Generated).is_err());
        let bad_email = Settings { acme_email: Some("mailto:ops".into()), ..settings(&["a.example.com"]) };
        assert!(acme_config(&bad_email, https(443), &TlsSource::Generated).is_err());
    }
}
