//! Why a certificate could not be had from the ACME server.

/// Why an ACME order (or the account it needs) failed. None reaches a
/// client: each is logged, shown in the status and retried with backoff.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AcmeError {
    /// The server refused a request, or could not be reached.
    #[error("ACME server: {0}")]
    Protocol(#[from] instant_acme::Error),
    /// The server offers no challenge of the configured type.
    #[error("the ACME server offers no {0} challenge for {1}")]
    NotOffered(&'static str, String),
    /// An authorization ended other than valid.
    #[error("authorization for {0} is {1}")]
    Authorization(String, String),
    /// The order ended other than ready.
    #[error("the order is {0}")]
    Order(String),
    /// A key or certificate request could not be made.
    #[error("certificate request: {0}")]
    Request(#[from] rcgen::Error),
    /// The issued certificate does not load or fit its key.
    #[error("the issued certificate does not load: {0}")]
    Tls(#[from] crate::pki::tls::TlsError),
    /// The account or certificate file could not be read or written.
    #[error("ACME file: {0}")]
    Io(#[from] std::io::Error),
    /// The shared store failed.
    #[error("ACME certificate in the shared store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The account file does not parse.
    #[error("ACME account file: {0}")]
    Account(#[from] serde_json::Error),
}
