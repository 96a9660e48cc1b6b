//! The ACME account: registered at the directory on first use (with the
//! operator's e-mail as contact, agreeing to the terms of service as Caddy
//! and certbot do) and kept in `acme-account.json` (mode 0600: it holds the
//! account's private key). A different directory gets a new account.

use super::error::AcmeError;
use super::AcmeConfig;
use crate::store::datadir::{self, DataDir};
use instant_acme::{Account, AccountBuilder, AccountCredentials, NewAccount};
use serde::{Deserialize, Serialize};

/// The account file.
pub(crate) const FILE: &str = "acme-account.json";

#[derive(Serialize, Deserialize)]
struct Stored {
    directory: String,
    credentials: AccountCredentials,
}

fn builder(config: &AcmeConfig) -> Result<AccountBuilder, AcmeError> {
    Ok(match &config.ca_cert {
        Some(root) => Account::builder_with_root(root)?,
        None => Account::builder()?,
    })
}

/// The account at `config.directory`, registering one the first time.
pub(crate) async fn load_or_create(dir: &DataDir, config: &AcmeConfig) -> Result<Account, AcmeError> {
    if let Some(bytes) = datadir::read_optional(&dir.file(FILE))? {
        let stored: Stored = serde_json::from_slice(&bytes)?;
        if stored.directory == config.directory {
            return Ok(builder(config)?.from_credentials(stored.credentials).await?);
        }
        tracing::info!(directory = %config.directory, "new ACME directory: registering a new account");
    }
    let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) = builder(config)?.create(&new, config.directory.clone(), None).await?;
    let stored = Stored { directory: config.directory.clone(), credentials };
    datadir::write_secret(&dir.file(FILE), &serde_json::to_vec(&stored)?)?;
    tracing::info!(directory = %config.directory, account = account.id(), "ACME account registered");
    Ok(account)
}
