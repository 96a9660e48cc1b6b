//! The appliance's own PKI (rcgen, ECDSA P-256): the appliance CA made on
//! first start, which signs the HTTPS server certificate (for localhost, the
//! host name and any configured extra names) and the phones' MQTT client
//! certificates. Both are reused on later starts; the server certificate
//! is re-issued when its names change or it nears expiry.

pub(crate) mod live;
pub mod tls;

use crate::store::datadir::{self, DataDir};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use sha2::Digest;
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};

/// Why the PKI could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PkiError {
    /// Reading or writing a file failed.
    #[error("pki file: {0}")]
    Io(#[from] std::io::Error),
    /// rcgen refused the parameters or a stored file.
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
}

/// The appliance CA: its certificate (PEM) and its signing key.
pub(crate) struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A PEM certificate chain and its private key.
#[derive(Clone)]
pub(crate) struct TlsPair {
    /// Leaf certificate followed by the CA.
    pub(crate) chain_pem: String,
    /// The leaf's private key (PKCS#8).
    pub(crate) key_pem: String,
}

const SERVER_CERT: &str = "server-cert.pem";
const SERVER_KEY: &str = "server-key.pem";
/// The names the stored server certificate was issued for.
pub(crate) const SERVER_NAMES: &str = "server-names.txt";

impl Ca {
    /// Loads the appliance CA, creating it on first start.
    pub(crate) fn load_or_create(dir: &DataDir) -> Result<Ca, PkiError> {
        let (cert_file, key_file, common_name) = ("ca.pem", "ca-key.pem", "Top Dog appliance CA");
        let cert = datadir::read_optional(&dir.file(cert_file))?;
        let key = datadir::read_optional(&dir.file(key_file))?;
        if let (Some(cert), Some(key)) = (cert, key) {
            let cert_pem = String::from_utf8_lossy(&cert).into_owned();
            let key = KeyPair::from_pem(&String::from_utf8_lossy(&key))?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
            return Ok(Ca { cert_pem, issuer });
        }
        let key = KeyPair::generate()?;
        let params = ca_params(common_name);
        let cert = params.self_signed(&key)?;
        datadir::write_secret(&dir.file(key_file), key.serialize_pem().as_bytes())?;
        datadir::write_public(&dir.file(cert_file), cert.pem().as_bytes())?;
        Ok(Ca { cert_pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// The CA certificate, PEM.
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a client certificate (CN = `common_name`, O = `organization`)
    /// for a new key pair; also the SHA-256 of its public key (hex).
    pub(crate) fn issue_client(&self, common_name: &str, organization: &str) -> Result<(TlsPair, String), PkiError> {
        let key = KeyPair::generate()?;
        let cert = client_params(common_name, organization).signed_by(&key, &self.issuer)?;
        let fingerprint = hex::encode(sha2::Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&key)));
        Ok((TlsPair { chain_pem: cert.pem(), key_pem: key.serialize_pem() }, fingerprint))
    }

    /// Signs a phone's certificate request (PEM), so its key never leaves
    /// the phone: only the request's public key is used; the names and
    /// usages are ours. The certificate (PEM) and the SHA-256 of its public
    /// key, or `None` when the request is malformed or its signature wrong.
    pub(crate) fn sign_client_csr(
        &self,
        csr_pem: &str,
        common_name: &str,
        organization: &str,
    ) -> Result<Option<(String, String)>, PkiError> {
        let Ok(mut csr) = rcgen::CertificateSigningRequestParams::from_pem(csr_pem) else {
            return Ok(None);
        };
        csr.params = client_params(common_name, organization);
        let cert = csr.signed_by(&self.issuer)?;
        let fingerprint =
            hex::encode(sha2::Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&csr.public_key)));
        Ok(Some((cert.pem(), fingerprint)))
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses).
    pub(crate) fn issue_server(&self, names: &[String]) -> Result<TlsPair, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("Top Dog appliance");
        params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(SERVER_CERT_DAYS);
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(TlsPair { chain_pem: format!("{}{}", cert.pem(), self.cert_pem), key_pem: key.serialize_pem() })
    }
}

/// Certificate lifetime: under Mozilla's 366-day limit for leaf certificates.
const SERVER_CERT_DAYS: i64 = 365;

/// A phone's client certificate: CN = device, O = tenant, client auth only.
fn client_params(common_name: &str, organization: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(SERVER_CERT_DAYS);
    params.use_authority_key_identifier_extension = true;
    params
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Top Dog");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    params.distinguished_name = name(&format!("{common_name} ({host})"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = OffsetDateTime::now_utc() - Duration::hours(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
    params
}

fn san(name: &str) -> Result<SanType, rcgen::Error> {
    match name.parse::<IpAddr>() {
        Ok(ip) => Ok(SanType::IpAddress(ip)),
        Err(_) => Ok(SanType::DnsName(name.to_owned().try_into()?)),
    }
}

/// The names the generated server certificate covers.
pub(crate) fn server_names(extra: &[String]) -> Vec<String> {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if !host.is_empty() {
        names.push(host);
    }
    names.extend(extra.iter().cloned());
    names.sort();
    names.dedup();
    names
}

/// Loads the server certificate, re-issuing it when the names changed.
pub(crate) fn server_tls(dir: &DataDir, ca: &Ca, names: &[String]) -> Result<TlsPair, PkiError> {
    let wanted = names.join("\n");
    let stored_names = datadir::read_optional(&dir.file(SERVER_NAMES))?;
    let cert = datadir::read_optional(&dir.file(SERVER_CERT))?;
    let key = datadir::read_optional(&dir.file(SERVER_KEY))?;
    if let (Some(stored), Some(cert), Some(key)) = (stored_names, cert, key) {
        if stored == wanted.as_bytes() && !near_expiry(dir)? {
            let to_string = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
            return Ok(TlsPair { chain_pem: to_string(cert), key_pem: to_string(key) });
        }
    }
    let pair = ca.issue_server(names)?;
    datadir::write_secret(&dir.file(SERVER_KEY), pair.key_pem.as_bytes())?;
    datadir::write_public(&dir.file(SERVER_CERT), pair.chain_pem.as_bytes())?;
    datadir::write_public(&dir.file(SERVER_NAMES), wanted.as_bytes())?;
    Ok(pair)
}

/// Whether the stored server certificate was issued long enough ago that it
/// should be renewed (30 days before it expires).
fn near_expiry(dir: &DataDir) -> Result<bool, PkiError> {
    let modified = std::fs::metadata(dir.file(SERVER_CERT))?.modified()?;
    let age = modified.elapsed().unwrap_or_default();
    Ok(age > std::time::Duration::from_secs(((SERVER_CERT_DAYS - 30) * 86_400) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_made_once_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let first = Ca::load_or_create(&dir).unwrap();
        let again = Ca::load_or_create(&dir).unwrap();
        assert_eq!(first.cert_pem(), again.cert_pem());
        let names = server_names(&["topdog.example.com".into()]);
        let a = server_tls(&dir, &again, &names).unwrap();
        let b = server_tls(&dir, &again, &names).unwrap();
        assert_eq!(a.chain_pem, b.chain_pem);
        let c = server_tls(&dir, &again, &server_names(&[])).unwrap();
        assert_ne!(a.chain_pem, c.chain_pem);
        assert!(a.chain_pem.ends_with(first.cert_pem()));
    }
}
