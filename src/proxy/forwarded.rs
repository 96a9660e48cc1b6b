//! The client address a trusted proxy forwards over HTTP: the `Forwarded`
//! header's `for=` (RFC 7239), else `X-Forwarded-For`. Each proxy appends
//! the address it was reached from, so the chain is read from the right:
//! the first address that is not itself a trusted proxy is the client's.
//! A request that does not come from a trusted proxy keeps its peer
//! address, whatever it claims.

use super::TrustedProxies;
use http::HeaderMap;
use std::net::IpAddr;

/// The client address of a request that arrived from `peer`.
pub(crate) fn client(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let chain = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
    let Some(chain) = chain else { return peer };
    let mut client = peer;
    for hop in chain.iter().rev() {
        match hop {
            Some(ip) if trusted.contains(*ip) => client = *ip,
            Some(ip) => return *ip,
            // An address that does not parse ("unknown", an obfuscated
            // name): the last proxy that said something trustworthy stands.
            None => return client,
        }
    }
    client
}

/// The `for=` addresses of every `Forwarded` header, in order.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all(http::header::FORWARDED) {
        let text = value.to_str().ok()?;
        for element in text.split(',') {
            let found = element.split(';').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.trim().eq_ignore_ascii_case("for").then(|| parse_node(value.trim()))
            });
            if let Some(node) = found {
                hops.push(node);
            }
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// The addresses of every `X-Forwarded-For` header, in order.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let text = value.to_str().ok()?;
        hops.extend(text.split(',').map(|hop| parse_node(hop.trim())));
    }
    (!hops.is_empty()).then_some(hops)
}

/// `192.0.2.7`, `"[2001:db8::1]:4711"`, `192.0.2.7:80`.
fn parse_node(text: &str) -> Option<IpAddr> {
    let text = text.trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.rsplit_once(':').and_then(|(host, _port)| host.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        map
    }

    fn trusted() -> TrustedProxies {
        TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed() {
        let h = headers(&[("x-forwarded-for", "198.51.100.9")]);
        assert_eq!(client(ip("203.0.113.5"), &h, &trusted()), ip("203.0.113.5"));
        assert_eq!(client(ip("10.0.0.2"), &h, &trusted()), ip("198.51.100.9"));
        assert_eq!(client(ip("10.0.0.2"), &HeaderMap::new(), &trusted()), ip("10.0.0.2"));
    }

    #[test]
    fn the_chain_is_read_from_the_right_past_trusted_proxies() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.9, 10.0.0.7")]);
        assert_eq!(client(ip("10.0.0.2"), &h, &trusted()), ip("198.51.100.9"), "a spoofed left end is ignored");
        let split = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "198.51.100.9")]);
        assert_eq!(client(ip("10.0.0.2"), &split, &trusted()), ip("198.51.100.9"));
        let all_trusted = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.7")]);
        assert_eq!(client(ip("10.0.0.2"), &all_trusted, &trusted()), ip("10.0.0.9"));
        let garbage = headers(&[("x-forwarded-for", "198.51.100.9, nonsense")]);
        assert_eq!(client(ip("10.0.0.2"), &garbage, &trusted()), ip("10.0.0.2"));
    }

    #[test]
    fn the_forwarded_header_wins_and_takes_every_form() {
        let h = headers(&[
            ("forwarded", r#"for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711""#),
            ("x-forwarded-for", "198.51.100.9"),
        ]);
        assert_eq!(client(ip("10.0.0.2"), &h, &trusted()), ip("2001:db8:cafe::17"));
        let port = headers(&[("forwarded", "for=\"192.0.2.60:8080\"")]);
        assert_eq!(client(ip("10.0.0.2"), &port, &trusted()), ip("192.0.2.60"));
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(client(ip("10.0.0.2"), &unknown, &trusted()), ip("10.0.0.2"));
    }
}
