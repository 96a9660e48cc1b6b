//! Backups: one JSON document holding a consistent copy of the database and
//! the data directory's keys, certificates and audit log (so it is a
//! secret: written mode 0600), taken while the appliance runs, and restored
//! into a new data directory while it is stopped. The keys alone (no
//! records, no audit log) are how several nodes sharing one database get
//! the same CA, signing keys and certificate.

use crate::clock::Timestamp;
use crate::store::datadir::{self, DataDir};
use crate::store::{Dump, Store, StoreError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The files a backup carries, and whether each is a secret.
const FILES: [(&str, bool); 12] = [
    ("ca.pem", false),
    ("ca-key.pem", true),
    ("jwt-signing-key.pem", true),
    ("admin-token.sha256", true),
    ("server-cert.pem", false),
    ("server-key.pem", true),
    ("server-names.txt", false),
    ("audit.jsonl", true),
    (crate::push::vapid::KEY_FILE, true),
    (crate::hooks::config::FILE, true),
    (crate::acme::account::FILE, true),
    (crate::acme::stored::FILE, true),
];

/// Files that are not keys: each node keeps its own.
const NOT_KEYS: [&str; 1] = ["audit.jsonl"];

const FORMAT: &str = "topdog-backup";
const KEYS_FORMAT: &str = "topdog-keys";
const VERSION: u32 = 1;

/// Why a backup could not be made or restored.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackupError {
    /// Reading or writing a file failed.
    #[error("backup file: {0}")]
    Io(#[from] std::io::Error),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Not a backup this version can restore.
    #[error("not a Top Dog backup (or a newer format): {0}")]
    Format(String),
    /// The target already holds an appliance.
    #[error("{0} already holds a database; restore into a new, empty data directory")]
    NotEmpty(String),
    /// The target already has keys of its own.
    #[error("{0} already has keys ({1}); import into a new, empty data directory")]
    HasKeys(String, String),
}

/// A backup document.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Backup {
    format: String,
    version: u32,
    created_at: Timestamp,
    tables: Dump,
    files: BTreeMap<String, String>,
}

/// Takes a backup of a running appliance.
pub(crate) async fn take(store: &Store, dir: &DataDir, now: Timestamp) -> Result<Backup, BackupError> {
    let tables = store.export().await?;
    let mut files = BTreeMap::new();
    for (name, _) in FILES {
        if let Some(bytes) = datadir::read_optional(&dir.file(name))? {
            files.insert(name.to_owned(), STANDARD.encode(bytes));
        }
    }
    Ok(Backup { format: FORMAT.into(), version: VERSION, created_at: now, tables, files })
}

/// Restores `backup` into the empty data directory `dir`.
pub(crate) async fn restore(backup: &Backup, dir: &DataDir) -> Result<(), BackupError> {
    if backup.format != FORMAT || backup.version != VERSION {
        return Err(BackupError::Format(format!("{} version {}", backup.format, backup.version)));
    }
    if dir.database().exists() {
        return Err(BackupError::NotEmpty(dir.root().display().to_string()));
    }
    for (name, secret) in FILES {
        let Some(encoded) = backup.files.get(name) else { continue };
        let bytes = STANDARD.decode(encoded).map_err(|e| BackupError::Format(format!("{name}: {e}")))?;
        if secret {
            datadir::write_secret(&dir.file(name), &bytes)?;
        } else {
            datadir::write_public(&dir.file(name), &bytes)?;
        }
    }
    let store = Store::open(&dir.database())?;
    store.import(&backup.tables, 0).await?;
    Ok(())
}

/// The keys every node of one appliance shares (a secret: mode 0600).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Keys {
    format: String,
    version: u32,
    files: BTreeMap<String, String>,
}

/// The data directory's keys, certificates and settings files, without the
/// records or the audit log.
pub(crate) fn export_keys(dir: &DataDir) -> Result<Keys, BackupError> {
    let mut files = BTreeMap::new();
    for (name, _) in FILES.iter().filter(|(name, _)| !NOT_KEYS.contains(name)) {
        if let Some(bytes) = datadir::read_optional(&dir.file(name))? {
            files.insert((*name).to_owned(), STANDARD.encode(bytes));
        }
    }
    Ok(Keys { format: KEYS_FORMAT.into(), version: VERSION, files })
}

/// Writes `keys` into `dir`, which must have none of its own yet.
pub(crate) fn import_keys(keys: &Keys, dir: &DataDir) -> Result<(), BackupError> {
    if keys.format != KEYS_FORMAT || keys.version != VERSION {
        return Err(BackupError::Format(format!("{} version {}", keys.format, keys.version)));
    }
    if let Some(name) = keys.files.keys().find(|name| dir.file(name).exists()) {
        return Err(BackupError::HasKeys(dir.root().display().to_string(), name.clone()));
    }
    for (name, secret) in FILES {
        let Some(encoded) = keys.files.get(name).filter(|_| !NOT_KEYS.contains(&name)) else { continue };
        let bytes = STANDARD.decode(encoded).map_err(|e| BackupError::Format(format!("{name}: {e}")))?;
        match secret {
            true => datadir::write_secret(&dir.file(name), &bytes)?,
            false => datadir::write_public(&dir.file(name), &bytes)?,
        }
    }
    Ok(())
}
