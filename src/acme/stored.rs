//! The certificate the ACME server issued and when it is due for renewal:
//! at two thirds of its lifetime, as Let's Encrypt advises. One appliance
//! keeps it in the data directory as one file (`acme-certificate.pem`,
//! mode 0600: the chain and its key together, written atomically so they
//! never disagree); nodes sharing a PostgreSQL store keep it there, so each
//! serves the certificate the leading node ordered.

use super::error::AcmeError;
use crate::clock::Timestamp;
use crate::pki::TlsPair;
use crate::store::datadir::{self, DataDir};
use crate::store::{Store, Table};
use serde::{Deserialize, Serialize};

/// The file holding the chain (leaf first) followed by the key.
pub(crate) const FILE: &str = "acme-certificate.pem";

/// Where the shared store keeps it (in the `meta` table).
const SHARED_KEY: &str = "acme_certificate";

/// Reads the stored certificate, if any.
pub(crate) fn load(dir: &DataDir) -> std::io::Result<Option<TlsPair>> {
    let Some(bytes) = datadir::read_optional(&dir.file(FILE))? else { return Ok(None) };
    let text = String::from_utf8_lossy(&bytes);
    let key_at = text.find("-----BEGIN PRIVATE KEY-----").unwrap_or(text.len());
    Ok(Some(TlsPair { chain_pem: text[..key_at].to_owned(), key_pem: text[key_at..].to_owned() }))
}

/// Stores `pair` in place of the previous one.
pub(crate) fn save(dir: &DataDir, pair: &TlsPair) -> std::io::Result<()> {
    let chain = pair.chain_pem.trim_end();
    datadir::write_secret(&dir.file(FILE), format!("{chain}\n{}", pair.key_pem).as_bytes())
}

/// The certificate as the shared store keeps it.
#[derive(Serialize, Deserialize)]
struct Shared {
    chain_pem: String,
    key_pem: String,
}

/// Where this node keeps the certificate: its data directory, or the store
/// the nodes share.
#[derive(Clone)]
pub(crate) struct Keeper {
    dir: DataDir,
    shared: Option<Store>,
}

impl Keeper {
    /// The keeper for an appliance with `dir` and `store`.
    pub(crate) fn new(dir: &DataDir, store: &Store) -> Keeper {
        Keeper { dir: dir.clone(), shared: store.is_shared().then(|| store.clone()) }
    }

    /// The stored certificate, if any.
    pub(crate) fn load(&self) -> Result<Option<TlsPair>, AcmeError> {
        match &self.shared {
            None => Ok(load(&self.dir)?),
            Some(store) => Ok(store
                .get::<Shared>(Table::Meta, SHARED_KEY)?
                .map(|s| TlsPair { chain_pem: s.chain_pem, key_pem: s.key_pem })),
        }
    }

    /// Stores `pair` in place of the previous one, durably.
    pub(crate) async fn save(&self, pair: &TlsPair) -> Result<(), AcmeError> {
        match &self.shared {
            None => Ok(save(&self.dir, pair)?),
            Some(store) => {
                let shared = Shared { chain_pem: pair.chain_pem.clone(), key_pem: pair.key_pem.clone() };
                Ok(store.insert(Table::Meta, SHARED_KEY, &shared).await?)
            }
        }
    }
}

/// What renewal needs to know of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lifetime {
    /// When it starts.
    pub not_before: Timestamp,
    /// When it ends.
    pub not_after: Timestamp,
    /// The DNS names it covers, lower case.
    pub names: Vec<String>,
}

impl Lifetime {
    /// Reads the leaf of `pair`.
    pub(crate) fn of(pair: &TlsPair) -> Option<Lifetime> {
        let der = crate::pki::tls::certs(&pair.chain_pem).ok()?.into_iter().next()?;
        let (_, leaf) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let at = |t: x509_parser::time::ASN1Time| chrono::DateTime::from_timestamp(t.timestamp(), 0);
        let names = match leaf.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(Lifetime { not_before: at(leaf.validity().not_before)?, not_after: at(leaf.validity().not_after)?, names })
    }

    /// When to renew: two thirds of the way through its lifetime.
    pub(crate) fn renew_at(&self) -> Timestamp {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }

    /// When to renew a certificate just issued: at [`Lifetime::renew_at`],
    /// but no sooner than a sixth of its lifetime from `now`, so that a
    /// clock ahead of the CA's cannot turn renewal into a loop of orders
    /// (and a CA's rate limit).
    pub(crate) fn next_renewal(&self, now: Timestamp) -> Timestamp {
        self.renew_at().max(now + (self.not_after - self.not_before) / 6)
    }

    /// Whether it names every one of `domains` and has not ended at `now`.
    pub(crate) fn serves(&self, domains: &[String], now: Timestamp) -> bool {
        now < self.not_after && domains.iter().all(|d| self.names.contains(&d.to_ascii_lowercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Ca;

    #[test]
    fn kept_whole_and_renewed_at_two_thirds() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let ca = Ca::load_or_create(&dir).unwrap();
        let pair = ca.issue_server(&["pair.example.com".into(), "127.0.0.1".into()]).unwrap();
        assert!(load(&dir).unwrap().is_none());
        save(&dir, &pair).unwrap();
        let again = load(&dir).unwrap().unwrap();
        crate::pki::live::certified(&again).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.file(FILE)).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);

        let life = Lifetime::of(&again).unwrap();
        assert_eq!(life.names, ["pair.example.com"]);
        let whole = life.not_after - life.not_before;
        assert_eq!(life.renew_at() - life.not_before, whole * 2 / 3);
        let now = chrono::Utc::now();
        assert!(life.serves(&["PAIR.example.com".into()], now));
        assert!(!life.serves(&["other.example.com".into()], now));
        assert!(!life.serves(&["pair.example.com".into()], life.not_after));
        assert_eq!(life.next_renewal(life.not_before), life.renew_at());
        let clock_ahead = life.renew_at() + chrono::Duration::days(1);
        assert_eq!(life.next_renewal(clock_ahead), clock_ahead + whole / 6, "no renewal loop");
    }
}
