//! The server certificate the HTTPS and MQTT listeners present, replaceable
//! while they serve: new handshakes get the newest, open connections keep
//! theirs. An operator's `--tls-cert`/`--tls-key` are read again when
//! either file changes (looked at every [`EVERY`]) or on SIGHUP; a pair
//! that does not load, or whose key does not fit its certificate, leaves
//! the old one serving, and the log says why.

use super::tls::{self, TlsError};
use super::TlsPair;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How often the certificate files are looked at.
pub(crate) const EVERY: Duration = Duration::from_secs(2);

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737).
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Answers TLS-ALPN-01 challenges: the validation certificate for a name
/// while its challenge is open.
pub(crate) trait AlpnChallenges: Send + Sync + std::fmt::Debug {
    /// The validation certificate for `name`, if its challenge is open.
    fn certificate(&self, name: &str) -> Option<Arc<CertifiedKey>>;
}

/// The certificate in force (shared by the listeners' configurations).
#[derive(Debug)]
pub(crate) struct LiveCert {
    current: RwLock<Arc<CertifiedKey>>,
    /// Open TLS-ALPN-01 challenges, when ACME is on.
    challenges: RwLock<Option<Arc<dyn AlpnChallenges>>>,
}

/// Loads `pair` as rustls serves it, checking that the key fits.
pub(crate) fn certified(pair: &TlsPair) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = tls::certs(&pair.chain_pem)?;
    let key = tls::provider().key_provider.load_private_key(tls::key(&pair.key_pem)?)?;
    let certified = CertifiedKey::new(chain, key);
    certified.keys_match()?;
    Ok(Arc::new(certified))
}

impl LiveCert {
    /// Serves `pair` until it is replaced.
    pub(crate) fn new(pair: &TlsPair) -> Result<Arc<LiveCert>, TlsError> {
        Ok(Arc::new(LiveCert { current: RwLock::new(certified(pair)?), challenges: RwLock::new(None) }))
    }

    /// Answers handshakes that offer `acme-tls/1` from `challenges`.
    pub(crate) fn answer_alpn_challenges(&self, challenges: Arc<dyn AlpnChallenges>) {
        *self.challenges.write().unwrap_or_else(|p| p.into_inner()) = Some(challenges);
    }

    /// Serves `pair` from the next handshake on.
    pub(crate) fn replace(&self, pair: &TlsPair) -> Result<(), TlsError> {
        let next = certified(pair)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// The certificate chain in force (leaf first).
    pub(crate) fn chain(&self) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).cert.clone()
    }

    /// What the certificate in force is: who it names, who issued it, when
    /// it ends and how many whole days that is from `now`.
    pub(crate) fn facts(&self, now: crate::clock::Timestamp) -> Option<CertFacts> {
        let chain = self.chain();
        let (_, leaf) = x509_parser::parse_x509_certificate(chain.first()?.as_ref()).ok()?;
        let name = |n: &x509_parser::x509::X509Name<'_>| {
            let cn = n.iter_common_name().next().and_then(|c| c.as_str().ok()).map(str::to_owned);
            cn.unwrap_or_else(|| n.to_string())
        };
        let not_after = chrono::DateTime::from_timestamp(leaf.validity().not_after.timestamp(), 0)?;
        Some(CertFacts {
            subject: name(leaf.subject()),
            issuer: name(leaf.issuer()),
            not_after,
            days_left: (not_after - now).num_days(),
        })
    }
}

/// The server certificate in force, for the status page and metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct CertFacts {
    /// Its subject's common name.
    pub subject: String,
    /// Its issuer's common name.
    pub issuer: String,
    /// When it ends.
    pub not_after: crate::clock::Timestamp,
    /// Whole days until then (negative once it has ended).
    pub days_left: i64,
}

impl ResolvesServerCert for LiveCert {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validating = hello.alpn().is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if validating {
            let challenges = self.challenges.read().unwrap_or_else(|p| p.into_inner()).clone()?;
            return challenges.certificate(hello.server_name()?);
        }
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// What a file looked like: changed time and size (None: unreadable).
type Stamp = Option<(SystemTime, u64)>;

/// What a file looked like: changed time and size.
fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reads an operator's certificate chain and key files.
pub(crate) fn read_pair(cert: &Path, key: &Path) -> Result<TlsPair, TlsError> {
    Ok(TlsPair { chain_pem: std::fs::read_to_string(cert)?, key_pem: std::fs::read_to_string(key)? })
}

/// The operator's certificate and key files, and how they looked just
/// before the appliance first read them (so a change made while it starts
/// is not missed).
#[derive(Debug, Clone)]
pub(crate) struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    seen: (Stamp, Stamp),
}

impl CertFiles {
    /// Notes how `cert` and `key` look, before they are read.
    pub(crate) fn before_reading(cert: &Path, key: &Path) -> CertFiles {
        CertFiles { cert: cert.to_owned(), key: key.to_owned(), seen: (stamp(cert), stamp(key)) }
    }
}

/// Reloads `live` from the files when they change or on SIGHUP, until
/// `stop` turns true.
pub(crate) async fn watch_files(live: Arc<LiveCert>, files: CertFiles, mut stop: watch::Receiver<bool>) {
    let CertFiles { cert, key, mut seen } = files;
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "no SIGHUP handler; certificate files are still watched");
            None
        }
    };
    let mut ticks = tokio::time::interval(EVERY);
    loop {
        let why = tokio::select! {
            _ = ticks.tick() => "changed",
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => "SIGHUP",
            _ = stop.changed() => return,
        };
        let now = (stamp(&cert), stamp(&key));
        if why == "changed" && now == seen {
            continue;
        }
        seen = now;
        match read_pair(&cert, &key).and_then(|pair| live.replace(&pair)) {
            Ok(()) => tracing::info!(cert = %cert.display(), reason = why, "TLS certificate reloaded"),
            Err(e) => tracing::error!(
                cert = %cert.display(), error = %e, reason = why,
                "TLS certificate not reloaded; the previous one keeps serving"
            ),
        }
    }
}
