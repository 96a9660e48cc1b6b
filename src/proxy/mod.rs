//! Reverse proxies and load balancers in front of the appliance: which
//! addresses are trusted to say who the client is (`--trusted-proxies`),
//! the client address they forward over HTTP (`forwarded`), and the PROXY
//! protocol header they put before a phone's MQTT connection (`protocol`).
//! Nothing a client sends is believed unless its connection comes from a
//! trusted proxy.

pub(crate) mod forwarded;
pub(crate) mod protocol;

use ipnet::IpNet;
use std::net::IpAddr;

/// The networks whose connections may name the real client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8`, `192.0.2.7` or `2001:db8::/32` entries.
    pub(crate) fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => entry.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                    format!("`{entry}` is not an address or a network (10.0.0.0/8, 192.0.2.7, 2001:db8::/32)")
                })?,
            };
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    /// Whether a connection from `ip` is a trusted proxy's.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether any proxy is trusted.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_single_addresses_are_trusted_and_nothing_else() {
        let trusted =
            TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.7".into(), "2001:db8::/32".into()]).unwrap();
        assert!(trusted.contains("10.20.30.40".parse().unwrap()));
        assert!(trusted.contains("192.0.2.7".parse().unwrap()));
        assert!(trusted.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(trusted.contains("2001:db8::1".parse().unwrap()));
        assert!(!trusted.contains("192.0.2.8".parse().unwrap()));
        assert!(!trusted.contains("11.0.0.1".parse().unwrap()));
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["example.com".into()]).is_err());
        assert!(TrustedProxies::default().is_empty());
    }
}
