//! Start-up of certificates by ACME: the public base URL the ACME name
//! gives, the ACME client, and its plain-HTTP challenge listener.

use crate::acme::{Acme, AcmeConfig, ChallengeKind, Parts};
use anyhow::Context as _;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The ACME client and, where HTTP-01 is answered, its listener.
pub(super) struct AcmeStart {
    pub acme: Arc<Acme>,
    pub http: Option<TcpListener>,
}

/// `https://NAME` for the first ACME name (with the port unless 443).
pub(super) fn base_url(config: &AcmeConfig, https_port: u16) -> Option<String> {
    let name = config.domains.first()?;
    Some(match https_port {
        443 => format!("https://{name}"),
        port => format!("https://{name}:{port}"),
    })
}

/// Makes the ACME client and binds its plain-HTTP listener. A listener
/// that cannot be bound stops the start when HTTP-01 needs it; otherwise
/// the appliance runs without the redirect, and the log says so.
pub(super) async fn start(parts: Parts) -> anyhow::Result<AcmeStart> {
    let (addr, challenge) = (parts.config.http_addr, parts.config.challenge);
    let http = match addr {
        None => None,
        Some(addr) => match TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(e) if challenge == ChallengeKind::Http01 => {
                return Err(e).with_context(|| format!("binding {addr} for ACME HTTP-01 challenges"));
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "no plain-HTTP redirect to HTTPS: the address cannot be bound");
                None
            }
        },
    };
    Ok(AcmeStart { acme: Acme::new(parts), http })
}
