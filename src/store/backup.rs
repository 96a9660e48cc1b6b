//! Backups: one JSON document holding a consistent copy of the database and
//! the data directory's keys, certificates and audit log (so it is a
//! secret: written mode 0600), taken while the appliance runs, and restored
//! into a new data directory while it is stopped.

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

const FORMAT: &str = "topdog-backup";
const VERSION: u32 = 1;

/// Why a backup could not be made or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
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
}

/// A backup document.
#[derive(Debug, Serialize, Deserialize)]
pub struct Backup {
    format: String,
    version: u32,
    created_at: Timestamp,
    tables: Dump,
    files: BTreeMap<String, String>,
}

/// Takes a backup of a running appliance.
pub fn take(store: &Store, dir: &DataDir, now: Timestamp) -> Result<Backup, BackupError> {
    let tables = store.export()?;
    let mut files = BTreeMap::new();
    for (name, _) in FILES {
        if let Some(bytes) = datadir::read_optional(&dir.file(name))? {
            files.insert(name.to_owned(), STANDARD.encode(bytes));
        }
    }
    Ok(Backup { format: FORMAT.into(), version: VERSION, created_at: now, tables, files })
}

/// Restores `backup` into the empty data directory `dir`.
pub async fn restore(backup: &Backup, dir: &DataDir) -> Result<(), BackupError> {
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
    store.import(&backup.tables).await?;
    Ok(())
}
