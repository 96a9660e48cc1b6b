//! The data directory's format version (`format-version`, one number) and
//! the steps that bring an older directory up to date. A directory written
//! by a newer topdog is refused before anything in it is touched, so a
//! downgrade can never corrupt it.
//!
//! Formats: 1 — topdog 0.1.0 before messaging (no `format-version` file);
//! 2 — adds the messaging tables (created on open) and `actions.toml`, and
//! server certificates carry an Authority Key Identifier (strict X.509
//! validators require it), so format 1's certificate is re-issued.

use crate::store::datadir::{self, DataDir};

/// The format this build writes.
pub(crate) const CURRENT: u32 = 2;

const FILE: &str = "format-version";

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpgradeError {
    /// Written by a newer topdog.
    #[error(
        "the data directory has format {found}, newer than this topdog understands ({CURRENT}); \
         run the topdog that wrote it, or restore a backup made for this version"
    )]
    Newer {
        /// The format found.
        found: u32,
    },
    /// The version file is not a number.
    #[error("{path}: not a format version number ({text:?})")]
    Unreadable {
        /// The file.
        path: String,
        /// What it holds.
        text: String,
    },
    /// Reading or writing failed.
    #[error("data directory format: {0}")]
    Io(#[from] std::io::Error),
}

/// The directory's format: the file's number; 1 for a directory with a
/// database but no file; `None` for a new directory.
fn found(dir: &DataDir) -> Result<Option<u32>, UpgradeError> {
    let path = dir.file(FILE);
    match datadir::read_optional(&path)? {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes).trim().to_owned();
            let unreadable = || UpgradeError::Unreadable { path: path.display().to_string(), text: text.clone() };
            text.parse().map(Some).map_err(|_| unreadable())
        }
        None if dir.database().exists() => Ok(Some(1)),
        None => Ok(None),
    }
}

/// Checks the format and upgrades an older directory; the format it had
/// (`None` when new). Call before opening anything in the directory.
pub(crate) fn prepare(dir: &DataDir) -> Result<Option<u32>, UpgradeError> {
    let was = found(dir)?;
    match was {
        Some(found) if found > CURRENT => return Err(UpgradeError::Newer { found }),
        Some(CURRENT) => return Ok(was),
        Some(found) => {
            for step in found..CURRENT {
                tracing::info!(from = step, to = step + 1, "upgrading the data directory");
            }
        }
        None => {}
    }
    if was == Some(1) {
        // 1 → 2: forget the names the server certificate was issued for, so
        // the next start issues a new one (with its Authority Key
        // Identifier). The messaging tables appear when the store opens and
        // `actions.toml` when the actions load.
        match std::fs::remove_file(dir.file(crate::pki::SERVER_NAMES)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    datadir::write_public(&dir.file(FILE), format!("{CURRENT}\n").as_bytes())?;
    Ok(was)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_old_current_and_newer_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        assert_eq!(prepare(&dir).unwrap(), None, "a new directory");
        assert_eq!(prepare(&dir).unwrap(), Some(CURRENT));
        std::fs::remove_file(dir.file(FILE)).unwrap();
        std::fs::create_dir(dir.database()).unwrap();
        assert_eq!(prepare(&dir).unwrap(), Some(1), "a database without the file is format 1");
        assert_eq!(std::fs::read_to_string(dir.file(FILE)).unwrap(), format!("{CURRENT}\n"));
        std::fs::write(dir.file(FILE), "99\n").unwrap();
        assert!(matches!(prepare(&dir), Err(UpgradeError::Newer { found: 99 })));
        assert_eq!(std::fs::read_to_string(dir.file(FILE)).unwrap(), "99\n", "a newer directory is left alone");
        std::fs::write(dir.file(FILE), "two").unwrap();
        assert!(matches!(prepare(&dir), Err(UpgradeError::Unreadable { .. })));
    }
}
