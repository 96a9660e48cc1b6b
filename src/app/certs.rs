//! The certificates the listeners start with.

use crate::acme::stored::Keeper;
use crate::clock::Clock;
use crate::config::{Config, TlsSource};
use crate::pki::live::LiveCert;
use crate::pki::{self, Ca};
use crate::store::datadir::DataDir;
use anyhow::Context as _;
use std::sync::Arc;

/// The listeners' certificates: HTTPS and MQTT. Both present the
/// operator's files or one from the appliance CA (for the extra names and
/// the ACME names). With ACME, HTTPS presents the ACME certificate (an
/// earlier start's, until renewal) while MQTT keeps the appliance CA's:
/// phones get that CA in the pairing answer, over HTTPS the public CA
/// vouches for, so no change of the ACME issuer can strand a paired phone.
pub(super) fn listener_certs(
    config: &Config,
    dir: &DataDir,
    keeper: &Keeper,
    ca: &Ca,
    clock: &Clock,
) -> anyhow::Result<(Arc<LiveCert>, Arc<LiveCert>)> {
    let acme_names = config.acme.iter().flat_map(|a| a.domains.iter().cloned());
    let names: Vec<String> = config.tls_sans.iter().cloned().chain(acme_names).collect();
    let own = match &config.tls {
        TlsSource::Generated => pki::server_tls(dir, ca, &pki::server_names(&names))?,
        TlsSource::Files { cert, key } => crate::pki::live::read_pair(cert, key)
            .with_context(|| format!("reading {} and {}", cert.display(), key.display()))?,
    };
    let mqtt = LiveCert::new(&own)?;
    let Some(acme) = &config.acme else { return Ok((mqtt.clone(), mqtt)) };
    let https = crate::acme::Acme::stored(keeper, acme, clock.now()).unwrap_or(own);
    Ok((LiveCert::new(&https)?, mqtt))
}
