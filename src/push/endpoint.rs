//! Which push endpoints a phone may register: `https` URLs on the browsers'
//! push services, or on a host the operator listed (a self-hosted
//! UnifiedPush distributor, allowed even on a private or loopback address).
//! Anything else is refused, so a phone cannot make the appliance call an
//! internal address.

use super::PushError;

/// The browsers' push services (Chrome, Firefox, Safari, Edge).
const BROWSER_SERVICES: [&str; 4] =
    ["fcm.googleapis.com", "updates.push.services.mozilla.com", "*.push.apple.com", "*.notify.windows.com"];

/// Longest endpoint URL kept.
const MAX_LEN: usize = 1024;

/// The hosts push endpoints may name.
#[derive(Debug, Clone)]
pub(crate) struct AllowedHosts {
    patterns: Vec<String>,
}

impl AllowedHosts {
    /// The browsers' push services and the operator's `extra` hosts (a
    /// name, an address, or `*.domain`).
    pub(crate) fn new(extra: &[String]) -> AllowedHosts {
        let listed = extra.iter().map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase());
        let patterns = BROWSER_SERVICES.iter().map(|h| (*h).to_owned()).chain(listed.filter(|h| !h.is_empty()));
        AllowedHosts { patterns: patterns.collect() }
    }

    /// Checks `endpoint`: an `https` URL without credentials on an allowed
    /// host.
    pub(crate) fn check(&self, endpoint: &str) -> Result<url::Url, PushError> {
        let refused = |why: &str| PushError::Endpoint(why.to_owned());
        if endpoint.len() > MAX_LEN {
            return Err(refused("is longer than 1024 characters"));
        }
        let url = url::Url::parse(endpoint).map_err(|_| refused("is not a URL"))?;
        if url.scheme() != "https" {
            return Err(refused("must be an https URL"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refused("must not carry credentials"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(refused("has no host")),
        };
        if !self.patterns.iter().any(|p| matches(p, &host)) {
            return Err(refused("is not on a browser push service or a host listed in --push-allowed-hosts"));
        }
        Ok(url)
    }
}

fn matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(domain) => host.strip_suffix(domain).is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_services_and_listed_hosts_only() {
        let hosts = AllowedHosts::new(&["push.corp.example".into(), "127.0.0.1".into(), "*.up.example".into()]);
        for good in [
            "https://fcm.googleapis.com/fcm/send/abc",
            "https://updates.push.services.mozilla.com/wpush/v2/x",
            "https://web.push.apple.com/QGx",
            "https://wns2-by3p.notify.windows.com/w/?token=x",
            "https://push.corp.example/up/x",
            "https://127.0.0.1:8443/push/x",
            "https://a.up.example/x",
        ] {
            assert!(hosts.check(good).is_ok(), "{good}");
        }
        for bad in [
            "http://fcm.googleapis.com/fcm/send/abc",
            "https://push.apple.com.evil.example/x",
            "https://evilpush.apple.com/x",
            "https://10.0.0.5/x",
            "https://127.0.0.2/x",
            "https://[::1]/x",
            "https://localhost/x",
            "https://user:pw@fcm.googleapis.com/x",
            "https://up.example/x",
            "not a url",
        ] {
            assert!(matches!(hosts.check(bad), Err(PushError::Endpoint(_))), "{bad}");
        }
        assert!(hosts.check(&format!("https://fcm.googleapis.com/{}", "a".repeat(1100))).is_err());
    }
}
