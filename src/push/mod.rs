//! Web Push: reaching a phone whose app is closed. The appliance is its own
//! application server (RFC 8030 delivery, RFC 8291 encryption, RFC 8292
//! VAPID): phones register the subscriptions their browsers make, and every
//! message the appliance sends a phone is also pushed to each of them,
//! end-to-end encrypted, from a bounded queue that never delays the API.
//! The parts: which endpoints are allowed (`endpoint`), the subscriptions
//! (`subscriptions`), the VAPID key and headers (`vapid`) and the queue
//! that sends (`sender`).

pub(crate) mod encrypt;
pub(crate) mod endpoint;
pub(crate) mod error;
pub(crate) mod sender;
pub(crate) mod subscriptions;
pub(crate) mod vapid;

pub(crate) use error::PushError;

use crate::clock::Clock;
use crate::devices::{DeviceState, Devices};
use crate::metrics::Metrics;
use crate::store::datadir::DataDir;
use crate::store::Store;
use anyhow::Context as _;
use endpoint::AllowedHosts;
use sender::{Message, Sender};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use subscriptions::Subscriptions;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vapid::Vapid;

/// The operator's push settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct PushConfig {
    /// Hosts besides the browsers' push services (`--push-allowed-hosts`).
    pub allowed_hosts: Vec<String>,
    /// A root the sender trusts besides the web's (`--push-ca-cert`).
    pub ca_cert: Option<PathBuf>,
    /// The VAPID contact (`sub`): a `mailto:` or `https:` URL.
    pub contact: String,
}

/// What Web Push needs from the rest of the appliance.
pub(crate) struct Parts {
    /// The data directory (the VAPID key).
    pub dir: DataDir,
    /// The store (subscriptions).
    pub store: Store,
    /// Devices, to push only to active ones.
    pub devices: Devices,
    /// Counts outcomes.
    pub metrics: Metrics,
    /// Runs the sends.
    pub tasks: TaskTracker,
    /// Ends waiting retries at shutdown.
    pub stop: CancellationToken,
    /// The clock.
    pub clock: Clock,
    /// Told when a push service took a message with a receipt.
    pub pushed: Option<sender::Pushed>,
}

/// Web Push for phones (cheap to clone).
#[derive(Clone)]
pub(crate) struct Push {
    subscriptions: Subscriptions,
    sender: Sender,
    vapid: Arc<Vapid>,
    devices: Devices,
}

impl Push {
    /// Loads the VAPID key (making it on first start) and starts the sender.
    pub(crate) fn start(config: &PushConfig, parts: Parts) -> anyhow::Result<Push> {
        let vapid = Arc::new(Vapid::load_or_create(&parts.dir, &config.contact, parts.clock.clone())?);
        let hosts = AllowedHosts::new(&config.allowed_hosts);
        let subscriptions = Subscriptions::new(parts.store, hosts, parts.clock);
        let sender = Sender::start(sender::Parts {
            vapid: vapid.clone(),
            http: http_client(config.ca_cert.as_deref())?,
            subscriptions: subscriptions.clone(),
            metrics: parts.metrics,
            tasks: parts.tasks,
            stop: parts.stop,
            pushed: parts.pushed,
        })
        .context("starting the Web Push sender")?;
        Ok(Push { subscriptions, sender, vapid, devices: parts.devices })
    }

    /// The VAPID public key (the app's `applicationServerKey`).
    pub(crate) fn public_key(&self) -> &str {
        self.vapid.public_key()
    }

    /// The subscriptions.
    pub(crate) fn subscriptions(&self) -> &Subscriptions {
        &self.subscriptions
    }

    /// Pushes `message` to every subscription of `device_id` (never
    /// waits). A device that is not active gets nothing, except `always`
    /// (the `control` message telling it why).
    pub(crate) fn send(&self, device_id: &str, always: bool, message: Message) {
        let device = match self.devices.get(device_id) {
            Ok(device) if always || device.status == DeviceState::Active => device,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(error = %e, device = device_id, "no push for an unknown device");
                return;
            }
        };
        match self.subscriptions.of(&device) {
            Ok(subscriptions) if subscriptions.is_empty() => {}
            Ok(subscriptions) => self.sender.send(subscriptions, message),
            Err(e) => tracing::error!(error = %e, device = device_id, "could not read push subscriptions"),
        }
    }

    /// Removes every subscription of a device that was revoked or unpaired.
    pub(crate) async fn forget(&self, device_id: &str) {
        if let Err(e) = self.subscriptions.forget(device_id).await {
            tracing::error!(error = %e, device = device_id, "could not remove push subscriptions");
        }
    }
}

/// The HTTPS client for push services: the web's roots (and the operator's
/// extra one), no redirects, bounded time.
fn http_client(ca_cert: Option<&std::path::Path>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("reading --push-ca-cert {}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem).context("--push-ca-cert")? {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}
